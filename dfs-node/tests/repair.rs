//! Repair between real nodes over QUIC with mutual TLS: `Replicate` from a peer, refusal
//! of sources that are dead or serve wrong bytes, and a corrupt copy that a `Get` finds,
//! deletes and reports to the coordinator (a fake one here, recording what it is told).
//!
//! Node A is a whole node started with `dfs_node::run`; node B is assembled from the
//! library's parts so its sources' deadline can be short (a frozen source costs 1 s
//! instead of 10).

// Helpers outside #[test] functions unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dfs_node::corruption::CorruptionHandler;
use dfs_node::replication::Replicator;
use dfs_node::server::NodeService;
use dfs_node::shard_store::ShardStore;
use dfs_node::NodeConfig;
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::node_msg::{ByteRange, NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, serve, server_endpoint, Handler, Peer, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(15);

fn shard(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 13 + seed * 101 + i / 4091) as u8)
        .collect()
}

fn shard_path(root: &Path, id: ShardId) -> PathBuf {
    let hex = id.to_hex();
    root.join("shards")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(hex)
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

/// A coordinator that accepts registrations and passes every `ReportCorrupt` on.
struct FakeCoord {
    reports: mpsc::UnboundedSender<(NodeId, ShardId)>,
}

impl Handler<CoordRequest, CoordResponse> for FakeCoord {
    async fn handle(&self, _: &Peer, req: CoordRequest) -> WireResult<CoordResponse> {
        match req {
            CoordRequest::Register { .. } => Ok(CoordResponse::Registered { heartbeat_ms: 500 }),
            CoordRequest::Inventory { .. } | CoordRequest::Heartbeat { .. } => {
                Ok(CoordResponse::Unit)
            }
            CoordRequest::ReportCorrupt { node, id } => {
                let _ = self.reports.send((node, id));
                Ok(CoordResponse::Unit)
            }
            _ => Err(WireError::invalid("not served by the fake coordinator")),
        }
    }
}

/// A node that answers every `Get` with the same wrong bytes.
struct LyingNode;

impl Handler<NodeRequest, NodeResponse> for LyingNode {
    async fn handle(&self, _: &Peer, _: NodeRequest) -> WireResult<NodeResponse> {
        Ok(NodeResponse::Data(b"not what you asked for".to_vec()))
    }
}

/// Serves `handler` with certificate `name` on 127.0.0.1 and returns the address. (A macro
/// rather than a function, since the request and response types differ per server.)
macro_rules! start {
    ($certs:expr, $name:expr, $handler:expr $(,)?) => {{
        let tls = ClusterTls::load_dir($certs, $name).unwrap();
        let ep = server_endpoint(&tls, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = ep.local_addr().unwrap().to_string();
        tokio::spawn(serve(ep, Arc::new($handler), std::future::pending()));
        addr
    }};
}

struct Cluster {
    certs: tempfile::TempDir,
    data: tempfile::TempDir,
    reports: mpsc::UnboundedReceiver<(NodeId, ShardId)>,
    /// Node A (`run`), its address and its data directory.
    a: String,
    a_dir: PathBuf,
    /// Node B (assembled here), its address and its store.
    b: String,
    b_store: Arc<ShardStore>,
    /// A node that serves wrong bytes.
    liar: String,
    /// Dials nodes with the coordinator's certificate, as repair requests come from it.
    client: RpcClient,
    /// Dials nodes with a client certificate, as a mount's Put and Get do.
    mount: RpcClient,
}

impl Cluster {
    async fn start() -> Cluster {
        let certs = tempfile::tempdir().unwrap();
        pki::init_dir(certs.path(), "t", 3).unwrap();
        let data = tempfile::tempdir().unwrap();
        let (tx, reports) = mpsc::unbounded_channel();
        let coord = start!(certs.path(), "coord", FakeCoord { reports: tx });

        let a_dir = data.path().join("a");
        let addr_file = data.path().join("a.addr");
        let cfg = NodeConfig {
            capacity: Some(64 << 20),
            addr_file: Some(addr_file.clone()),
            scrub_rate: 0,
            ..NodeConfig::new(&a_dir, coord.clone(), certs.path(), "node-1")
        };
        tokio::spawn(dfs_node::run(cfg, std::future::pending()));
        let a = wait_for_file(&addr_file).await;

        let b_store =
            Arc::new(ShardStore::open(&data.path().join("b"), Some(64 << 20), 0).unwrap());
        let b_tls = ClusterTls::load_dir(certs.path(), "node-2").unwrap();
        let dialer = client_endpoint(&b_tls).unwrap();
        let replicator =
            Replicator::new(b_store.clone(), RpcClient::new(dialer.clone(), Role::Node))
                .with_source_deadline(Duration::from_secs(1));
        let corruption =
            CorruptionHandler::new(b_store.clone(), RpcClient::new(dialer, Role::Coord), coord);
        let b = start!(
            certs.path(),
            "node-2",
            NodeService::new(b_store.clone(), replicator, corruption),
        );
        let liar = start!(certs.path(), "node-3", LyingNode);

        let tls = ClusterTls::load_dir(certs.path(), "coord").unwrap();
        let client = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Node);
        let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
        let mount = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Node);
        Cluster {
            certs,
            data,
            reports,
            a,
            a_dir,
            b,
            b_store,
            liar,
            client,
            mount,
        }
    }

    /// Sends `req` as the coordinator would (Replicate), or as a mount would (Put, Get).
    async fn call(&self, addr: &str, req: NodeRequest) -> WireResult<NodeResponse> {
        match req {
            NodeRequest::Put { .. } | NodeRequest::Get { .. } => {
                self.mount.call(addr, &req, DEADLINE).await
            }
            _ => self.client.call(addr, &req, DEADLINE).await,
        }
    }

    async fn put(&self, addr: &str, data: &[u8]) -> ShardId {
        let id = ShardId::of(data);
        let data = data.to_vec();
        let r = self
            .call(
                addr,
                NodeRequest::Put {
                    id,
                    data: data.into(),
                },
            )
            .await;
        assert!(matches!(r, Ok(NodeResponse::Stored)), "{r:?}");
        id
    }

    async fn replicate(&self, addr: &str, id: ShardId, sources: &[&str]) -> WireResult<()> {
        let sources = sources.iter().map(|s| s.to_string()).collect();
        match self
            .call(addr, NodeRequest::Replicate { id, sources })
            .await?
        {
            NodeResponse::Stored => Ok(()),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn replicate_from_a_peer_skipping_dead_and_lying_sources() {
    let c = Cluster::start().await;
    // A UDP port that never answers: a frozen or cut-off node.
    let frozen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let frozen = frozen.local_addr().unwrap().to_string();

    let bytes = shard(300_000, 1);
    let id = c.put(&c.a, &bytes).await;
    c.replicate(&c.b, id, &[&frozen, &c.liar, &c.a])
        .await
        .unwrap();
    // B's own copy is durable and verifies.
    assert_eq!(c.b_store.get(id, None).unwrap(), bytes);
    assert_eq!(c.b_store.stats().shards, 1);
    match c.call(&c.b, NodeRequest::Get { id, range: None }).await {
        Ok(NodeResponse::Data(d)) => assert_eq!(d, bytes),
        other => panic!("{other:?}"),
    }
    // Asked again, B answers from its good copy: no source is contacted at all.
    c.replicate(&c.b, id, &[&frozen]).await.unwrap();

    // Only bad sources: Unavailable, naming each source and what went wrong with it.
    let missing = ShardId::of(b"on no node");
    let e = c
        .replicate(&c.b, missing, &[&frozen, &c.liar, &c.a])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    for (src, why) in [
        (&frozen, "no answer"),
        (&c.liar, "do not match"),
        (&c.a, "not on this node"),
    ] {
        assert!(
            e.message.contains(&format!("{src}: ")),
            "{src} missing: {e}"
        );
        assert!(e.message.contains(why), "{why} missing: {e}");
    }
    let e = c.replicate(&c.b, missing, &[]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");

    // A source serving bytes that do not hash to the id is never stored from.
    let other = shard(1000, 2);
    let other_id = c.put(&c.a, &other).await;
    let e = c.replicate(&c.b, other_id, &[&c.liar]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert_eq!(
        c.b_store.get(other_id, None).unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(c.b_store.stats().shards, 1);
}

#[tokio::test]
async fn replicate_without_room_is_no_space() {
    let c = Cluster::start().await;
    // Node C: a store with 1 KiB of room, asked to replicate a 300 kB shard.
    let store = Arc::new(ShardStore::open(&c.data.path().join("c"), Some(1024), 0).unwrap());
    let tls = ClusterTls::load_dir(c.certs.path(), "node-3").unwrap();
    let dialer = client_endpoint(&tls).unwrap();
    let service = NodeService::new(
        store.clone(),
        Replicator::new(store.clone(), RpcClient::new(dialer.clone(), Role::Node)),
        CorruptionHandler::new(
            store.clone(),
            RpcClient::new(dialer, Role::Coord),
            "127.0.0.1:1".into(),
        ),
    );
    let small = start!(c.certs.path(), "node-3", service);
    let id = c.put(&c.a, &shard(300_000, 3)).await;
    let e = c.replicate(&small, id, &[&c.a]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NoSpace, "{e}");
    assert_eq!(store.stats().shards, 0);
}

#[tokio::test]
async fn corrupt_copy_is_deleted_reported_and_repaired() {
    let mut c = Cluster::start().await;
    let bytes = shard(200_000, 4);
    let id = c.put(&c.a, &bytes).await;
    let a_node: NodeId = std::fs::read_to_string(c.a_dir.join("node.id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // B has a good copy to repair from.
    c.replicate(&c.b, id, &[&c.a]).await.unwrap();

    // Flip a byte in block 2 of A's copy, then read a range covering it.
    let path = shard_path(&c.a_dir, id);
    let mut raw = std::fs::read(&path).unwrap();
    let at = dfs_node::shard_file::Header::new(200_000).data_offset() as usize + 2 * 65536 + 5;
    raw[at] ^= 0x40;
    std::fs::write(&path, &raw).unwrap();
    let range = Some(ByteRange {
        offset: 2 * 65536,
        len: 100,
    });
    let e = c
        .call(&c.a, NodeRequest::Get { id, range })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Corrupt, "{e}");
    assert!(e.message.contains("block 2"), "{e}");
    assert!(!path.exists(), "the corrupt copy must be deleted");
    let e = c
        .call(&c.a, NodeRequest::Get { id, range: None })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");

    // The coordinator hears about it.
    let report = tokio::time::timeout(DEADLINE, c.reports.recv())
        .await
        .expect("no ReportCorrupt within the deadline")
        .unwrap();
    assert_eq!(report, (a_node, id));

    // Repair: A fetches a good copy back from B.
    c.replicate(&c.a, id, &[&c.b]).await.unwrap();
    match c.call(&c.a, NodeRequest::Get { id, range: None }).await {
        Ok(NodeResponse::Data(d)) => assert_eq!(d, bytes),
        other => panic!("{other:?}"),
    }
}
