//! Layouts, commits, truncation and placement.

use super::*;

/// A coordinator with 1 KiB shards and three roomy nodes.
async fn small() -> T {
    let t = T::with(CoordSettings {
        shard_size: 1024,
        ..Default::default()
    });
    for n in 1..=3 {
        t.register(n, 1 << 30).await;
    }
    t
}

fn data(fill: u8, len: usize) -> Vec<u8> {
    vec![fill; len]
}

#[tokio::test]
async fn commit_then_get_layout() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    let (a, b) = (data(1, 1024), data(2, 100));
    let attr = t
        .commit(
            f.ino,
            1124,
            vec![cshard(0, &a, &[1, 2]), cshard(1, &b, &[2, 3])],
            USER,
        )
        .await
        .unwrap();
    assert_eq!((attr.size, attr.mtime, attr.generation), (1124, 42, 1));
    assert!(attr.ctime > f.ctime);
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    assert_eq!((l.shard_size, l.more, l.attr.size), (1024, false, 1124));
    assert_eq!(l.shards.len(), 2);
    assert_eq!(
        (l.shards[0].index, l.shards[0].id, l.shards[0].len),
        (0, ShardId::of(&a), 1024)
    );
    let holders: Vec<u64> = l.shards[1].holders.iter().map(|h| h.id.0).collect();
    assert_eq!(holders, vec![2, 3]);
    assert_eq!(l.shards[1].holders[0].addr, "127.0.0.1:7002");
}

