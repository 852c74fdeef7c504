//! Registration against a fake coordinator over real QUIC.

use super::*;
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::rpc::{client_endpoint, serve, server_endpoint, Handler, Peer};
use dfs_proto::tls::ClusterTls;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[test]
fn inventory_is_split_into_flagged_parts() {
    let node = dfs_proto::NodeId(7);
    let parts = inventory_parts(node, &[]);
    assert!(matches!(
        &parts[..],
        [CoordRequest::Inventory { shards, first: true, last: true, .. }] if shards.is_empty()
    ));
    let ids: Vec<ShardId> = (0..MAX_INVENTORY_PART + 1)
        .map(|i| ShardId::of(&i.to_le_bytes()))
        .collect();
    let parts = inventory_parts(node, &ids);
    let flags: Vec<(usize, bool, bool)> = parts
        .iter()
        .map(|p| match p {
            CoordRequest::Inventory {
                shards,
                first,
                last,
                ..
            } => (shards.len(), *first, *last),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        flags,
        vec![(MAX_INVENTORY_PART, true, false), (1, false, true)]
    );
}

/// Records what it is told; forgets the node on request, as a restarted coordinator would.
#[derive(Default)]
struct FakeCoord {
    log: Mutex<Vec<String>>,
    forget: AtomicBool,
}

impl FakeCoord {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Handler<CoordRequest, CoordResponse> for FakeCoord {
    async fn handle(&self, peer: &Peer, req: CoordRequest) -> WireResult<CoordResponse> {
        assert!(peer.has(Role::Node), "{:?}", peer.roles);
        let (entry, resp) = match req {
            CoordRequest::Register { addr, stats, .. } => (
                format!("register {addr} {}", stats.shards),
                Ok(CoordResponse::Registered { heartbeat_ms: 20 }),
            ),
            CoordRequest::Inventory {
                shards,
                first,
                last,
                ..
            } => (
                format!("inventory {} {first} {last}", shards.len()),
                Ok(CoordResponse::Unit),
            ),
            CoordRequest::Heartbeat { .. } => {
                if self.forget.swap(false, Ordering::SeqCst) {
                    (
                        "heartbeat forgotten".into(),
                        Err(WireError::not_found("who?")),
                    )
                } else {
                    ("heartbeat".into(), Ok(CoordResponse::Unit))
                }
            }
            other => (format!("{other:?}"), Err(WireError::invalid("unexpected"))),
        };
        self.log.lock().unwrap().push(entry);
        resp
    }
}

async fn wait_for(coord: &FakeCoord, what: impl Fn(&[String]) -> bool) {
    for _ in 0..1500 {
        if what(&coord.log()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out; coordinator saw {:?}", coord.log());
}

#[tokio::test]
async fn registers_sends_inventory_heartbeats_and_registers_again_when_forgotten() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let coord_tls = ClusterTls::load_dir(certs.path(), "coord").unwrap();
    let ep = server_endpoint(&coord_tls, "127.0.0.1:0".parse().unwrap()).unwrap();
    let coord_addr = ep.local_addr().unwrap().to_string();
    let coord = Arc::new(FakeCoord::default());
    tokio::spawn(serve(ep, coord.clone(), std::future::pending()));

    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(ShardStore::open(data.path(), Some(1 << 30), 0).unwrap());
    store.put(ShardId::of(b"held"), b"held").unwrap();
    let node_tls = ClusterTls::load_dir(certs.path(), "node-1").unwrap();
    let client = RpcClient::new(client_endpoint(&node_tls).unwrap(), Role::Coord);
    let reg = Registration::new(store, client, coord_addr, "10.0.0.1:7000".into());
    let task = tokio::spawn(reg.run());

    wait_for(&coord, |l| {
        l.iter().filter(|e| *e == "heartbeat").count() >= 2
    })
    .await;
    let log = coord.log();
    assert_eq!(log[0], "register 10.0.0.1:7000 1");
    assert_eq!(log[1], "inventory 1 true true");
    assert_eq!(log[2], "heartbeat");

    coord.forget.store(true, Ordering::SeqCst);
    wait_for(&coord, |l| {
        let i = l.iter().position(|e| e == "heartbeat forgotten");
        i.is_some_and(|i| {
            l[i + 1..].starts_with(&[
                "register 10.0.0.1:7000 1".into(),
                "inventory 1 true true".into(),
            ])
        })
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn keeps_retrying_until_the_coordinator_appears() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    // Find a free UDP port, then leave it closed for a while.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(ShardStore::open(data.path(), Some(1 << 30), 0).unwrap());
    let node_tls = ClusterTls::load_dir(certs.path(), "node-1").unwrap();
    let client = RpcClient::new(client_endpoint(&node_tls).unwrap(), Role::Coord);
    let reg = Registration::new(store, client, port.to_string(), "n:1".into());
    let task = tokio::spawn(reg.run());
    tokio::time::sleep(Duration::from_millis(600)).await;

    let coord_tls = ClusterTls::load_dir(certs.path(), "coord").unwrap();
    let ep = server_endpoint(&coord_tls, port).unwrap();
    let coord = Arc::new(FakeCoord::default());
    tokio::spawn(serve(ep, coord.clone(), std::future::pending()));
    // An empty store still sends one (empty) inventory part.
    wait_for(&coord, |l| {
        l.starts_with(&["register n:1 0".into(), "inventory 0 true true".into()])
    })
    .await;
    task.abort();
}
