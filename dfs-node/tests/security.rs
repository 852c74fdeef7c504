//! A whole node served over real QUIC, spoken to with certificates of every role: the
//! access table (who may send what). Refused peers (no certificate, foreign CA...) are at
//! the end of this file, with revocation.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use dfs_node::NodeConfig;
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{ErrorCode, ShardId, WireResult};
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// A node on 127.0.0.1 whose coordinator is a dead port (registration just retries).
struct Node {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dead: std::net::UdpSocket,
    _data: tempfile::TempDir,
}

impl Node {
    async fn start(certs: &Path) -> Node {
        let data = tempfile::tempdir().unwrap();
        let addr_file = data.path().join("addr");
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let cfg = NodeConfig {
            capacity: Some(64 << 20),
            reserve: 0,
            addr_file: Some(addr_file.clone()),
            scrub_rate: 0,
            ..NodeConfig::new(
                data.path().join("node"),
                dead.local_addr().unwrap().to_string(),
                certs,
                "node-1",
            )
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dfs_node::run(cfg, async {
            let _ = stopped.await;
        }));
        let mut addr = String::new();
        for _ in 0..1000 {
            if let Ok(s) = std::fs::read_to_string(&addr_file) {
                addr = s.trim().to_string();
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!addr.is_empty(), "the node never wrote its address");
        Node {
            addr,
            stop: Some(stop),
            task,
            _dead: dead,
            _data: data,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("node did not stop")
            .unwrap()
            .unwrap();
    }
}

fn client(certs: &Path, name: &str) -> RpcClient {
    let tls = ClusterTls::load_dir(certs, name).unwrap();
    RpcClient::new(client_endpoint(&tls).unwrap(), Role::Node)
}

#[tokio::test]
async fn every_node_request_is_accepted_only_from_its_roles() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 2).unwrap();
    let node = Node::start(certs.path()).await;
    let data = b"some shard".to_vec();
    let id = ShardId::of(&data);
    // The expected table, written independently of src/access.rs.
    let table: Vec<(NodeRequest, &[&str])> = vec![
        (put_of(&data), &["client"]),
        (NodeRequest::Get { id, range: None }, &["client", "node-2"]),
        (NodeRequest::Status, &["coord", "admin"]),
        (
            NodeRequest::Replicate {
                id: ShardId::of(b"elsewhere"),
                sources: vec![],
            },
            &["coord"],
        ),
        (NodeRequest::Delete { id }, &["coord"]),
    ];
    let clients: Vec<(&str, RpcClient)> = ["client", "node-2", "coord", "admin"]
        .into_iter()
        .map(|n| (n, client(certs.path(), n)))
        .collect();
    for (req, allowed) in &table {
        for (name, c) in &clients {
            let r: WireResult<NodeResponse> = c.call(&node.addr, req, DEADLINE).await;
            let refused = matches!(&r, Err(e) if e.code == ErrorCode::Unauthorized);
            assert_eq!(
                refused,
                !allowed.contains(name),
                "{req:?} from {name}: {r:?}"
            );
        }
    }
    // The Put above (from the client) stored the shard, and the coordinator's Delete
    // removed it; nobody else's Delete did anything (they were refused first).
    let c = &clients[0].1;
    let gone: WireResult<NodeResponse> = c
        .call(&node.addr, &NodeRequest::Get { id, range: None }, DEADLINE)
        .await;
    assert_eq!(gone.unwrap_err().code, ErrorCode::NotFound);
    node.stop().await;
}

#[tokio::test]
async fn a_client_cannot_delete_a_shard() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let node = Node::start(certs.path()).await;
    let c = client(certs.path(), "client");
    let data = b"precious".to_vec();
    let id = ShardId::of(&data);
    let put: NodeResponse = c.call(&node.addr, &put_of(&data), DEADLINE).await.unwrap();
    assert!(matches!(put, NodeResponse::Stored));
    let e = c
        .call::<_, NodeResponse>(&node.addr, &NodeRequest::Delete { id }, DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(
        e.message.contains("delete") && e.message.contains("dfs-coord"),
        "{e}"
    );
    let still: NodeResponse = c
        .call(&node.addr, &NodeRequest::Get { id, range: None }, DEADLINE)
        .await
        .unwrap();
    assert!(matches!(still, NodeResponse::Data(d) if d == data));
    node.stop().await;
}

/// A `Put` of `data` under its own ID.
fn put_of(data: &[u8]) -> NodeRequest {
    NodeRequest::Put {
        id: ShardId::of(data),
        data: data.to_vec().into(),
    }
}

