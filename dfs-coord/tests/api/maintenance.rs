//! Background maintenance through `maintain_once`, with a fake node sender and chosen
//! instants: re-replication, surplus removal, garbage collection, corrupt reports, fsck
//! and the repair throttle.
//!
//! Longer than the ~600 lines a source file should stay under, on purpose: it is a flat
//! list of independent tests, one per rule, each readable alone; nothing in it is shared
//! state or structure that a split would make clearer.

use super::*;
use dfs_coord::{NodeSender, SendFuture};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::WireError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Records every request and answers as a healthy node would.
#[derive(Default)]
pub(crate) struct Fake {
    log: Mutex<Vec<(String, NodeRequest)>>,
}

impl NodeSender for Fake {
    fn send<'a>(&'a self, addr: &'a str, req: NodeRequest) -> SendFuture<'a> {
        let resp = match &req {
            NodeRequest::Replicate { .. } => Ok(NodeResponse::Stored),
            NodeRequest::Delete { .. } => Ok(NodeResponse::Deleted),
            _ => Err(WireError::invalid("unexpected request")),
        };
        self.log.lock().unwrap().push((addr.to_string(), req));
        Box::pin(async move { resp })
    }
}

impl Fake {
    /// Takes the requests recorded so far as `(address, summary)`.
    pub(crate) fn take(&self) -> Vec<(String, Sent)> {
        std::mem::take(&mut *self.log.lock().unwrap())
            .into_iter()
            .map(|(a, r)| {
                let s = match r {
                    NodeRequest::Replicate { id, sources } => Sent::Replicate(id, sources),
                    NodeRequest::Delete { id } => Sent::Delete(id),
                    other => panic!("unexpected request {other:?}"),
                };
                (a, s)
            })
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    Replicate(ShardId, Vec<String>),
    Delete(ShardId),
}

pub(crate) fn addr(n: u64) -> String {
    format!("127.0.0.1:{}", 7000 + n)
}

/// A coordinator with nodes 1..=n registered and a fake sender plugged in.
pub(crate) async fn setup(s: CoordSettings, n: u64) -> (T, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let t = T::wrap(
        Coordinator::open_in_memory_with(
            CoordSettings {
                node_timeout: Duration::from_millis(200),
                ..s
            },
            fake.clone(),
        )
        .unwrap(),
    );
    for i in 1..=n {
        t.register(i, 1 << 30).await;
    }
    (t, fake)
}

/// Lets `down` nodes miss their heartbeats while the others keep beating; returns the
/// instant they were marked Down.
pub(crate) async fn lose(t: &T, n: u64, down: &[u64]) -> Instant {
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in (1..=n).filter(|i| !down.contains(i)) {
        heartbeat(t, i).await;
    }
    let now = Instant::now();
    t.c.tick(now);
    now
}

pub(crate) async fn heartbeat(t: &T, n: u64) {
    t.node_call(CoordRequest::Heartbeat {
        node: NodeId(n),
        stats: stats(1 << 30),
    })
    .await
    .unwrap();
}

pub(crate) fn holders(l: &Layout, i: usize) -> Vec<u64> {
    let mut h: Vec<u64> = l.shards[i].holders.iter().map(|h| h.id.0).collect();
    h.sort();
    h
}

pub(crate) async fn fsck(t: &T) -> FsckReport {
    match t.admin_call(CoordRequest::Fsck).await.unwrap() {
        CoordResponse::Fsck(r) => r,
        other => panic!("expected Fsck, got {other:?}"),
    }
}

/// Drops every reference to the file's shards (truncate to 0).
async fn unref_all(t: &T, ino: Ino) {
    t.setattr(
        ino,
        SetAttrs {
            size: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn lost_node_is_re_replicated_after_the_grace_and_surplus_removed_on_return() {
    let grace = Duration::from_secs(60);
    let (t, fake) = setup(
        CoordSettings {
            replicas: 2,
            repair_grace: grace,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let data = b"precious".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 8, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();
    let down_at = lose(&t, 3, &[1]).await;

    // Within the grace the node is probably restarting: nothing is copied.
    t.c.maintain_once(down_at + Duration::from_secs(10))
        .await
        .unwrap();
    assert!(fake.take().is_empty());
    assert_eq!(t.status().await.repair.bytes_left, 0);

    // Past it, node 3 copies the shard from node 2, the only live holder.
    t.c.maintain_once(down_at + grace + Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        fake.take(),
        vec![(addr(3), Sent::Replicate(id, vec![addr(2)]))]
    );
    assert_eq!(
        holders(&t.layout(f.ino, 0, 10).await.unwrap(), 0),
        vec![2, 3]
    );
    let s = t.status().await;
    assert_eq!((s.under_replicated, s.repair.repaired), (0, 1));
    assert_eq!((s.repair.bytes_left, s.repair.in_flight), (0, 0));

    // Node 1 comes back with its old copy: three copies, one too many; the returning
    // node's goes.
    heartbeat(&t, 1).await;
    t.c.maintain_once(down_at + grace + Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(fake.take(), vec![(addr(1), Sent::Delete(id))]);
    assert_eq!(
        holders(&t.layout(f.ino, 0, 10).await.unwrap(), 0),
        vec![2, 3]
    );
    t.c.maintain_once(down_at + grace + Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        fake.take().is_empty(),
        "a healthy cluster needs no maintenance"
    );
}

#[tokio::test]
async fn unreferenced_shards_are_collected_only_after_the_grace_and_never_if_just_placed() {
    let grace = Duration::from_millis(300);
    let (t, fake) = setup(
        CoordSettings {
            gc_grace: grace,
            unref_grace: grace,
            ..Default::default()
        },
        2,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let (a, b, c) = (b"aaa".to_vec(), b"bbb".to_vec(), b"ccc".to_vec());
    t.commit(
        f.ino,
        3 << 20,
        vec![
            cshard(0, &a, &[1, 2]),
            cshard(1, &b, &[1, 2]),
            cshard(2, &c, &[1, 2]),
        ],
        USER,
    )
    .await
    .unwrap();
    // Only a and b lose their references; c stays in use.
    t.setattr(
        f.ino,
        SetAttrs {
            size: Some(2 << 20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let g = t.file(ROOT, "g").await;
    t.commit(g.ino, 3, vec![cshard(0, &c, &[1, 2])], USER)
        .await
        .unwrap();
    unref_all(&t, f.ino).await;
    assert_eq!(fsck(&t).await.orphaned, 2);

    let t0 = Instant::now();
    t.c.maintain_once(t0).await.unwrap();
    t.c.maintain_once(t0 + grace / 2).await.unwrap();
    assert!(fake.take().is_empty(), "deleted within the grace");

    // A writer is about to reuse b (identical content): Place protects it.
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    t.place(vec![(ShardId::of(&b), 3)]).await.unwrap();
    t.c.maintain_once(Instant::now()).await.unwrap();
    let mut sent = fake.take();
    sent.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        sent,
        vec![
            (addr(1), Sent::Delete(ShardId::of(&a))),
            (addr(2), Sent::Delete(ShardId::of(&a)))
        ]
    );
    let s = t.status().await;
    assert_eq!(s.repair.collected, 1);
    let r = fsck(&t).await;
    assert_eq!((r.orphaned, r.shards), (1, 1));
    // c is still in use by g and was never touched.
    assert_eq!(
        holders(&t.layout(g.ino, 0, 10).await.unwrap(), 0),
        vec![1, 2]
    );

    // Once the placement is older than the grace, b goes too.
    t.c.maintain_once(Instant::now() + grace + Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(fake.take().len(), 2);
    assert_eq!(fsck(&t).await.orphaned, 0);
}

#[tokio::test]
async fn committed_then_replaced_content_waits_only_the_unref_grace() {
    // A placement protects a shard for gc_grace, but the commit uses it up: content that
    // was placed, committed and then overwritten goes after the (short) unref_grace. Had
    // the placement kept protecting it, a program rewriting one file would fill the disks
    // for gc_grace (fsx did, at 30 MB/s).
    let unref = Duration::from_millis(200);
    let (t, fake) = setup(
        CoordSettings {
            gc_grace: Duration::from_secs(600),
            unref_grace: unref,
            ..Default::default()
        },
        2,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let old = b"old content".to_vec();
    t.place(vec![(ShardId::of(&old), old.len() as u32)])
        .await
        .unwrap();
    t.commit(f.ino, 11, vec![cshard(0, &old, &[1, 2])], USER)
        .await
        .unwrap();
    unref_all(&t, f.ino).await;
    let t0 = Instant::now();
    t.c.maintain_once(t0).await.unwrap();
    assert!(fake.take().is_empty(), "deleted within the unref grace");
    t.c.maintain_once(t0 + unref * 2).await.unwrap();
    let mut sent = fake.take();
    sent.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        sent,
        vec![
            (addr(1), Sent::Delete(ShardId::of(&old))),
            (addr(2), Sent::Delete(ShardId::of(&old)))
        ]
    );
}

#[tokio::test]
async fn shard_referenced_again_is_kept() {
    let grace = Duration::from_millis(100);
    let (t, fake) = setup(
        CoordSettings {
            gc_grace: grace,
            unref_grace: grace,
            ..Default::default()
        },
        2,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let a = b"again".to_vec();
    t.commit(f.ino, 5, vec![cshard(0, &a, &[1, 2])], USER)
        .await
        .unwrap();
    unref_all(&t, f.ino).await;
    let t0 = Instant::now();
    t.c.maintain_once(t0).await.unwrap();
    t.commit(f.ino, 5, vec![cshard(0, &a, &[])], USER)
        .await
        .unwrap();
    t.c.maintain_once(t0 + grace * 5).await.unwrap();
    assert!(fake.take().is_empty());
    assert_eq!(
        holders(&t.layout(f.ino, 0, 10).await.unwrap(), 0),
        vec![1, 2]
    );
}

#[tokio::test]
async fn unknown_shards_on_nodes_are_deleted_after_the_grace() {
    let grace = Duration::from_millis(300);
    let (t, fake) = setup(
        CoordSettings {
            gc_grace: grace,
            unref_grace: grace,
            ..Default::default()
        },
        2,
    )
    .await;
    let (stray, placed) = (ShardId::of(b"stray"), ShardId::of(b"placed"));
    t.node_call(CoordRequest::Inventory {
        node: NodeId(1),
        shards: vec![stray, placed],
        first: true,
        last: true,
    })
    .await
    .unwrap();
    assert_eq!(fsck(&t).await.orphaned, 2);
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert!(fake.take().is_empty());
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    // A write is storing `placed` right now: it must survive.
    t.place(vec![(placed, 6)]).await.unwrap();
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert_eq!(fake.take(), vec![(addr(1), Sent::Delete(stray))]);
    assert_eq!(fsck(&t).await.orphaned, 1);
}

#[tokio::test]
async fn corrupt_report_drops_the_copy_and_repair_restores_it() {
    let (t, fake) = setup(CoordSettings::default(), 3).await;
    let f = t.file(ROOT, "f").await;
    let data = b"bit rot".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 7, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();
    let report = CoordRequest::ReportCorrupt {
        node: NodeId(1),
        id,
    };
    // Only a node may say its copy is bad.
    assert_eq!(code(t.call(report.clone()).await), ErrorCode::Unauthorized);
    let r = t.node_call(report).await.unwrap();
    assert!(matches!(r, CoordResponse::Unit), "{r:?}");
    assert_eq!(holders(&t.layout(f.ino, 0, 10).await.unwrap(), 0), vec![2]);
    let r = fsck(&t).await;
    assert_eq!((r.corrupt, r.shards, r.missing.len()), (1, 1, 0));
    assert_eq!(r.under_replicated.len(), 1);
    let issue = &r.under_replicated[0];
    assert_eq!(
        (issue.id, issue.live_copies, issue.files.clone()),
        (id, 1, vec![f.ino])
    );

    // No node is down, so repair starts at once, copying from node 2 to node 3: the node
    // whose disk rotted the shard is not trusted with its replacement.
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert_eq!(
        fake.take(),
        vec![(addr(3), Sent::Replicate(id, vec![addr(2)]))]
    );
    let r = fsck(&t).await;
    assert!(
        r.under_replicated.is_empty() && r.missing.is_empty(),
        "{r:?}"
    );
}

#[tokio::test]
async fn corrupt_copy_goes_back_to_the_reporter_if_no_other_node_exists() {
    let (t, fake) = setup(CoordSettings::default(), 2).await;
    let f = t.file(ROOT, "f").await;
    let data = b"two nodes only".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 14, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();
    t.node_call(CoordRequest::ReportCorrupt {
        node: NodeId(2),
        id,
    })
    .await
    .unwrap();
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert_eq!(
        fake.take(),
        vec![(addr(2), Sent::Replicate(id, vec![addr(1)]))]
    );
}

#[tokio::test]
async fn fsck_reports_missing_and_under_replicated_shards() {
    let (t, fake) = setup(
        CoordSettings {
            repair_grace: Duration::ZERO,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let g = t.file(ROOT, "g").await;
    let (x, y) = (b"only on 1 and 2".to_vec(), b"on 1 and 3".to_vec());
    t.commit(f.ino, 15, vec![cshard(0, &x, &[1, 2])], USER)
        .await
        .unwrap();
    t.commit(g.ino, 10, vec![cshard(0, &y, &[1, 3])], USER)
        .await
        .unwrap();
    let down_at = lose(&t, 3, &[1, 2]).await;
    let r = fsck(&t).await;
    assert_eq!(r.shards, 2);
    assert_eq!(r.missing.len(), 1);
    assert_eq!(
        (
            r.missing[0].id,
            r.missing[0].live_copies,
            r.missing[0].files.clone()
        ),
        (ShardId::of(&x), 0, vec![f.ino])
    );
    assert_eq!(r.under_replicated.len(), 1);
    assert_eq!(r.under_replicated[0].id, ShardId::of(&y));
    // Nothing can be copied: x has no source, and the only up node already holds y.
    t.c.maintain_once(down_at + Duration::from_secs(1))
        .await
        .unwrap();
    assert!(fake.take().is_empty());
    assert_eq!(t.status().await.repair.bytes_left, y.len() as u64);
}

#[tokio::test]
async fn repair_respects_the_rate() {
    let (t, fake) = setup(
        CoordSettings {
            repair_grace: Duration::ZERO,
            repair_rate: 250,
            // One pass per second: each may send one second's worth.
            maintenance_interval: Duration::from_secs(1),
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    // Five 100-byte shards, each on nodes 1 and 2 (slices 1 MiB apart).
    let shards: Vec<CommitShard> = (0..5u8)
        .map(|i| cshard(u64::from(i), &[i; 100], &[1, 2]))
        .collect();
    t.commit(f.ino, (4 << 20) + 100, shards, USER)
        .await
        .unwrap();
    let down_at = lose(&t, 3, &[1]).await;
    let t0 = down_at + Duration::from_secs(1);
    // 250 bytes of budget: two 100-byte copies fit, a third does not.
    t.c.maintain_once(t0).await.unwrap();
    assert_eq!(fake.take().len(), 2);
    assert_eq!(t.status().await.repair.bytes_left, 300);
    t.c.maintain_once(t0).await.unwrap();
    assert!(fake.take().is_empty(), "no time passed, no new budget");
    t.c.maintain_once(t0 + Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(fake.take().len(), 2);
    t.c.maintain_once(t0 + Duration::from_secs(2))
        .await
        .unwrap();
    let sent = fake.take();
    assert_eq!(sent.len(), 1);
    assert!(sent.iter().all(|(a, _)| *a == addr(3)));
    let s = t.status().await;
    assert_eq!(
        (s.repair.repaired, s.repair.bytes_left, s.under_replicated),
        (5, 0, 0)
    );
}

#[tokio::test]
async fn aborted_writes_are_collected_from_their_targets_after_the_grace() {
    // A writer placed two shards and stored them, committed one, then died. The other one
    // is on its targets' disks with no record anywhere: after the grace it is deleted
    // there, and the committed one is left alone.
    let grace = Duration::from_millis(300);
    let (t, fake) = setup(
        CoordSettings {
            gc_grace: grace,
            unref_grace: grace,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT_INO, "f").await;
    let (kept, lost) = (b"committed".to_vec(), b"never committed".to_vec());
    let p = t
        .place(vec![(ShardId::of(&kept), 9), (ShardId::of(&lost), 15)])
        .await
        .unwrap();
    let targets = |i: usize| -> Vec<String> {
        let mut a: Vec<String> = p[i].targets.iter().map(|n| n.addr.clone()).collect();
        a.sort();
        a
    };
    let on: Vec<u64> = p[0].targets.iter().map(|n| n.id.0).collect();
    t.commit(f.ino, 9, vec![cshard(0, &kept, &on)], USER)
        .await
        .unwrap();
    t.c.maintain_once(Instant::now()).await.unwrap();
    assert!(fake.take().is_empty(), "collected inside the grace");
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    t.c.maintain_once(Instant::now()).await.unwrap();
    let mut sent: Vec<(String, Sent)> = fake.take();
    sent.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Sent)> = targets(1)
        .into_iter()
        .map(|a| (a, Sent::Delete(ShardId::of(&lost))))
        .collect();
    assert_eq!(sent, want);
}

#[tokio::test]
async fn an_orphan_goes_one_grace_after_its_last_touch_and_only_its_own_touch_counts() {
    let grace = Duration::from_millis(300);
    let (t, _fake) = setup(
        CoordSettings {
            gc_grace: grace,
            ..Default::default()
        },
        2,
    )
    .await;
    let unlink_open = |name: &'static str| {
        t.call(CoordRequest::Unlink {
            parent: ROOT,
            name: name.into(),
            keep: true,
        })
    };
    let (a, b) = (t.file(ROOT, "a").await, t.file(ROOT, "b").await);
    let named = t.file(ROOT, "named").await;
    unlink_open("a").await.unwrap();
    unlink_open("b").await.unwrap();
    let exists = |ino| t.call(CoordRequest::GetAttr { ino });

    // The first pass starts each orphan's grace.
    let t0 = Instant::now();
    t.c.maintain_once(t0).await.unwrap();
    // Within the grace, a touch renews `a` (a touch of a named file changes nothing).
    tokio::time::sleep(grace / 2).await;
    t.call(CoordRequest::Touch {
        shards: vec![],
        open: vec![a.ino, named.ino],
    })
    .await
    .unwrap();
    // Past b's grace but within a's renewed one.
    t.c.maintain_once(t0 + grace + grace / 4).await.unwrap();
    assert!(exists(a.ino).await.is_ok(), "a was touched");
    assert_eq!(
        exists(b.ino).await.unwrap_err().code,
        ErrorCode::NotFound,
        "nobody touched b"
    );
    // Nobody touches a any more.
    t.c.maintain_once(t0 + 3 * grace).await.unwrap();
    assert_eq!(exists(a.ino).await.unwrap_err().code, ErrorCode::NotFound);
    assert!(
        exists(named.ino).await.is_ok(),
        "named files are never orphans"
    );
}
