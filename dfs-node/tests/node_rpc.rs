//! A whole node, started with `dfs_node::run`, spoken to over real QUIC with mutual TLS.
//! The coordinator address is dead: put/get need no coordinator, and registration just
//! keeps retrying in the background.

use dfs_node::NodeConfig;
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::node_msg::{ByteRange, NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{ErrorCode, ShardId, WireResult};
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

fn shard(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..1000 {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test]
async fn put_get_delete_status_over_quic() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let addr_file = data.path().join("addr");
    // A port that answers nothing: the coordinator is down for this whole test.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = NodeConfig {
        capacity: Some(64 << 20),
        reserve: 0,
        addr_file: Some(addr_file.clone()),
        ..NodeConfig::new(
            data.path().join("node"),
            dead.local_addr().unwrap().to_string(),
            certs.path(),
            "node-1",
        )
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(dfs_node::run(cfg, async {
        let _ = stopped.await;
    }));
    let addr = wait_for_file(&addr_file).await;
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let c = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Node);
    let call = |req: NodeRequest| {
        let (c, addr) = (&c, &addr);
        async move { c.call::<_, NodeResponse>(addr, &req, DEADLINE).await }
    };
    // Status and Delete are the coordinator's requests (see src/access.rs).
    let coord_tls = ClusterTls::load_dir(certs.path(), "coord").unwrap();
    let coord = RpcClient::new(client_endpoint(&coord_tls).unwrap(), Role::Node);
    let as_coord = |req: NodeRequest| {
        let (c, addr) = (&coord, &addr);
        async move { c.call::<_, NodeResponse>(addr, &req, DEADLINE).await }
    };

    let bytes = shard(1 << 20);
    let id = ShardId::of(&bytes);
    let r = call(NodeRequest::Put {
        id,
        data: bytes.clone().into(),
    })
    .await;
    assert!(matches!(r, Ok(NodeResponse::Stored)), "{r:?}");

    let data_of = |r: WireResult<NodeResponse>| match r {
        Ok(NodeResponse::Data(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        data_of(call(NodeRequest::Get { id, range: None }).await),
        bytes
    );
    let range = ByteRange {
        offset: 65536 - 100,
        len: 4096,
    };
    assert_eq!(
        data_of(
            call(NodeRequest::Get {
                id,
                range: Some(range)
            })
            .await
        ),
        &bytes[65536 - 100..65536 - 100 + 4096]
    );

    // Wrong content for the id is refused, and reported as such.
    let wrong = call(NodeRequest::Put {
        id: ShardId::of(b"something else"),
        data: bytes.clone().into(),
    })
    .await
    .unwrap_err();
    assert_eq!(wrong.code, ErrorCode::Corrupt);

    match as_coord(NodeRequest::Status).await {
        Ok(NodeResponse::Status(s)) => {
            assert_eq!(s.stats.shards, 1);
            assert_eq!(s.stats.capacity, 64 << 20);
            assert!(s.stats.used > 1 << 20);
            assert_eq!(s.stats.free, s.stats.capacity - s.stats.used);
            let id_file = std::fs::read_to_string(data.path().join("node/node.id")).unwrap();
            assert_eq!(s.node.to_string(), id_file.trim());
        }
        other => panic!("{other:?}"),
    }

    let r = as_coord(NodeRequest::Delete { id }).await;
    assert!(matches!(r, Ok(NodeResponse::Deleted)), "{r:?}");
    let gone = call(NodeRequest::Get { id, range: None })
        .await
        .unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    let again = as_coord(NodeRequest::Delete { id }).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::NotFound);

    stop.send(()).unwrap();
    tokio::time::timeout(DEADLINE, node)
        .await
        .expect("node did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn missing_certificate_is_a_clear_error() {
    let certs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg = NodeConfig {
        reserve: 0,
        ..NodeConfig::new(data.path(), "127.0.0.1:1", certs.path(), "node-9")
    };
    let e = dfs_node::run(cfg, std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("node-9"), "{e:#}");
}