/// Requests that read, write, list and delete, as raw frames.
fn sample_requests() -> Vec<(&'static str, Vec<u8>)> {
    let data = b"intruder data".to_vec();
    let id = ShardId::of(&data);
    [
        ("read", NodeRequest::Get { id, range: None }),
        ("write", put_of(&data)),
        ("list", NodeRequest::Status),
        ("delete", NodeRequest::Delete { id }),
    ]
    .into_iter()
    .map(|(what, r)| (what, dfs_proto::frame::encode(&r).unwrap()))
    .collect()
}

#[tokio::test]
async fn peers_without_a_valid_cluster_certificate_get_nothing() {
    use dfs_pki::intruder::{attempt, Intruder};
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let node = Node::start(certs.path()).await;
    let addr = node.addr.parse().unwrap();
    // Control: the same raw path with the real client certificate gets answers, so a
    // refusal below is the server's doing and not a broken test client.
    let good = ClusterTls::load_dir(certs.path(), "client").unwrap();
    for (what, frame) in sample_requests() {
        let r = attempt(good.client_config().unwrap(), addr, Role::Node, &frame).await;
        assert!(r.is_ok(), "{what} with a valid certificate: {r:?}");
    }
    for who in Intruder::ALL {
        for (what, frame) in sample_requests() {
            let cfg = who.client_config(certs.path()).unwrap();
            match attempt(cfg, addr, Role::Node, &frame).await {
                Ok(r) => panic!("{who:?} could {what}: {r:?}"),
                Err(e) => {
                    let e = format!("{e:#}");
                    eprintln!("{who:?} {what}: refused: {e}");
                    assert!(e.contains("handshake failed"), "{who:?} {what}: {e}");
                }
            }
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn a_revoked_client_is_refused_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let node = Node::start(certs.path()).await;
    let c = client(certs.path(), "client");
    let data = b"before".to_vec();
    let id = ShardId::of(&data);
    let get = NodeRequest::Get { id, range: None };
    let put: NodeResponse = c.call(&node.addr, &put_of(&data), DEADLINE).await.unwrap();
    assert!(matches!(put, NodeResponse::Stored));

    dfs_proto::revocation::revoke(certs.path(), "client").unwrap();

    // The warm connection is cut at its next request...
    let e = c
        .call::<_, NodeResponse>(&node.addr, &get, DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    // ...and a fresh one fails its handshake.
    let fresh = client(certs.path(), "client");
    let e = fresh
        .call::<_, NodeResponse>(&node.addr, &get, DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    // Other certificates are unaffected.
    let other = client(certs.path(), "node-1");
    let r: NodeResponse = other.call(&node.addr, &get, DEADLINE).await.unwrap();
    assert!(matches!(r, NodeResponse::Data(_)));
    node.stop().await;
}

#[tokio::test]
async fn bad_frames_fail_their_stream_with_a_clear_error_and_the_node_goes_on() {
    use dfs_pki::intruder::attempt;
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let node = Node::start(certs.path()).await;
    let addr = node.addr.parse().unwrap();
    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let version = dfs_proto::PROTOCOL_VERSION.to_le_bytes();
    let frame = |body: &[u8], version: [u8; 2]| {
        let mut f = ((body.len() + 2) as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&version);
        f.extend_from_slice(body);
        f
    };
    let mut truncated = frame(&[0; 100], version);
    truncated.truncate(20);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated frame", truncated, "stream ended inside a frame"),
        (
            "unknown message",
            frame(&[0xff, 1, 2], version),
            "cannot decode message",
        ),
        (
            "wrong version",
            frame(&[4], 99u16.to_le_bytes()),
            "protocol version 99",
        ),
        (
            "over the cap",
            u32::MAX.to_le_bytes().to_vec(),
            "exceeds the cap",
        ),
        ("empty stream", vec![], "stream ended inside a frame"),
    ];
    for (what, bytes, expect) in cases {
        let resp = attempt(tls.client_config().unwrap(), addr, Role::Node, &bytes)
            .await
            .unwrap();
        let answer: WireResult<NodeResponse> = dfs_proto::frame::decode(&resp[4..]).unwrap();
        let e = answer.unwrap_err();
        eprintln!("{what}: {e}");
        assert_eq!(e.code, ErrorCode::Invalid, "{what}: {e}");
        assert!(e.message.contains(expect), "{what}: {e}");
    }
    // The node still serves everyone, on a connection it has served before or a new one.
    let c = client(certs.path(), "client");
    let data = b"after the garbage".to_vec();
    let r: NodeResponse = c.call(&node.addr, &put_of(&data), DEADLINE).await.unwrap();
    assert!(matches!(r, NodeResponse::Stored));
    node.stop().await;
}

#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::MetadataExt;
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let node = Node::start(certs.path()).await;
    let m = std::fs::metadata(node._data.path().join("node")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o700);
    node.stop().await;
}
