//! Draining and removing nodes (`DrainNode`, `RemoveNode`, `Locate`), with the fake node
//! sender of `sender.rs`: a drain is carried out by repair, a removal forgets the
//! node, and both survive a coordinator restart.

use super::maintenance::{addr, fsck, heartbeat, holders, setup, Sent};
use super::*;
use std::time::Instant;

async fn drain(t: &T, n: u64) -> WireResult<CoordResponse> {
    t.admin_call(CoordRequest::DrainNode { node: NodeId(n) })
        .await
}

async fn remove(t: &T, n: u64, force: bool) -> WireResult<(u64, u64)> {
    match t
        .admin_call(CoordRequest::RemoveNode {
            node: NodeId(n),
            force,
        })
        .await?
    {
        CoordResponse::Removed {
            locations,
            only_copies,
        } => Ok((locations, only_copies)),
        other => panic!("expected Removed, got {other:?}"),
    }
}

async fn locate(t: &T, ids: Vec<ShardId>) -> Vec<Vec<u64>> {
    match t
        .admin_call(CoordRequest::Locate { shards: ids })
        .await
        .unwrap()
    {
        CoordResponse::Locations(l) => l
            .into_iter()
            .map(|v| {
                let mut v: Vec<u64> = v.into_iter().map(|n| n.0).collect();
                v.sort();
                v
            })
            .collect(),
        other => panic!("expected Locations, got {other:?}"),
    }
}

fn node(s: &ClusterStatus, n: u64) -> Option<&NodeInfo> {
    s.nodes.iter().find(|i| i.id == NodeId(n))
}

