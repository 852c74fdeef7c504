//! The coordinator served with `metrics_listen`, scraped over plain TCP: cluster gauges
//! follow the registry, and request counters and errors move with requests.

use super::*;
use dfs_ops::metrics::http::get;
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use std::time::Duration;

fn has(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line)
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics").await.unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    body
}

#[tokio::test]
async fn scrape_shows_cluster_and_request_metrics() {
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    // A port free when asked; nothing else in this test binds TCP.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = super::served::serve(certs.path(), data.path(), |c| {
        c.metrics_listen = Some(metrics)
    })
    .await;
    let addr = server.addr.clone();

    let body = scrape(metrics).await;
    for line in [
        "dfs_coord_nodes{state=\"up\"} 0",
        "dfs_coord_shards 0",
        "dfs_coord_under_replicated_shards 0",
        "dfs_coord_repair_pending_bytes 0",
        "dfs_coord_repair_in_flight_shards 0",
        "dfs_coord_repaired_shards_total 0",
        "# TYPE dfs_coord_repaired_shards_total counter",
        "# TYPE dfs_rpc_request_duration_seconds histogram",
    ] {
        assert!(has(&body, line), "missing {line:?} in\n{body}");
    }

    // A node registers; a client looks up a name that is not there.
    let ntls = ClusterTls::load_dir(certs.path(), "node-1").unwrap();
    let node = RpcClient::new(client_endpoint(&ntls).unwrap(), Role::Coord);
    let d = Duration::from_secs(5);
    let r: CoordResponse = node
        .call(
            &addr,
            &CoordRequest::Register {
                node: NodeId(1),
                addr: "127.0.0.1:1".into(),
                stats: stats(1),
            },
            d,
        )
        .await
        .unwrap();
    assert!(matches!(r, CoordResponse::Registered { .. }));
    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let client = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    let e = client
        .call::<_, CoordResponse>(
            &addr,
            &CoordRequest::Lookup {
                parent: ROOT,
                name: "nothing".into(),
            },
            d,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    let body = scrape(metrics).await;
    for line in [
        "dfs_coord_nodes{state=\"up\"} 1",
        "dfs_rpc_requests_total{op=\"register\"} 1",
        "dfs_rpc_requests_total{op=\"lookup\"} 1",
        "dfs_rpc_errors_total{op=\"lookup\",code=\"not_found\"} 1",
        "dfs_rpc_request_duration_seconds_count{op=\"lookup\"} 1",
    ] {
        assert!(has(&body, line), "missing {line:?} in\n{body}");
    }
    assert!(!has(&body, "dfs_coord_capacity_bytes 0"), "{body}");

    server.stop().await;
}
