//! Node registry: roles, registration, heartbeats, inventories, down detection.

use super::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn registry_requests_need_a_node_certificate() {
    let t = T::new();
    let reqs = [
        CoordRequest::Register {
            node: NodeId(1),
            addr: "x:1".into(),
            stats: stats(1),
        },
        CoordRequest::Heartbeat {
            node: NodeId(1),
            stats: stats(1),
        },
        CoordRequest::Inventory {
            node: NodeId(1),
            shards: vec![],
            first: true,
            last: true,
        },
    ];
    for r in reqs {
        assert_eq!(code(t.call(r).await), ErrorCode::Unauthorized);
    }
}

#[tokio::test]
async fn register_and_heartbeat() {
    let t = T::new();
    let e = t
        .node_call(CoordRequest::Heartbeat {
            node: NodeId(9),
            stats: stats(1),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let r = t
        .node_call(CoordRequest::Register {
            node: NodeId(9),
            addr: "10.0.0.9:7001".into(),
            stats: stats(100),
        })
        .await
        .unwrap();
    assert!(
        matches!(r, CoordResponse::Registered { heartbeat_ms: 1000 }),
        "{r:?}"
    );
    t.node_call(CoordRequest::Heartbeat {
        node: NodeId(9),
        stats: stats(50),
    })
    .await
    .unwrap();
    let s = t.status().await;
    assert_eq!(s.nodes.len(), 1);
    let n = &s.nodes[0];
    assert_eq!(
        (n.id, n.addr.as_str(), n.state, n.stats.free),
        (NodeId(9), "10.0.0.9:7001", NodeState::Up, 50)
    );
    assert!(n.last_seen_ms < 5000);
}

async fn inventory(t: &T, node: u64, shards: Vec<ShardId>, first: bool, last: bool) {
    t.node_call(CoordRequest::Inventory {
        node: NodeId(node),
        shards,
        first,
        last,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn inventory_adds_and_forgets_locations() {
    let t = T::new();
    for n in 1..=3 {
        t.register(n, 1 << 30).await;
    }
    let f = t.file(ROOT, "f").await;
    let (a, b) = (b"aaaa".to_vec(), b"bbbb".to_vec());
    // Slice 1 starts at the default shard size, 1 MiB.
    t.commit(
        f.ino,
        (1 << 20) + 4,
        vec![cshard(0, &a, &[1, 2]), cshard(1, &b, &[1, 2])],
        USER,
    )
    .await
    .unwrap();
    // Node 1 restarts having lost shard b; node 3 turns out to hold a; an unknown shard is
    // reported too (an orphan) and must not appear anywhere.
    let stray = ShardId::of(b"stray");
    inventory(&t, 1, vec![ShardId::of(&a)], true, false).await;
    inventory(&t, 1, vec![stray], false, true).await;
    inventory(&t, 3, vec![ShardId::of(&a)], true, true).await;
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    let holders = |i: usize| -> Vec<u64> { l.shards[i].holders.iter().map(|h| h.id.0).collect() };
    assert_eq!(holders(0), vec![1, 2, 3]);
    assert_eq!(holders(1), vec![2]);
    assert_eq!(t.status().await.under_replicated, 1);
    let p = t.place(vec![(stray, 5)]).await.unwrap();
    assert!(p[0].holders.is_empty());
    // An unknown node may not send an inventory.
    let e = t
        .node_call(CoordRequest::Inventory {
            node: NodeId(77),
            shards: vec![],
            first: true,
            last: true,
        })
        .await;
    assert_eq!(code(e), ErrorCode::NotFound);
}

#[tokio::test]
async fn down_nodes_get_nothing_and_hold_nothing() {
    let t = T::with(CoordSettings {
        replicas: 2,
        node_timeout: Duration::from_millis(200),
        ..Default::default()
    });
    for n in 1..=3 {
        t.register(n, 1 << 30).await;
    }
    let f = t.file(ROOT, "f").await;
    t.commit(f.ino, 3, vec![cshard(0, b"abc", &[1, 2])], USER)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in [2, 3] {
        t.node_call(CoordRequest::Heartbeat {
            node: NodeId(n),
            stats: stats(1 << 30),
        })
        .await
        .unwrap();
    }
    t.c.tick(Instant::now());
    let s = t.status().await;
    let states: Vec<NodeState> = s.nodes.iter().map(|n| n.state).collect();
    assert_eq!(states, vec![NodeState::Down, NodeState::Up, NodeState::Up]);
    assert_eq!(s.under_replicated, 1);
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    let holders: Vec<u64> = l.shards[0].holders.iter().map(|h| h.id.0).collect();
    assert_eq!(holders, vec![2]);
    for i in 0..20u32 {
        let p = t
            .place(vec![(ShardId::of(&i.to_le_bytes()), 10)])
            .await
            .unwrap();
        assert!(p[0].targets.iter().all(|n| n.id != NodeId(1)), "{p:?}");
        assert_eq!(p[0].targets.len(), 2);
    }
    // Re-replication of the shard goes to node 3, not to the down holder.
    let p = t.place(vec![(ShardId::of(b"abc"), 3)]).await.unwrap();
    assert_eq!(
        p[0].targets.iter().map(|n| n.id.0).collect::<Vec<_>>(),
        vec![3]
    );
    // A heartbeat brings node 1 back.
    t.node_call(CoordRequest::Heartbeat {
        node: NodeId(1),
        stats: stats(1 << 30),
    })
    .await
    .unwrap();
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    assert_eq!(l.shards[0].holders.len(), 2);
    // With only one node up and two copies required, writes are unavailable.
    t.c.tick(Instant::now() + Duration::from_secs(1));
    let e = t.place(vec![(ShardId::of(b"new"), 1)]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("only 0 of 3 nodes are up"), "{e}");
}

#[tokio::test]
async fn shard_committed_during_an_inventory_keeps_its_location() {
    // A node lists its disk, registers, then sends the list. A shard written to it and
    // committed while the list is in flight is not in the list, but the node holds it:
    // reconciliation must not forget that location.
    let t = T::new();
    for n in 1..=2 {
        t.register(n, 1 << 30).await;
    }
    let f = t.file(ROOT, "f").await;
    let data = b"arrived during the inventory".to_vec();
    inventory(&t, 1, vec![], true, false).await;
    t.commit(
        f.ino,
        data.len() as u64,
        vec![cshard(0, &data, &[1, 2])],
        USER,
    )
    .await
    .unwrap();
    inventory(&t, 1, vec![], false, true).await;
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    let holders: Vec<u64> = l.shards[0].holders.iter().map(|h| h.id.0).collect();
    assert_eq!(holders, vec![1, 2]);
}
