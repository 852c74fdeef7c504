//! A node started with `--metrics-listen` (in process), scraped over plain TCP: the
//! storage gauges are there, and request counters, bytes and errors move with requests.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use dfs_node::NodeConfig;
use dfs_ops::metrics::http::get;
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{ShardId, WireResult};
use std::net::SocketAddr;
use std::time::Duration;

/// A free TCP port on loopback (free when asked; nothing else here competes for it).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics").await.unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    body
}

fn has(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line)
}

#[tokio::test]
async fn scrape_shows_storage_and_request_metrics() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let addr_file = data.path().join("addr");
    let metrics = free_port();
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = NodeConfig {
        capacity: Some(64 << 20),
        addr_file: Some(addr_file.clone()),
        metrics_listen: Some(metrics),
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
    let mut addr = String::new();
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(&addr_file) {
            addr = s.trim().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!addr.is_empty(), "node never wrote its address");

    let body = scrape(metrics).await;
    for line in [
        "dfs_node_capacity_bytes 67108864",
        "dfs_node_shards 0",
        "dfs_node_used_bytes 0",
        "# TYPE dfs_rpc_requests_total counter",
        "# TYPE dfs_rpc_request_duration_seconds histogram",
    ] {
        assert!(has(&body, line), "missing {line:?} in\n{body}");
    }
    assert!(!body.contains("op=\"put\""), "{body}");

    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let c = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Node);
    let d = Duration::from_secs(10);
    let bytes = vec![5u8; 100_000];
    let id = ShardId::of(&bytes);
    let put = NodeRequest::Put {
        id,
        data: bytes.clone().into(),
    };
    let r: WireResult<NodeResponse> = c.call(&addr, &put, d).await;
    assert!(matches!(r, Ok(NodeResponse::Stored)), "{r:?}");
    let r: WireResult<NodeResponse> = c
        .call(&addr, &NodeRequest::Get { id, range: None }, d)
        .await;
    assert!(matches!(r, Ok(NodeResponse::Data(_))), "{r:?}");
    let missing = ShardId::of(b"never stored");
    let r: WireResult<NodeResponse> = c
        .call(
            &addr,
            &NodeRequest::Get {
                id: missing,
                range: None,
            },
            d,
        )
        .await;
    assert!(r.is_err(), "{r:?}");

    let body = scrape(metrics).await;
    for line in [
        "dfs_rpc_requests_total{op=\"put\"} 1",
        "dfs_rpc_requests_total{op=\"get\"} 2",
        "dfs_rpc_received_bytes_total{op=\"put\"} 100000",
        "dfs_rpc_sent_bytes_total{op=\"get\"} 100000",
        "dfs_rpc_errors_total{op=\"get\",code=\"not_found\"} 1",
        "dfs_rpc_request_duration_seconds_count{op=\"get\"} 2",
        "dfs_node_shards 1",
    ] {
        assert!(has(&body, line), "missing {line:?} in\n{body}");
    }
    assert!(!has(&body, "dfs_node_used_bytes 0"), "{body}");

    let _ = stop.send(());
    node.await.unwrap().unwrap();
}