#[tokio::test]
async fn admin_requests_need_an_admin_certificate() {
    let (t, _fake) = setup(CoordSettings::default(), 2).await;
    let reqs = [
        CoordRequest::DrainNode { node: NodeId(1) },
        CoordRequest::RemoveNode {
            node: NodeId(1),
            force: true,
        },
        CoordRequest::Locate { shards: vec![] },
    ];
    for req in reqs {
        assert_eq!(code(t.call(req.clone()).await), ErrorCode::Unauthorized);
        assert_eq!(code(t.node_call(req).await), ErrorCode::Unauthorized);
    }
    // Nothing happened: node 1 is neither draining nor gone.
    let s = t.status().await;
    assert_eq!(s.nodes.len(), 2);
    assert!(!node(&s, 1).unwrap().draining);
    assert_eq!(code(drain(&t, 9).await), ErrorCode::NotFound);
    assert_eq!(code(remove(&t, 9, true).await), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_drained_node_s_shards_are_copied_elsewhere_then_it_is_removed() {
    let (t, fake) = setup(
        CoordSettings {
            replicas: 2,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let data = b"moving house".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 12, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();

    let capacity = || async {
        match t.call(CoordRequest::StatFs).await.unwrap() {
            CoordResponse::FsStats(f) => f.capacity,
            other => panic!("expected FsStats, got {other:?}"),
        }
    };
    let before = capacity().await;
    assert!(matches!(drain(&t, 1).await.unwrap(), CoordResponse::Unit));
    // statfs counts only the space that stays.
    assert_eq!(capacity().await, before / 3 * 2);
    // Draining twice is harmless.
    drain(&t, 1).await.unwrap();
    let s = t.status().await;
    let n1 = node(&s, 1).unwrap();
    assert!(n1.draining);
    assert_eq!((n1.drain_shards_left, n1.drain_bytes_left), (1, 12));
    // Its copy no longer counts, so the shard is under-replicated (but not missing).
    assert_eq!(s.under_replicated, 1);
    let r = fsck(&t).await;
    assert_eq!((r.missing.len(), r.under_replicated.len()), (0, 1));

    // New writes avoid the draining node, however empty it is.
    for i in 0..10u8 {
        let p = t.place(vec![(ShardId::of(&[i]), 1)]).await.unwrap();
        assert!(p[0].targets.iter().all(|n| n.id != NodeId(1)), "{p:?}");
    }

    // Repair copies the shard to node 3, from the counted holder first, the draining one
    // as a fallback.
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert_eq!(
        fake.take(),
        vec![(addr(3), Sent::Replicate(id, vec![addr(2), addr(1)]))]
    );
    // The draining copy stays readable until the copy elsewhere exists, offered last...
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    assert_eq!(holders(&l, 0), vec![1, 2, 3]);
    assert_eq!(l.shards[0].holders[2].id, NodeId(1), "{l:?}");
    let s = t.status().await;
    assert_eq!(node(&s, 1).unwrap().drain_shards_left, 1);
    assert_eq!(s.under_replicated, 0);
    assert!(fsck(&t).await.under_replicated.is_empty());
    // ...and then goes: that is the "move".
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert_eq!(fake.take(), vec![(addr(1), Sent::Delete(id))]);
    assert_eq!(locate(&t, vec![id]).await, vec![vec![2, 3]]);
    let s = t.status().await;
    assert_eq!(node(&s, 1).unwrap().drain_shards_left, 0);
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert!(fake.take().is_empty(), "a drained node needs nothing more");

    // Removal: the node leaves the status, and it may not come back.
    assert_eq!(remove(&t, 1, false).await.unwrap(), (0, 0));
    assert_eq!(locate(&t, vec![id]).await, vec![vec![2, 3]]);
    let s = t.status().await;
    assert_eq!(s.nodes.len(), 2);
    assert!(node(&s, 1).is_none());
    let back = t
        .node_call(CoordRequest::Heartbeat {
            node: NodeId(1),
            stats: stats(1 << 30),
        })
        .await;
    assert_eq!(code(back), ErrorCode::NotFound);
    let again = t
        .node_call(CoordRequest::Register {
            node: NodeId(1),
            addr: addr(1),
            stats: stats(1 << 30),
        })
        .await;
    let e = again.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotPermitted);
    assert!(
        e.message
            .contains("was removed from this cluster; wipe its data directory"),
        "{e}"
    );
    assert_eq!(t.status().await.nodes.len(), 2);
    assert_eq!(code(remove(&t, 1, true).await), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_draining_node_that_is_down_is_drained_from_the_other_copies() {
    let (t, fake) = setup(
        CoordSettings {
            replicas: 2,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let data = b"left behind".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 11, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();
    drain(&t, 1).await.unwrap();
    // Node 1 stops heartbeating: no repair grace applies to a node being drained.
    let now = super::maintenance::lose(&t, 3, &[1]).await;
    t.c.maintain_once(now).await.unwrap();
    assert_eq!(
        fake.take(),
        vec![(addr(3), Sent::Replicate(id, vec![addr(2)]))]
    );
    // Complete elsewhere: node 1's location is forgotten, without asking it anything.
    t.c.maintain_once(now).await.unwrap();
    assert!(fake.take().is_empty());
    assert_eq!(locate(&t, vec![id]).await, vec![vec![2, 3]]);
    let s = t.status().await;
    let n1 = node(&s, 1).unwrap();
    assert_eq!(
        (n1.state, n1.draining, n1.drain_shards_left),
        (NodeState::Down, true, 0)
    );
}

#[tokio::test]
async fn a_draining_copy_is_kept_while_another_copy_is_only_probably_coming_back() {
    let (t, fake) = setup(
        CoordSettings {
            replicas: 2,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let data = b"careful".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 7, vec![cshard(0, &data, &[1, 2, 3])], USER)
        .await
        .unwrap();
    drain(&t, 1).await.unwrap();
    // Node 3 is down, within the repair grace: its copy counts (nothing to repair), but
    // only node 2's copy can be read besides the draining one, so that one stays.
    let now = super::maintenance::lose(&t, 3, &[3]).await;
    t.c.maintain_once(now).await.unwrap();
    assert!(fake.take().is_empty());
    assert_eq!(locate(&t, vec![id]).await, vec![vec![1, 2, 3]]);
    assert_eq!(node(&t.status().await, 1).unwrap().drain_shards_left, 1);
    // Node 3 is back: now the draining copy goes.
    heartbeat(&t, 3).await;
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert_eq!(fake.take(), vec![(addr(1), Sent::Delete(id))]);
    assert_eq!(node(&t.status().await, 1).unwrap().drain_shards_left, 0);
}

#[tokio::test]
async fn removal_is_refused_while_the_node_holds_the_only_copy() {
    let (t, _fake) = setup(
        CoordSettings {
            replicas: 2,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let (only, shared) = (b"only here".to_vec(), b"two copies".to_vec());
    let (only_id, shared_id) = (ShardId::of(&only), ShardId::of(&shared));
    t.commit(
        f.ino,
        2 << 20,
        vec![cshard(0, &only, &[1]), cshard(1, &shared, &[1, 2])],
        USER,
    )
    .await
    .unwrap();
    let e = remove(&t, 1, false).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotPermitted);
    assert!(e.message.contains("only copy of 1 shard"), "{e}");
    // A refusal changes nothing.
    assert_eq!(
        locate(&t, vec![only_id, shared_id]).await,
        vec![vec![1], vec![1, 2]]
    );
    assert_eq!(t.status().await.nodes.len(), 3);

    // Forced: the data is gone and fsck says so.
    assert_eq!(remove(&t, 1, true).await.unwrap(), (2, 1));
    assert_eq!(
        locate(&t, vec![only_id, shared_id, ShardId::of(b"unknown")]).await,
        vec![vec![], vec![2], vec![]]
    );
    let r = fsck(&t).await;
    assert_eq!((r.missing.len(), r.under_replicated.len()), (1, 1));
}

#[tokio::test]
async fn draining_and_removal_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    // One copy per shard, so that a single eligible node can take a write below.
    let one = CoordSettings {
        replicas: 1,
        min_copies: 1,
        ..Default::default()
    };
    {
        let t = T::wrap(Coordinator::open(&path, one).unwrap());
        for n in 1..=3 {
            t.register(n, 1 << 30).await;
        }
        drain(&t, 2).await.unwrap();
        remove(&t, 3, false).await.unwrap();
    }
    let t = T::wrap(Coordinator::open(&path, one).unwrap());
    let s = t.status().await;
    let ids: Vec<u64> = s.nodes.iter().map(|n| n.id.0).collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(!node(&s, 1).unwrap().draining);
    assert!(node(&s, 2).unwrap().draining);
    // A draining node that registers again is still draining, and still gets nothing new.
    t.register(1, 1 << 30).await;
    // Node 2 reports far more free space: without the drain it would win the pick.
    t.register(2, 1 << 40).await;
    assert!(node(&t.status().await, 2).unwrap().draining);
    let p = t.place(vec![(ShardId::of(b"x"), 1)]).await.unwrap();
    let targets: Vec<u64> = p[0].targets.iter().map(|n| n.id.0).collect();
    assert_eq!(targets, vec![1], "{p:?}");
    let e = t
        .node_call(CoordRequest::Register {
            node: NodeId(3),
            addr: addr(3),
            stats: stats(1 << 30),
        })
        .await;
    assert_eq!(code(e), ErrorCode::NotPermitted);
}
