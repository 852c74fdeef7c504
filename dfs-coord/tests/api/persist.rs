//! Everything acknowledged survives closing and reopening the store.

use super::*;
use std::time::Duration;

#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let settings = CoordSettings {
        shard_size: 4096,
        ..Default::default()
    };
    let (d, f, l) = {
        let t = T::wrap(Coordinator::open(&path, settings).unwrap());
        t.register(1, 1 << 30).await;
        let d = t.mkdir(ROOT, "dir").await;
        let f = t.file(d.ino, "file").await;
        let l = t
            .attr(CoordRequest::Symlink {
                parent: ROOT,
                name: "link".into(),
                target: "dir/file".into(),
                caller: USER,
            })
            .await
            .unwrap();
        t.unit(CoordRequest::SetXattr {
            ino: f.ino,
            name: "user.k".into(),
            value: b"v".to_vec(),
            mode: XattrMode::Any,
        })
        .await
        .unwrap();
        t.commit(
            f.ino,
            5000,
            vec![cshard(0, &[9u8; 4096], &[1]), cshard(1, &[8u8; 904], &[1])],
            USER,
        )
        .await
        .unwrap();
        (d, f, t.getattr(l.ino).await.unwrap())
    };
    // Reopen, asking for another shard size: the stored one must win.
    let t = T::wrap(
        Coordinator::open(
            &path,
            CoordSettings {
                shard_size: 1 << 20,
                node_timeout: Duration::from_secs(5),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(t.c.settings().shard_size, 4096);
    assert_eq!(
        t.lookup(ROOT, "dir").await.unwrap(),
        t.getattr(d.ino).await.unwrap()
    );
    let f2 = t.lookup(d.ino, "file").await.unwrap();
    assert_eq!((f2.ino, f2.size, f2.generation), (f.ino, 5000, 1));
    assert_eq!(t.getattr(l.ino).await.unwrap(), l);
    match t
        .call(CoordRequest::GetXattr {
            ino: f.ino,
            name: "user.k".into(),
        })
        .await
        .unwrap()
    {
        CoordResponse::Bytes(v) => assert_eq!(v, b"v"),
        o => panic!("{o:?}"),
    }
    let lay = t.layout(f.ino, 0, 10).await.unwrap();
    assert_eq!(lay.shard_size, 4096);
    let got: Vec<(u64, u32)> = lay.shards.iter().map(|s| (s.index, s.len)).collect();
    assert_eq!(got, vec![(0, 4096), (1, 904)]);
    // The node is remembered but Down until it registers again. Readers are still told
    // it holds the shards (it almost always does: only the coordinator restarted), so
    // reads work before the nodes register again; nothing is placed on it.
    let s = t.status().await;
    assert_eq!(
        (s.nodes.len(), s.nodes[0].state, s.shards),
        (1, NodeState::Down, 2)
    );
    let holders: Vec<u64> = lay.shards[0].holders.iter().map(|h| h.id.0).collect();
    assert_eq!(holders, vec![1]);
    assert!(t
        .call(CoordRequest::Place {
            shards: vec![(ShardId::of(b"new"), 3)]
        })
        .await
        .is_err());
    t.register(1, 1 << 30).await;
    assert_eq!(
        t.layout(f.ino, 0, 10).await.unwrap().shards[0]
            .holders
            .len(),
        1
    );
    // New inodes never reuse numbers.
    let g = t.file(ROOT, "g").await;
    assert!(g.ino > l.ino);
}