#[tokio::test]
async fn a_commit_applies_the_mode_owner_and_times_folded_into_it_after_the_content() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    let a = data(7, 300);
    let commit = |set: SetAttrs| CoordRequest::Commit {
        ino: f.ino,
        size: 300,
        mtime: 42,
        shards: vec![cshard(0, &a, &[1, 2])],
        caller: USER,
        set,
    };
    let attr = t
        .attr(commit(SetAttrs {
            perm: Some(0o600),
            uid: Some(4242),
            gid: Some(77),
            atime: Some(SetTime::At(9)),
            mtime: Some(SetTime::At(11)),
            ..SetAttrs::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        (attr.size, attr.perm, attr.uid, attr.gid, attr.atime, attr.mtime),
        (300, 0o600, 4242, 77, 9, 11)
    );
    // Stored, not only answered.
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    assert_eq!((l.attr.perm, l.attr.uid, l.attr.mtime), (0o600, 4242, 11));
    // A size in the folded set would contradict the commit's own.
    let e = t
        .attr(commit(SetAttrs {
            size: Some(1),
            ..SetAttrs::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Invalid, "{e}");
    assert_eq!(t.layout(f.ino, 0, 10).await.unwrap().attr.size, 300);
}

#[tokio::test]
async fn layout_only_for_files_and_commit_validation() {
    let t = small().await;
    let d = t.mkdir(ROOT, "d").await;
    assert_eq!(code(t.layout(d.ino, 0, 10).await), ErrorCode::IsDir);
    assert_eq!(
        code(t.commit(d.ino, 0, vec![], USER).await),
        ErrorCode::IsDir
    );
    let p = t
        .create_as(ROOT, "p", FileKind::Fifo, 0o644, USER)
        .await
        .unwrap();
    assert_eq!(code(t.layout(p.ino, 0, 10).await), ErrorCode::Invalid);
    assert_eq!(
        code(t.commit(p.ino, 0, vec![], USER).await),
        ErrorCode::Invalid
    );
    assert_eq!(code(t.layout(999, 0, 10).await), ErrorCode::NotFound);
    let f = t.file(ROOT, "f").await;
    let mut s = cshard(0, b"abc", &[1]);
    s.len = 4;
    assert_eq!(
        code(t.commit(f.ino, 4, vec![s], USER).await),
        ErrorCode::Invalid
    );
    let mut s = cshard(0, b"abc", &[1]);
    s.shard_len = 2048;
    s.len = 2048;
    assert_eq!(
        code(t.commit(f.ino, 3, vec![s], USER).await),
        ErrorCode::Invalid
    );
    // Nothing of a refused commit remains.
    assert!(t.layout(f.ino, 0, 10).await.unwrap().shards.is_empty());
    assert_eq!(t.getattr(f.ino).await.unwrap().generation, 0);
}

#[tokio::test]
async fn commit_clears_setid_for_non_root() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    let set = SetAttrs {
        perm: Some(0o6755),
        ..Default::default()
    };
    t.setattr(f.ino, set.clone()).await.unwrap();
    let a = t.commit(f.ino, 0, vec![], Caller::ROOT).await.unwrap();
    assert_eq!(a.perm, 0o6755);
    let a = t.commit(f.ino, 0, vec![], USER).await.unwrap();
    assert_eq!(a.perm, 0o755);
}

#[tokio::test]
async fn truncate_drops_and_clamps() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    let shards: Vec<_> = (0..3u8)
        .map(|i| cshard(i as u64, &data(i + 1, 1024), &[1, 2]))
        .collect();
    t.commit(f.ino, 3072, shards, USER).await.unwrap();
    assert_eq!(t.status().await.shards, 3);
    let a = t
        .setattr(
            f.ino,
            SetAttrs {
                size: Some(1500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 1500);
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    let got: Vec<(u64, u32)> = l.shards.iter().map(|s| (s.index, s.len)).collect();
    assert_eq!(got, vec![(0, 1024), (1, 476)]);
    assert_eq!(
        t.status().await.shards,
        2,
        "the dropped shard lost its reference"
    );
    // Growing again leaves the clamped tail clamped: those bytes read as zeros.
    t.setattr(
        f.ino,
        SetAttrs {
            size: Some(5000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    let got: Vec<(u64, u32)> = l.shards.iter().map(|s| (s.index, s.len)).collect();
    assert_eq!(got, vec![(0, 1024), (1, 476)]);
    // To an exact shard boundary.
    t.setattr(
        f.ino,
        SetAttrs {
            size: Some(1024),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(t.layout(f.ino, 0, 10).await.unwrap().shards.len(), 1);
}

#[tokio::test]
async fn commit_replaces_and_truncates() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    let (a, b, c) = (data(1, 1024), data(2, 1024), data(3, 10));
    t.commit(
        f.ino,
        2048,
        vec![cshard(0, &a, &[1, 2]), cshard(1, &b, &[1, 2])],
        USER,
    )
    .await
    .unwrap();
    // Rewrite slice 1 with a short shard and shrink the file in the same commit.
    let attr = t
        .commit(f.ino, 1034, vec![cshard(1, &c, &[2, 3])], USER)
        .await
        .unwrap();
    assert_eq!((attr.size, attr.generation), (1034, 2));
    let l = t.layout(f.ino, 0, 10).await.unwrap();
    assert_eq!(l.shards[1].id, ShardId::of(&c));
    assert_eq!(
        t.status().await.shards,
        2,
        "the replaced shard is unreferenced"
    );
    // The same content committed twice (two files) is one shard with two references.
    let g = t.file(ROOT, "g").await;
    t.commit(g.ino, 1024, vec![cshard(0, &a, &[])], USER)
        .await
        .unwrap();
    t.unit(CoordRequest::Unlink {
        parent: ROOT,
        name: "f".into(),
        keep: false,
    })
    .await
    .unwrap();
    assert_eq!(t.status().await.shards, 1);
    let l = t.layout(g.ino, 0, 10).await.unwrap();
    assert_eq!(
        l.shards[0].holders.len(),
        2,
        "locations recorded by the first writer"
    );
}

#[tokio::test]
async fn layout_pages() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    let shards: Vec<_> = (0..5u8)
        .map(|i| cshard(i as u64 * 2, &data(i, 1024), &[1]))
        .collect();
    t.commit(f.ino, 10 * 1024, shards, USER).await.unwrap();
    let l = t.layout(f.ino, 0, 4).await.unwrap();
    let idx: Vec<u64> = l.shards.iter().map(|s| s.index).collect();
    assert_eq!((idx, l.more), (vec![0, 2], true));
    let l = t.layout(f.ino, 4, 4).await.unwrap();
    let idx: Vec<u64> = l.shards.iter().map(|s| s.index).collect();
    assert_eq!((idx, l.more), (vec![4, 6], true));
    let l = t.layout(f.ino, 8, 4).await.unwrap();
    assert_eq!((l.shards.len(), l.more), (1, false));
    let l = t.layout(f.ino, 3, 1).await.unwrap();
    assert!(
        l.shards.is_empty() && l.more,
        "a hole, with shards after it"
    );
}

#[tokio::test]
async fn place_targets_and_holders() {
    let t = small().await;
    let a = data(7, 1024);
    let id = ShardId::of(&a);
    assert_eq!(code(t.place(vec![(id, 1025)]).await), ErrorCode::Invalid);
    let p = t.place(vec![(id, 1024)]).await.unwrap();
    assert_eq!(
        (
            p[0].id,
            p[0].holders.len(),
            p[0].targets.len(),
            p[0].min_copies
        ),
        (id, 0, 2, 2)
    );
    assert_ne!(p[0].targets[0].id, p[0].targets[1].id);
    // Once stored on two nodes, the same content needs no new copy.
    let f = t.file(ROOT, "f").await;
    t.commit(f.ino, 1024, vec![cshard(0, &a, &[1, 2])], USER)
        .await
        .unwrap();
    let p = t.place(vec![(id, 1024)]).await.unwrap();
    assert_eq!((p[0].holders.len(), p[0].targets.len()), (2, 0));
    // One copy known: one more target, never the holder.
    let b = data(8, 10);
    t.commit(f.ino, 1034, vec![cshard(1, &b, &[3])], USER)
        .await
        .unwrap();
    let p = t.place(vec![(ShardId::of(&b), 10)]).await.unwrap();
    assert_eq!(p[0].holders.len(), 1);
    assert_eq!(p[0].targets.len(), 1);
    assert_ne!(p[0].targets[0].id, NodeId(3));
}

#[tokio::test]
async fn place_fails_without_enough_nodes_or_space() {
    let t = T::new();
    let id = ShardId::of(b"x");
    let e = t.place(vec![(id, 1)]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("only 0 of 0 nodes are up"), "{e}");
    t.register(1, 1 << 30).await;
    assert_eq!(code(t.place(vec![(id, 1)]).await), ErrorCode::Unavailable);
    t.register(2, 10).await;
    assert_eq!(code(t.place(vec![(id, 100)]).await), ErrorCode::NoSpace);
    // With min_copies 1, one copy is enough to go ahead.
    let t = T::with(CoordSettings {
        min_copies: 1,
        ..Default::default()
    });
    t.register(1, 1 << 30).await;
    let p = t.place(vec![(id, 1)]).await.unwrap();
    assert_eq!((p[0].targets.len(), p[0].min_copies), (1, 1));
}

#[tokio::test]
async fn placement_spreads_evenly_over_equal_nodes() {
    let t = small().await;
    let mut counts = [0usize; 4];
    for i in 0..300u32 {
        let id = ShardId::of(&i.to_le_bytes());
        for target in &t.place(vec![(id, 1024)]).await.unwrap()[0].targets {
            counts[target.id.0 as usize] += 1;
        }
    }
    // 600 copies over 3 nodes: about 200 each.
    for n in 1..=3 {
        assert!((180..=220).contains(&counts[n]), "{counts:?}");
    }
}

#[tokio::test]
async fn placement_never_picks_a_full_node_and_counts_reservations() {
    // Node 4 has room for exactly one 1 KiB shard; node 5 is full.
    let t2 = T::with(CoordSettings {
        shard_size: 1024,
        replicas: 1,
        ..Default::default()
    });
    t2.register(4, 1024).await;
    t2.register(5, 0).await;
    let p = t2.place(vec![(ShardId::of(b"a"), 1024)]).await.unwrap();
    assert_eq!(p[0].targets[0].id, NodeId(4));
    // The 1 KiB now reserved on node 4 counts until its next heartbeat.
    assert_eq!(
        code(t2.place(vec![(ShardId::of(b"b"), 1024)]).await),
        ErrorCode::NoSpace
    );
    t2.node_call(CoordRequest::Heartbeat {
        node: NodeId(4),
        stats: stats(1024),
    })
    .await
    .unwrap();
    assert!(t2.place(vec![(ShardId::of(b"b"), 1024)]).await.is_ok());
}

#[tokio::test]
async fn under_replicated_shards_are_counted() {
    let t = small().await;
    let f = t.file(ROOT, "f").await;
    t.commit(
        f.ino,
        1034,
        vec![
            cshard(0, &data(1, 10), &[1]),
            cshard(1, &data(2, 10), &[1, 2]),
        ],
        USER,
    )
    .await
    .unwrap();
    let s = t.status().await;
    assert_eq!((s.shards, s.under_replicated, s.inodes), (2, 1, 2));
}
