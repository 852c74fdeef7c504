#![allow(clippy::unwrap_used)]
//! The filesystem core against an in-process cluster (`common`): the real coordinator
//! logic (redb in memory) and in-memory storage nodes. No kernel, no network: these tests
//! pin down the write buffering, commit, read planning and failover logic of `dfs-fuse`.
//!
//! Longer than the ~600 lines a source file should stay under, on purpose: it is a flat
//! list of independent tests, one per rule, each readable alone; nothing in it is shared
//! state or structure that a split would make clearer.

mod common;
use common::*;
use dfs_fuse::backend::Backend;
use dfs_fuse::fs::{Fs, FsConfig};
use dfs_fuse::lookup_cache;
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, FileKind, SetAttrs, SetTime, XattrMode};
use dfs_proto::node_msg::NodeStats;
use dfs_proto::{ErrorCode, NodeId, ShardId, ROOT_INO};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_write_then_read_back() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "big").await;
    let data = pattern(5 * MIB + 123, 7);
    for (i, chunk) in data.chunks(128 * 1024).enumerate() {
        fs.write(fh, (i * 128 * 1024) as u64, chunk).await.unwrap();
    }
    // Before the flush another mount (a fresh Fs) sees nothing: close-to-open.
    let other = self::fs(&c);
    assert_eq!(other.getattr(ino).await.unwrap().size, 0);
    fs.flush(fh, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    assert_eq!(other.getattr(ino).await.unwrap().size, data.len() as u64);
    assert_eq!(read_all(&other, ino).await, data);
    // Each of the 6 shards is on 2 distinct nodes.
    let nodes = c.nodes.lock().unwrap();
    let copies: usize = nodes.values().map(|s| s.len()).sum();
    assert_eq!(copies, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_in_the_middle_and_holes() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    let mut want = pattern(3 * MIB, 1);
    fs.write(fh, 0, &want).await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    // Overwrite 10 bytes straddling the first shard boundary, through another handle.
    let (fh2, _) = fs.open(ino).await.unwrap();
    fs.write(fh2, (MIB - 5) as u64, b"0123456789")
        .await
        .unwrap();
    want[MIB - 5..MIB + 5].copy_from_slice(b"0123456789");
    // Read-your-writes before commit.
    assert_eq!(
        fs.read(fh, (MIB - 6) as u64, 12).await.unwrap(),
        want[MIB - 6..MIB + 6].to_vec()
    );
    // A write 2 MiB past the end leaves a hole of zeros.
    fs.write(fh2, (5 * MIB) as u64, b"end").await.unwrap();
    want.resize(5 * MIB, 0);
    want.extend_from_slice(b"end");
    fs.release(fh2, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_down_then_up_reads_zeros() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "t").await;
    fs.write(fh, 0, &pattern(2 * MIB, 3)).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    fs.setattr(
        ino,
        ME,
        SetAttrs {
            size: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    fs.setattr(
        ino,
        ME,
        SetAttrs {
            size: Some(3 * MIB as u64),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = read_all(&fs, ino).await;
    assert_eq!(got.len(), 3 * MIB);
    assert_eq!(&got[..1000], &pattern(2 * MIB, 3)[..1000]);
    assert!(
        got[1000..].iter().all(|&b| b == 0),
        "old bytes resurfaced after truncate+extend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_while_open_with_dirty_data() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "t").await;
    fs.write(fh, 0, &pattern(MIB + 10, 3)).await.unwrap();
    let a = fs
        .setattr(
            ino,
            ME,
            SetAttrs {
                size: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 10);
    fs.write(fh, 20, b"x").await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let mut want = pattern(10, 3);
    want.extend_from_slice(&[0; 10]);
    want.push(b'x');
    assert_eq!(read_all(&self::fs(&c), ino).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_fails_over_to_another_holder_and_fails_cleanly_when_none() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    let data = pattern(MIB, 9);
    fs.write(fh, 0, &data).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let id = ShardId::of(&data);
    let holders: Vec<String> = c
        .nodes
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| s.contains_key(&id))
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(holders.len(), 2);
    // One holder down: the read still returns the right bytes.
    c.down.lock().unwrap().insert(holders[0].clone());
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
    // Every copy corrupt: the read fails (EIO), it never returns bad bytes.
    c.down.lock().unwrap().clear();
    c.corrupt_everywhere(&id);
    let fresh = self::fs(&c);
    let (fh, _) = fresh.open(ino).await.unwrap();
    let e = fresh.read(fh, 0, 4096).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    let e = fresh.read(fh, 4096, 128 * 1024).await.unwrap_err();
    assert_eq!(dfs_fuse::errno::errno(&e), libc::EIO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_small_reads_fetch_ranges_not_whole_shards() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    let data = pattern(4 * MIB, 5);
    fs.write(fh, 0, &data).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let fresh = self::fs(&c);
    let (fh, _) = fresh.open(ino).await.unwrap();
    c.gets.lock().unwrap().clear();
    for off in [3 * MIB + 8192, 17 * 4096, 2 * MIB + 4096 * 100] {
        assert_eq!(
            fresh.read(fh, off as u64, 4096).await.unwrap(),
            data[off..off + 4096].to_vec()
        );
    }
    let gets = c.gets.lock().unwrap();
    assert_eq!(gets.len(), 3);
    assert!(
        gets.iter().all(|(_, whole)| !whole),
        "random 4 KiB reads fetched whole shards: {gets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upload_keeps_data_for_retry() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    c.down.lock().unwrap().insert("mem-2".into());
    let data = pattern(MIB / 2, 4);
    fs.write(fh, 0, &data).await.unwrap();
    // Replication 2 needs both nodes: the flush reports the failure...
    let e = fs.flush(fh, ME).await.unwrap_err();
    assert_eq!(dfs_fuse::errno::errno(&e), libc::EIO, "{e}");
    assert_eq!(self::fs(&c).getattr(ino).await.unwrap().size, 0);
    // ...and once the node is back, the same bytes commit.
    c.down.lock().unwrap().clear();
    fs.flush(fh, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_shards_are_stored_once() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let data = pattern(MIB, 8);
    for name in ["a", "b"] {
        let (_, fh) = new_file(&fs, name).await;
        fs.write(fh, 0, &data).await.unwrap();
        fs.release(fh, ME).await.unwrap();
    }
    let copies: usize = c.nodes.lock().unwrap().values().map(|s| s.len()).sum();
    assert_eq!(
        copies, 2,
        "the second file's identical shard was stored again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinked_open_file_stays_readable_until_release() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    fs.write(fh, 0, b"still here").await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    fs.unlink(ROOT_INO, "f").await.unwrap();
    assert_eq!(
        fs.lookup(ROOT_INO, "f").await.unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(fs.read(fh, 0, 100).await.unwrap(), b"still here");
    assert_eq!(fs.getattr(ino).await.unwrap().nlink, 0);
    fs.release(fh, ME).await.unwrap();
    assert_eq!(fs.getattr(ino).await.unwrap_err().code, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_asks_whether_the_file_is_open_only_when_something_is() {
    // The lookup that finds out whether an unlinked file is open here (and must be kept
    // until its close) is skipped when nothing is open: `rm -r` pays one round trip per
    // file, not two.
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    for name in ["a", "b"] {
        let (_, fh) = new_file(&fs, name).await;
        fs.release(fh, ME).await.unwrap();
    }
    let before = c.lookups.load(Ordering::Relaxed);
    fs.unlink(ROOT_INO, "a").await.unwrap();
    assert_eq!(
        c.lookups.load(Ordering::Relaxed),
        before,
        "nothing was open"
    );
    let (_, fh) = new_file(&fs, "open").await;
    fs.unlink(ROOT_INO, "b").await.unwrap();
    assert_eq!(c.lookups.load(Ordering::Relaxed), before + 1);
    fs.release(fh, ME).await.unwrap();
    for name in ["a", "b"] {
        let e = fs.lookup(ROOT_INO, name).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
    }
}

/// 1.5 s of a live mount against a cluster made by `Cluster::with_gc_grace(300 ms)`: the
/// mount renews its leases every 100 ms and the coordinator runs maintenance (garbage
/// collection included) after each renewal.
async fn live_mount_for_5_graces(c: &Cluster, fs: &Fs<Cluster>) {
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fs.touch_uncommitted().await.unwrap();
        c.coord
            .maintain_once(std::time::Instant::now())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_open_file_lives_while_its_mount_renews_it_and_is_reclaimed_after() {
    // A mount that dies with an unlinked file open never sends Release. The coordinator
    // deletes such an orphan once no mount has named it in a Touch for the grace; a live
    // mount names its own every second, however long it keeps the file open.
    let grace = Duration::from_millis(300);
    let c = Cluster::with_gc_grace(grace).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    fs.write(fh, 0, b"still here").await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    fs.unlink(ROOT_INO, "f").await.unwrap();
    live_mount_for_5_graces(&c, &fs).await;
    assert_eq!(fs.read(fh, 0, 100).await.unwrap(), b"still here");
    let kept = c.meta(CoordRequest::GetAttr { ino }).await.unwrap();
    assert!(matches!(kept, CoordResponse::Attr(a) if a.nlink == 0));
    // The mount goes silent (as a killed one would): the orphan goes after the grace.
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    c.coord
        .maintain_once(std::time::Instant::now())
        .await
        .unwrap();
    let gone = c.meta(CoordRequest::GetAttr { ino }).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    // Its Release, should it come after all, is harmless.
    fs.release(fh, ME).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_listing_spans_pages() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let d = fs
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap();
    for i in 0..2100 {
        fs.mknod(d.ino, &format!("n{i:05}"), FileKind::File, 0o644, 0, ME)
            .await
            .unwrap();
    }
    let fh = fs.opendir(d.ino).await.unwrap();
    let snap = fs.dir(fh).unwrap();
    assert_eq!(snap.entries.len(), 2100);
    assert_eq!(snap.parent, ROOT_INO);
    assert!(snap.entries.windows(2).all(|w| w[0].name < w[1].name));
    fs.releasedir(fh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_promptly_when_uploads_fail_and_memory_stays_bounded() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c); // max_dirty 4 MiB
    let (_, fh) = new_file(&fs, "f").await;
    c.down.lock().unwrap().insert("mem-1".into());
    let chunk = pattern(MIB, 2);
    let mut failed_at = None;
    for i in 0..64u64 {
        if let Err(e) = fs.write(fh, i * MIB as u64, &chunk).await {
            assert_eq!(dfs_fuse::errno::errno(&e), libc::EIO, "{e}");
            failed_at = Some(i);
            break;
        }
        // Let the background uploads fail.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let i = failed_at.expect("64 MiB buffered while every upload failed");
    assert!(
        i <= 16,
        "writes kept succeeding for {i} MiB with uploads failing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_past_a_short_dirty_buffer_is_a_hole() {
    // Found by fsx: shard 0 has 10 dirty bytes, the file extends into shard 1, and a read
    // starts in shard 0 beyond those 10 bytes. It must read zeros, not panic.
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (_, fh) = new_file(&fs, "f").await;
    fs.write(fh, 0, b"0123456789").await.unwrap();
    fs.write(fh, (MIB + 5) as u64, b"x").await.unwrap();
    assert_eq!(fs.read(fh, 500_000, 8).await.unwrap(), vec![0; 8]);
    let got = fs.read(fh, 5, 10).await.unwrap();
    assert_eq!(got, b"56789\0\0\0\0\0".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_around_a_dead_target() {
    // 3 nodes, R = 2, one node dead but not yet known to the coordinator: the placement
    // keeps offering it, and the writer must place those shards elsewhere.
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    c.down.lock().unwrap().insert("mem-1".into());
    let (ino, fh) = new_file(&fs, "f").await;
    let data = pattern(8 * MIB, 6);
    fs.write(fh, 0, &data).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    {
        let nodes = c.nodes.lock().unwrap();
        assert!(nodes["mem-1"].is_empty());
        assert_eq!(nodes["mem-2"].len(), 8);
        assert_eq!(nodes["mem-3"].len(), 8);
    }
    c.down.lock().unwrap().clear();
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_uncommitted_write_survives_garbage_collection() {
    // GC deletes shards nobody references once their placement is older than the grace.
    // A writer that keeps uploads uncommitted for several graces must not lose them: the
    // mount renews its lease with Touch.
    let grace = Duration::from_millis(300);
    let c = Cluster::with_gc_and_nodes(grace).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    let data = pattern(3 * MIB, 11);
    fs.write(fh, 0, &data).await.unwrap(); // three full shards upload in the background
    live_mount_for_5_graces(&c, &fs).await;
    fs.release(fh, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_commit_keeps_the_lease_on_its_own_shards() {
    // The commit holds the file's lock while it waits for the coordinator; the lease
    // renewal must not need that lock, or a commit slower than the grace would see its
    // shards collected before the coordinator records them.
    let grace = Duration::from_millis(300);
    let c = Cluster::with_gc_and_nodes(grace).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    let data = pattern(3 * MIB, 12);
    fs.write(fh, 0, &data).await.unwrap();
    *c.commit_delay.lock().unwrap() = Duration::from_millis(1500);
    let renew = live_mount_for_5_graces(&c, &fs);
    let (closed, ()) = tokio::join!(fs.release(fh, ME), renew);
    closed.unwrap();
    *c.commit_delay.lock().unwrap() = Duration::ZERO;
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
}

/// Waits until a lookup of `name` is answered without asking the coordinator (the
/// background listing has arrived), or fails after 5 s.
async fn until_cached(fs: &Fs<Cluster>, c: &Cluster, dir: u64, name: &str) {
    for _ in 0..500 {
        let before = c.lookups.load(Ordering::SeqCst);
        fs.lookup(dir, name).await.unwrap();
        if c.lookups.load(Ordering::SeqCst) == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("lookups of {name} never came from the listing");
}

/// Directory "d" holding `n` files f00, f01, ... with mode `perm`, made through `fs`.
/// Returns the directory and the files' inodes.
async fn dir_of_files(fs: &Fs<Cluster>, n: usize, perm: u32) -> (u64, Vec<u64>) {
    let d = fs
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap();
    let mut inos = Vec::new();
    for i in 0..n {
        let f = fs
            .mknod(d.ino, &format!("f{i:02}"), FileKind::File, perm, 0, ME)
            .await
            .unwrap();
        inos.push(f.ino);
    }
    (d.ino, inos)
}

/// Looks up enough names of `dir` through `fs` for it to fetch the directory's listing,
/// and waits until it answers from it.
async fn prime_listing(fs: &Fs<Cluster>, c: &Cluster, dir: u64) {
    for i in 0..lookup_cache::PREFETCH_AFTER as usize {
        fs.lookup(dir, &format!("f{i:02}")).await.unwrap();
    }
    until_cached(fs, c, dir, "f10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_lookups_is_answered_from_one_listing() {
    let c = Cluster::new(2, 2).await;
    let a = fs(&c);
    let b = fs_with_ttl(&c, Duration::from_secs(30));
    let (d, inos) = dir_of_files(&a, 50, 0o640).await;
    // Mount b has not seen the directory: its first lookups go to the coordinator, then a
    // listing is fetched and the rest are answered from it, with the right attributes.
    let first = inos.iter().enumerate();
    for (i, ino) in first.take(lookup_cache::PREFETCH_AFTER as usize) {
        assert_eq!(b.lookup(d, &format!("f{i:02}")).await.unwrap().ino, *ino);
    }
    until_cached(&b, &c, d, "f10").await;
    let before = c.lookups.load(Ordering::SeqCst);
    for (i, ino) in inos.iter().enumerate() {
        let at = b.lookup(d, &format!("f{i:02}")).await.unwrap();
        assert_eq!((at.ino, at.perm, at.kind), (*ino, 0o640, FileKind::File));
    }
    assert_eq!(
        c.lookups.load(Ordering::SeqCst),
        before,
        "lookups still went out"
    );

    // Names the listing does not have are asked for, never answered "no such file": a
    // file another mount created after the listing is found at once.
    a.mknod(d, "new", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    assert!(b.lookup(d, "new").await.is_ok());
    let e = b.lookup(d, "absent").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_this_mount_are_never_hidden_by_a_listing() {
    let c = Cluster::new(2, 2).await;
    let fs = fs_with_ttl(&c, Duration::from_secs(30));
    let (d, _) = dir_of_files(&fs, 20, 0o644).await;
    prime_listing(&fs, &c, d).await;
    // chmod, then the lookup must show it (a stale listing would say 0644).
    let f5 = fs.lookup(d, "f05").await.unwrap();
    let set = SetAttrs {
        perm: Some(0o600),
        ..Default::default()
    };
    fs.setattr(f5.ino, ME, set).await.unwrap();
    assert_eq!(fs.lookup(d, "f05").await.unwrap().perm, 0o600);
    // unlink, then the name is gone.
    fs.unlink(d, "f06").await.unwrap();
    assert_eq!(
        fs.lookup(d, "f06").await.unwrap_err().code,
        ErrorCode::NotFound
    );
    // Written and closed: the size is the new one.
    let f7 = fs.lookup(d, "f07").await.unwrap();
    let (fh, _) = fs.open(f7.ino).await.unwrap();
    fs.write(fh, 0, b"hello").await.unwrap();
    fs.release(fh, ME).await.unwrap();
    assert_eq!(fs.lookup(d, "f07").await.unwrap().size, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_mounts_change_shows_within_the_ttl() {
    let c = Cluster::new(2, 2).await;
    let a = fs(&c);
    let ttl = Duration::from_millis(300);
    let b = fs_with_ttl(&c, ttl);
    let (d, _) = dir_of_files(&a, 20, 0o644).await;
    prime_listing(&b, &c, d).await;
    let f9 = a.lookup(d, "f09").await.unwrap();
    let set = SetAttrs {
        perm: Some(0o600),
        ..Default::default()
    };
    a.setattr(f9.ino, ME, set).await.unwrap();
    // Within the TTL b may still say 0644 (as the kernel's attribute cache would); after
    // it, b must say 0600.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(b.lookup(d, "f09").await.unwrap().perm, 0o600);
}

/// What `readdirplus` does with each listed entry.
async fn list_like_readdirplus(fs: &Fs<Cluster>, dir: u64) {
    let fh = fs.opendir(dir).await.unwrap();
    let snap = fs.dir(fh).unwrap();
    for e in &snap.entries {
        fs.listed_attr(&snap, e).await;
    }
    fs.releasedir(fh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xattrs_of_listed_entries_without_any_need_no_round_trip() {
    let c = Cluster::new(2, 2).await;
    let a = fs(&c);
    let b = fs_with_ttl(&c, Duration::from_millis(500));
    let d = a
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap();
    let f1 = a
        .mknod(d.ino, "f1", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    let f2 = a
        .mknod(d.ino, "f2", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    let f3 = a
        .mknod(d.ino, "f3", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    a.setxattr(f1.ino, "user.k", b"v1".to_vec(), XattrMode::Any)
        .await
        .unwrap();
    list_like_readdirplus(&b, d.ino).await;
    let asked = || c.xattr_gets.load(Ordering::SeqCst);
    // f1 has one: asked and answered.
    let before = asked();
    assert_eq!(b.getxattr(f1.ino, "user.k").await.unwrap(), b"v1");
    assert_eq!(asked(), before + 1);
    // f2 has none: answered here, with the errno a missing attribute gets.
    let e = b.getxattr(f2.ino, "security.selinux").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NoAttr);
    assert!(b.listxattr(f2.ino).await.unwrap().is_empty());
    assert_eq!(asked(), before + 1, "f2's getxattr went to the coordinator");
    // Set through this mount: seen at once.
    b.setxattr(f2.ino, "user.k", b"v2".to_vec(), XattrMode::Any)
        .await
        .unwrap();
    assert_eq!(b.getxattr(f2.ino, "user.k").await.unwrap(), b"v2");
    // Set through another mount: seen once the TTL has passed.
    list_like_readdirplus(&b, d.ino).await;
    a.setxattr(f3.ino, "user.k", b"v3".to_vec(), XattrMode::Any)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(b.getxattr(f3.ino, "user.k").await.unwrap(), b"v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_here_has_no_xattrs_to_ask_for_until_one_is_set() {
    // The kernel asks for `security.capability` before each write; a new file has none.
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let asked = || c.xattr_gets.load(Ordering::SeqCst);
    let (a, fh) = fs.create(ROOT_INO, "new", 0o644, ME).await.unwrap();
    let before = asked();
    let e = fs.getxattr(a.ino, "security.capability").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NoAttr);
    fs.write(fh, 0, b"data").await.unwrap();
    fs.getxattr(a.ino, "security.capability").await.unwrap_err();
    assert_eq!(
        asked(),
        before,
        "a new file's getxattr went to the coordinator"
    );
    fs.setxattr(a.ino, "user.k", b"v".to_vec(), XattrMode::Any)
        .await
        .unwrap();
    assert_eq!(fs.getxattr(a.ino, "user.k").await.unwrap(), b"v");
    assert_eq!(asked(), before + 1);
    fs.release(fh, ME).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_directory_made_here_an_absent_name_costs_no_round_trip_for_one_ttl() {
    // `dir_attrs.rs`: the kernel's lookup before each create in a new directory, and its
    // getattr of the directory after each one, are answered by the mount.
    let c = Cluster::new(3, 2).await;
    // Long enough that a loaded CI machine gets through the checks below within it.
    let ttl = Duration::from_millis(1500);
    let a = fs_with_ttl(&c, ttl);
    let b = fs(&c);
    let d = a
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap()
        .ino;
    // The mount learns the shard size from its first create, and the directory's
    // attributes from one getattr.
    let (_, fh) = a.create(ROOT_INO, "warm", 0o644, ME).await.unwrap();
    a.release(fh, ME).await.unwrap();
    a.getattr(d).await.unwrap();
    sent(&c);
    for i in 0..5 {
        let name = format!("f{i}");
        let e = a.lookup(d, &name).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let (_, fh) = a.create(d, &name, 0o644, ME).await.unwrap();
        a.release(fh, ME).await.unwrap();
        a.getattr(d).await.unwrap();
    }
    assert_eq!(
        sent(&c),
        ["create"; 5],
        "only the creates went to the coordinator"
    );
    // A name this mount added is asked for, and found.
    assert!(a.lookup(d, "f3").await.is_ok());
    // A name another mount adds meanwhile is unseen for up to the TTL, as a cached
    // dentry would be; open(O_CREAT) of it then opens that file rather than failing.
    let (theirs, fh) = b.create(d, "theirs", 0o666, ME).await.unwrap();
    b.write(fh, 0, b"their bytes").await.unwrap();
    b.release(fh, ME).await.unwrap();
    assert_eq!(
        a.lookup(d, "theirs").await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let e = a
        .create_open(
            d,
            "theirs",
            0o644,
            ME,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Exists, "O_EXCL still refuses");
    let (opened, fh) = a
        .create_open(d, "theirs", 0o644, ME, libc::O_CREAT | libc::O_RDWR)
        .await
        .unwrap();
    assert_eq!(opened.ino, theirs.ino);
    assert_eq!(a.read(fh, 0, 100).await.unwrap(), b"their bytes");
    a.release(fh, ME).await.unwrap();
    let (opened, fh) = a
        .create_open(
            d,
            "theirs",
            0o644,
            ME,
            libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY,
        )
        .await
        .unwrap();
    assert_eq!(
        (opened.ino, opened.size),
        (theirs.ino, 0),
        "O_TRUNC truncates"
    );
    a.release(fh, ME).await.unwrap();
    // What the kernel would refuse at open is refused here too: a directory, and a file
    // whose mode bits do not let the caller in.
    b.mknod(d, "subdir", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap();
    b.mknod(d, "private", FileKind::File, 0o600, 0, ME)
        .await
        .unwrap();
    let e = a
        .create_open(d, "subdir", 0o644, ME, libc::O_CREAT | libc::O_WRONLY)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::IsDir);
    let stranger = dfs_proto::coord_msg::Caller {
        uid: 2000,
        gid: 2000,
    };
    let e = a
        .create_open(
            d,
            "private",
            0o644,
            stranger,
            libc::O_CREAT | libc::O_RDONLY,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    // After the TTL, lookups go to the coordinator again.
    let (late, fh) = b.create(d, "late", 0o644, ME).await.unwrap();
    b.release(fh, ME).await.unwrap();
    tokio::time::sleep(ttl).await;
    assert_eq!(a.lookup(d, "late").await.unwrap().ino, late.ino);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_and_open_here_answers_getattr_itself_until_a_link() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (warm, fh) = fs.create(ROOT_INO, "warm", 0o644, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let (a, fh) = fs.create(ROOT_INO, "new", 0o640, ME).await.unwrap();
    fs.write(fh, 0, b"12345").await.unwrap();
    sent(&c);
    let got = fs.getattr(a.ino).await.unwrap();
    assert_eq!((got.size, got.perm, got.nlink), (5, 0o640, 1));
    assert_eq!(
        sent(&c),
        Vec::<&str>::new(),
        "answered without the coordinator"
    );
    // A file not created here (or closed since) is asked for.
    fs.getattr(warm.ino).await.unwrap();
    assert_eq!(sent(&c), ["get_attr"]);
    // A link changes what only the coordinator knows: asked from then on.
    fs.link(a.ino, ROOT_INO, "second").await.unwrap();
    sent(&c);
    assert_eq!(fs.getattr(a.ino).await.unwrap().nlink, 2);
    assert_eq!(sent(&c), ["get_attr"]);
    fs.release(fh, ME).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_opened_again_at_once_reuses_its_listing_until_a_change() {
    // What `rm -r` does: open, read, close, open again, read.
    let c = Cluster::new(2, 2).await;
    let ttl = Duration::from_millis(1500);
    let a = fs_with_ttl(&c, ttl);
    let b = fs(&c);
    let d = a
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap()
        .ino;
    a.mknod(d, "one", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    let names = |fh| -> Vec<String> {
        let snap = a.dir(fh).unwrap();
        snap.entries.iter().map(|e| e.name.clone()).collect()
    };
    sent(&c);
    let fh = a.opendir(d).await.unwrap();
    assert_eq!(names(fh), ["one"]);
    a.releasedir(fh);
    let fh = a.opendir(d).await.unwrap();
    assert_eq!(names(fh), ["one"]);
    a.releasedir(fh);
    assert_eq!(
        sent(&c),
        ["read_dir"],
        "the second opendir reused the listing"
    );
    // Another mount's change stays unseen within the TTL...
    b.mknod(d, "theirs", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    let fh = a.opendir(d).await.unwrap();
    assert_eq!(names(fh), ["one"]);
    a.releasedir(fh);
    // ...and a change through this mount ends the reuse at once.
    a.mknod(d, "two", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    sent(&c);
    let fh = a.opendir(d).await.unwrap();
    assert_eq!(names(fh), ["one", "theirs", "two"]);
    a.releasedir(fh);
    assert_eq!(sent(&c), ["read_dir"]);
    // As does the TTL.
    b.mknod(d, "late", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    tokio::time::sleep(ttl).await;
    let fh = a.opendir(d).await.unwrap();
    assert_eq!(names(fh), ["late", "one", "theirs", "two"]);
    a.releasedir(fh);
}

// ---- sparse write buffers: small writes into stored shards --------------------------

fn fs_with(c: &Arc<Cluster>, max_dirty: usize, max_dirty_total: usize) -> Fs<Cluster> {
    Fs::new(
        c.clone(),
        FsConfig {
            cache_bytes: 8 * MIB,
            upload_slots: 4,
            max_dirty,
            max_dirty_total,
            node_deadline: Duration::from_secs(1),
            ..FsConfig::default()
        },
    )
}

/// The IDs of a file's committed shards, by index.
async fn layout_ids(c: &Arc<Cluster>, ino: u64) -> Vec<ShardId> {
    match c
        .meta(CoordRequest::GetLayout {
            ino,
            from: 0,
            limit: 1000,
        })
        .await
        .unwrap()
    {
        CoordResponse::Layout(l) => l.shards.iter().map(|s| s.id).collect(),
        _ => panic!("GetLayout"),
    }
}

/// A file of `n` committed shards of pattern bytes; returns its inode and content.
async fn stored_file(c: &Arc<Cluster>, name: &str, n: usize) -> (u64, Vec<u8>) {
    let fs = fs(c);
    let (ino, fh) = new_file(&fs, name).await;
    let data = pattern(n * MIB, 9);
    fs.write(fh, 0, &data).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    (ino, data)
}

/// xorshift offsets for the random-write tests.
fn offsets(count: usize, limit: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as usize) % limit
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_writes_into_stored_shards_fetch_nothing_until_the_flush() {
    let c = Cluster::new(3, 2).await;
    let (ino, mut want) = stored_file(&c, "f", 3).await;
    let fs = fs(&c);
    let (fh, _) = fs.open(ino).await.unwrap();
    c.gets.lock().unwrap().clear();
    // 200 overlapping writes of 1-5000 bytes anywhere in the 3 MiB, some across shards.
    for (k, off) in offsets(200, 3 * MIB - 5000, 77).into_iter().enumerate() {
        let d = vec![k as u8; 1 + off % 5000];
        fs.write(fh, off as u64, &d).await.unwrap();
        want[off..off + d.len()].copy_from_slice(&d);
    }
    assert!(
        c.gets.lock().unwrap().is_empty(),
        "writes read from the nodes: {:?}",
        c.gets.lock().unwrap()
    );
    // Read-after-write on the same and on another handle, before any flush: patched bytes
    // merged with the stored ones, at many offsets and lengths.
    let (fh2, _) = fs.open(ino).await.unwrap();
    for (i, off) in offsets(60, 3 * MIB - 70_000, 5).into_iter().enumerate() {
        let len = 1 + (off % 70_000);
        let h = if i % 2 == 0 { fh } else { fh2 };
        assert_eq!(
            fs.read(h, off as u64, len as u32).await.unwrap(),
            want[off..off + len].to_vec(),
            "read {off}+{len}"
        );
    }
    // A read entirely inside written bytes needs no node at all.
    c.gets.lock().unwrap().clear();
    fs.write(fh, 100, &[7; 4096]).await.unwrap();
    want[100..4196].copy_from_slice(&[7; 4096]);
    assert_eq!(
        fs.read(fh2, 200, 1000).await.unwrap(),
        want[200..1200].to_vec()
    );
    assert!(c.gets.lock().unwrap().is_empty());
    // The flush patches each of the 3 shards, fetching each at most once (not at all if
    // a large read above left it in the shard cache).
    let before = layout_ids(&c, ino).await;
    c.whole_gets.lock().unwrap().clear();
    fs.flush(fh, ME).await.unwrap();
    let fetched = c.whole_gets.lock().unwrap().clone();
    assert!(fetched.iter().all(|id| before.contains(id)), "{fetched:?}");
    let distinct: HashSet<_> = fetched.iter().collect();
    assert_eq!(
        distinct.len(),
        fetched.len(),
        "a base fetched twice: {fetched:?}"
    );
    assert_ne!(layout_ids(&c, ino).await, before);
    fs.release(fh, ME).await.unwrap();
    fs.release(fh2, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_cuts_pending_patches_and_writes_past_the_end_leave_holes() {
    let c = Cluster::new(2, 2).await;
    let (ino, stored) = stored_file(&c, "t", 2).await;
    let fs = fs(&c);
    let (fh, _) = fs.open(ino).await.unwrap();
    fs.write(fh, 100_000, &[1; 4096]).await.unwrap();
    fs.write(fh, 600_000, &[2; 4096]).await.unwrap();
    fs.write(fh, (MIB + 10) as u64, &[3; 10]).await.unwrap();
    // Truncate into the middle of shard 0: the patch at 600 000 and shard 1 are cut.
    fs.setattr(
        ino,
        ME,
        SetAttrs {
            size: Some(300_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Patches again, then a write past the end (a hole in between).
    fs.write(fh, 200_000, &[4; 100]).await.unwrap();
    fs.write(fh, 900_000, &[5; 10]).await.unwrap();
    fs.write(fh, (2 * MIB + 5) as u64, &[6; 5]).await.unwrap();
    let mut want = stored[..300_000].to_vec();
    want[100_000..104_096].copy_from_slice(&[1; 4096]);
    want[200_000..200_100].copy_from_slice(&[4; 100]);
    want.resize(900_000, 0);
    want.extend_from_slice(&[5; 10]);
    want.resize(2 * MIB + 5, 0);
    want.extend_from_slice(&[6; 5]);
    // Before the flush (read-your-writes) and after it, from another mount.
    assert_eq!(
        fs.read(fh, 250_000, 700_000).await.unwrap(),
        want[250_000..950_000].to_vec()
    );
    assert_eq!(fs.getattr(ino).await.unwrap().size, want.len() as u64);
    fs.release(fh, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_budget_the_most_patched_shard_is_flushed_first() {
    let c = Cluster::new(2, 2).await;
    let (ino, mut want) = stored_file(&c, "e", 4).await;
    let ids = layout_ids(&c, ino).await;
    let fs = fs_with(&c, 64 * 1024, 64 * 1024);
    let (fh, _) = fs.open(ino).await.unwrap();
    c.whole_gets.lock().unwrap().clear();
    // Shard 0: 2 patches; shard 2: 8; shard 3: 3 (13 x 4 KiB = 52 KiB, under 64 KiB).
    let put = |fs_off: usize, k: u8, want: &mut Vec<u8>| {
        want[fs_off..fs_off + 4096].copy_from_slice(&[k; 4096]);
        (fs_off as u64, vec![k; 4096])
    };
    let mut writes = Vec::new();
    for i in 0..2 {
        writes.push(put(i * 8192, 1, &mut want));
    }
    for i in 0..8 {
        writes.push(put(2 * MIB + i * 8192, 2, &mut want));
    }
    for i in 0..3 {
        writes.push(put(3 * MIB + i * 8192, 3, &mut want));
    }
    for (off, d) in &writes {
        fs.write(fh, *off, d).await.unwrap();
    }
    assert!(c.whole_gets.lock().unwrap().is_empty());
    // 4 more patches into shard 1 cross the budget: shard 2 (32 KiB) goes, only it.
    for i in 0..4 {
        let (off, d) = put(MIB + i * 8192, 4, &mut want);
        fs.write(fh, off, &d).await.unwrap();
    }
    // The eviction's upload runs in the background; wait for its fetch of the stored
    // shard before flushing (the flush starts the other shards' uploads, and their
    // fetches could otherwise come first).
    for _ in 0..500 {
        if !c.whole_gets.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fetched = c.whole_gets.lock().unwrap().clone();
    assert_eq!(fetched, [ids[2]], "evicted the wrong shards");
    fs.flush(fh, ME).await.unwrap_or(()); // drain; release below commits and checks
    fs.release(fh, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_bytes_stay_within_the_file_and_mount_budgets() {
    let c = Cluster::new(2, 2).await;
    let (a, mut want_a) = stored_file(&c, "a", 4).await;
    let (b, mut want_b) = stored_file(&c, "b", 4).await;
    // Per file 256 KiB, the mount 384 KiB: two files writing must share it.
    let fs = fs_with(&c, 256 * 1024, 384 * 1024);
    let (fa, _) = fs.open(a).await.unwrap();
    let (fb, _) = fs.open(b).await.unwrap();
    let mut peak = 0;
    for (k, off) in offsets(600, 4 * MIB - 4096, 3).into_iter().enumerate() {
        let (fh, want) = if k % 2 == 0 {
            (fa, &mut want_a)
        } else {
            (fb, &mut want_b)
        };
        let d = vec![(k % 250) as u8 + 1; 4096];
        fs.write(fh, off as u64, &d).await.unwrap();
        want[off..off + 4096].copy_from_slice(&d);
        peak = peak.max(fs.dirty_bytes());
        assert!(
            fs.dirty_bytes() <= 384 * 1024,
            "{} dirty bytes after write {k}",
            fs.dirty_bytes()
        );
    }
    assert!(peak > 300 * 1024, "the budget was never used: peak {peak}");
    fs.release(fa, ME).await.unwrap();
    fs.release(fb, ME).await.unwrap();
    assert_eq!(fs.dirty_bytes(), 0);
    let other = self::fs(&c);
    assert_eq!(read_all(&other, a).await, want_a);
    assert_eq!(read_all(&other, b).await, want_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_patch_upload_keeps_the_patches_for_retry() {
    let c = Cluster::new(2, 2).await;
    let (ino, mut want) = stored_file(&c, "r", 2).await;
    let fs = fs(&c);
    let (fh, _) = fs.open(ino).await.unwrap();
    fs.write(fh, 5000, b"first").await.unwrap();
    want[5000..5005].copy_from_slice(b"first");
    // Both holders down: the base cannot be fetched, the flush fails with EIO...
    c.down
        .lock()
        .unwrap()
        .extend(["mem-1".into(), "mem-2".into()]);
    let e = fs.flush(fh, ME).await.unwrap_err();
    assert_eq!(dfs_fuse::errno::errno(&e), libc::EIO, "{e}");
    // ...later writes land on top of the kept patches...
    fs.write(fh, 5003, b"SECOND").await.unwrap();
    want[5003..5009].copy_from_slice(b"SECOND");
    // ...and once the nodes are back, everything commits.
    c.down.lock().unwrap().clear();
    assert_eq!(
        fs.read(fh, 4990, 30).await.unwrap(),
        want[4990..5020].to_vec()
    );
    fs.flush(fh, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, want);
}

/// The kernel sends release after close() has returned, so a program's next open of the
/// same file can reach the mount while that release is still committing. The open must
/// join the file's one state: it once joined a state the release then dropped from the
/// mount, and its writes were invisible to stat and undone by the next truncate (fsx: lost
/// sizes, old bytes back after a truncate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_racing_the_last_release_shares_the_files_state() {
    let c = Cluster::new(2, 2).await;
    let fs = Arc::new(fs(&c));
    let (ino, fh) = new_file(&fs, "race").await;
    fs.write(fh, 0, &pattern(1000, 1)).await.unwrap();
    // The release's commit is slow: the open below arrives while it holds the state.
    *c.commit_delay.lock().unwrap() = Duration::from_millis(300);
    let release = tokio::spawn({
        let fs = fs.clone();
        async move { fs.release(fh, ME).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (fh2, _) = fs.open(ino).await.unwrap();
    release.await.unwrap();
    *c.commit_delay.lock().unwrap() = Duration::ZERO;
    // Past the end, into the state the open joined: stat must see it at once.
    fs.write(fh2, 5000, b"tail").await.unwrap();
    assert_eq!(fs.getattr(ino).await.unwrap().size, 5004);
    // A truncate must cut this handle's buffered bytes, not commit under them.
    let set = SetAttrs {
        size: Some(100),
        ..Default::default()
    };
    assert_eq!(fs.setattr(ino, ME, set).await.unwrap().size, 100);
    fs.flush(fh2, ME).await.unwrap();
    fs.release(fh2, ME).await.unwrap();
    assert_eq!(read_all(&self::fs(&c), ino).await, pattern(100, 1));
}

/// A stat whose coordinator answer predates a commit that finishes while the stat waits
/// for the file's lock must not show the old size: the commit's attributes are newer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stat_answered_before_a_commit_does_not_roll_the_size_back() {
    let c = Cluster::new(2, 2).await;
    let fs = Arc::new(fs(&c));
    let (ino, fh) = new_file(&fs, "stale").await;
    fs.write(fh, 0, &pattern(3000, 2)).await.unwrap();
    *c.commit_delay.lock().unwrap() = Duration::from_millis(300);
    let flush = tokio::spawn({
        let fs = fs.clone();
        async move { fs.flush(fh, ME).await.unwrap() }
    });
    // The coordinator answers GetAttr with size 0 (nothing committed yet); by the time
    // the answer is overlaid, the commit of 3000 bytes has finished.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fs.getattr(ino).await.unwrap().size, 3000);
    flush.await.unwrap();
    *c.commit_delay.lock().unwrap() = Duration::ZERO;
    assert_eq!(fs.getattr(ino).await.unwrap().size, 3000);
    fs.release(fh, ME).await.unwrap();
}

/// A mount whose reads wait up to 5 s for a shard with no live holder known.
fn waiting_mount(c: &Arc<Cluster>) -> Fs<Cluster> {
    Fs::new(
        c.clone(),
        FsConfig {
            holder_wait: Duration::from_secs(5),
            ..FsConfig::default()
        },
    )
}

/// A read of a file whose shards have no live holder known to the coordinator (it
/// restarted and the nodes are registering again) waits for one within `holder_wait`,
/// asking the coordinator again between tries, instead of failing at once. A listed
/// holder that does not answer is a node down: that read fails after the node deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_for_a_holder_to_come_back_within_its_deadline() {
    let c = Cluster::new(2, 2).await;
    let data = pattern(MIB + 77, 9);
    let ino = {
        let fs = fs(&c);
        let (ino, fh) = new_file(&fs, "wait").await;
        fs.write(fh, 0, &data).await.unwrap();
        fs.release(fh, ME).await.unwrap();
        ino
    };
    // Every node silent past the node timeout: the coordinator lists no holders.
    c.coord
        .tick(std::time::Instant::now() + Duration::from_secs(3600));
    let patient = waiting_mount(&c);
    let (fh, _) = patient.open(ino).await.unwrap();
    let back = tokio::spawn({
        let c = c.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            for k in 1..=2 {
                let beat = CoordRequest::Heartbeat {
                    node: NodeId(k),
                    stats: NodeStats {
                        capacity: 1 << 40,
                        used: 0,
                        free: 1 << 40,
                        shards: 0,
                    },
                };
                c.coord.handle(&peer(Role::Node), beat).await.unwrap();
            }
        }
    });
    let t0 = std::time::Instant::now();
    let got = patient.read(fh, 0, (MIB + 77) as u32).await.unwrap();
    assert_eq!(got, data);
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    back.await.unwrap();
    // Holders listed but dead: EIO after the node deadlines, no waiting. (A new mount:
    // this one has the shard in its cache now.)
    c.down
        .lock()
        .unwrap()
        .extend(["mem-1".to_string(), "mem-2".to_string()]);
    let other = waiting_mount(&c);
    let (fh, _) = other.open(ino).await.unwrap();
    let t0 = std::time::Instant::now();
    let e = other.read(fh, 0, 4096).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// The durability contract (docs/SEMANTICS.md): `fsync` makes a file's shards durable on
/// the nodes (`Sync`), a close alone does not. The in-memory nodes of this test never
/// sync on their own, so a power loss takes exactly what no `Sync` covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_makes_the_shards_durable_on_the_nodes_and_a_close_alone_does_not() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (synced_ino, fh) = new_file(&fs, "synced").await;
    let synced = pattern(3 * MIB + 17, 3);
    fs.write(fh, 0, &synced).await.unwrap();
    fs.fsync(fh, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let (closed_ino, fh) = new_file(&fs, "closed").await;
    fs.write(fh, 0, &pattern(2 * MIB, 4)).await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    // Every shard of the fsynced file was synced on both of its holders.
    let per_node: usize = c.synced.lock().unwrap().values().map(|s| s.len()).sum();
    assert_eq!(per_node, 4 * 2);

    c.power_loss();
    let other = self::fs(&c);
    assert_eq!(read_all(&other, synced_ino).await, synced);
    let (fh, _) = other.open(closed_ino).await.unwrap();
    assert!(
        other.read(fh, 0, 4096).await.is_err(),
        "the shards of a file closed without fsync survived a power loss of nodes that \
         never synced: the test's nodes are not modelling what they should"
    );
    other.release(fh, ME).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_with_a_silent_holder_needs_one_durable_copy_and_never_zero() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    let data = pattern(MIB, 5);
    fs.write(fh, 0, &data).await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    let mut addrs: Vec<String> = c.nodes.lock().unwrap().keys().cloned().collect();
    addrs.sort();
    // One of the two holders stops answering between the close and the fsync: the other
    // one's copy is made durable and is enough (repair restores the second).
    c.down.lock().unwrap().insert(addrs[0].clone());
    fs.fsync(fh, ME).await.unwrap();
    c.down.lock().unwrap().clear();
    c.power_loss();
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
    // Both silent: nothing can be made durable, and the fsync says so.
    fs.write(fh, 0, &pattern(MIB, 6)).await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    c.down.lock().unwrap().extend(addrs.iter().cloned());
    let e = fs.fsync(fh, ME).await.unwrap_err();
    assert_eq!(e.code, dfs_proto::ErrorCode::Unavailable, "{e}");
    c.down.lock().unwrap().clear();
    fs.release(fh, ME).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_fails_when_a_holder_answers_that_it_lost_the_shard() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let (_, fh) = new_file(&fs, "f").await;
    fs.write(fh, 0, &pattern(MIB, 7)).await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    // A holder that answers without the shard is a loss, not an absence: with min_copies
    // 2, one durable copy is not enough.
    if let Some(shards) = c.nodes.lock().unwrap().values_mut().next() {
        shards.clear();
    }
    let e = fs.fsync(fh, ME).await.unwrap_err();
    assert_eq!(e.code, dfs_proto::ErrorCode::Unavailable, "{e}");
    fs.release(fh, ME).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_costs_create_place_and_commit_and_nothing_else() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    // The first create learns the shard size with a layout fetch; later ones need not.
    let (_, fh) = new_file(&fs, "first").await;
    fs.release(fh, ME).await.unwrap();
    c.requests.lock().unwrap().clear();
    let (ino, fh) = new_file(&fs, "small").await;
    let data = pattern(10_000, 9);
    fs.write(fh, 0, &data).await.unwrap();
    fs.flush(fh, ME).await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let sent: Vec<&str> = c
        .requests
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|n| *n != "touch")
        .collect();
    assert_eq!(sent, ["create", "place", "commit"]);
    assert_eq!(read_all(&self::fs(&c), ino).await, data);
}

/// The coordinator requests sent since the last `clear`, lease renewals left out.
fn sent(c: &Cluster) -> Vec<&'static str> {
    let mut r = c.requests.lock().unwrap();
    let out = r.iter().copied().filter(|n| *n != "touch").collect();
    r.clear();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_style_chown_chmod_and_utimes_after_writing_ride_on_the_commit() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (_, fh) = new_file(&fs, "first").await;
    fs.release(fh, ME).await.unwrap();
    let (ino, fh) = new_file(&fs, "extracted").await;
    let data = pattern(5000, 3);
    fs.write(fh, 0, &data).await.unwrap();
    sent(&c);
    // What GNU tar does as root after writing each member, before closing it.
    let root = dfs_proto::coord_msg::Caller::ROOT;
    let owner = SetAttrs {
        uid: Some(4242),
        gid: Some(77),
        ..SetAttrs::default()
    };
    let a = fs.setattr(ino, root, owner).await.unwrap();
    assert_eq!((a.uid, a.gid), (4242, 77));
    let mode = SetAttrs {
        perm: Some(0o640),
        ..SetAttrs::default()
    };
    assert_eq!(fs.setattr(ino, root, mode).await.unwrap().perm, 0o640);
    let (at, mt) = (1_000_000_007, 2_000_000_011);
    let times = SetAttrs {
        atime: Some(SetTime::At(at)),
        mtime: Some(SetTime::At(mt)),
        ..SetAttrs::default()
    };
    let a = fs.setattr(ino, root, times).await.unwrap();
    assert_eq!((a.atime, a.mtime, a.size), (at, mt, 5000));
    assert!(sent(&c).is_empty(), "folded: no round trip before close");
    // stat on this mount before the close shows the folded values.
    let a = fs.getattr(ino).await.unwrap();
    assert_eq!((a.perm, a.uid, a.gid, a.mtime), (0o640, 4242, 77, mt));
    fs.flush(fh, root).await.unwrap();
    fs.release(fh, root).await.unwrap();
    assert_eq!(
        sent(&c)
            .iter()
            .filter(|n| **n != "get_attr")
            .copied()
            .collect::<Vec<_>>(),
        ["place", "commit"]
    );
    // Another mount sees exactly what was set, with the content.
    let other = self::fs(&c);
    let a = other.getattr(ino).await.unwrap();
    assert_eq!(
        (a.perm, a.uid, a.gid, a.atime, a.mtime, a.size),
        (0o640, 4242, 77, at, mt, 5000)
    );
    assert_eq!(read_all(&other, ino).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_a_folded_utimes_sets_the_mtime_again() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "f").await;
    fs.write(fh, 0, b"one").await.unwrap();
    let times = SetAttrs {
        mtime: Some(SetTime::At(5)),
        ..SetAttrs::default()
    };
    assert_eq!(fs.setattr(ino, ME, times).await.unwrap().mtime, 5);
    fs.write(fh, 3, b"two").await.unwrap();
    fs.release(fh, ME).await.unwrap();
    let a = self::fs(&c).getattr(ino).await.unwrap();
    assert!(a.mtime > 5, "the later write's mtime wins, got {}", a.mtime);
    assert_eq!(a.size, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_user_id_bit_set_after_writing_is_kept_and_not_folded() {
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let (ino, fh) = new_file(&fs, "prog").await;
    fs.write(fh, 0, b"#!/bin/sh\n").await.unwrap();
    sent(&c);
    let mode = SetAttrs {
        perm: Some(0o4755),
        ..SetAttrs::default()
    };
    assert_eq!(fs.setattr(ino, ME, mode).await.unwrap().perm, 0o4755);
    // The writes were committed first, then the mode: the commit's clearing of set-user-ID
    // (a write by someone other than root) applies to what came before the chmod only.
    let s = sent(&c);
    assert_eq!(s.last(), Some(&"set_attr"), "{s:?}");
    fs.release(fh, ME).await.unwrap();
    assert_eq!(self::fs(&c).getattr(ino).await.unwrap().perm, 0o4755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_r_of_a_directory_costs_one_round_trip_and_other_mounts_see_it_within_the_bound() {
    // Unlinks are answered at once and sent in one batch with the rmdir that follows
    // them (`removals.rs`); another mount sees the names go within FLUSH_AFTER.
    let c = Cluster::new(3, 2).await;
    let fs = fs(&c);
    let other = self::fs(&c);
    let d = fs
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap()
        .ino;
    for i in 0..20 {
        let (a, fh) = fs.create(d, &format!("f{i}"), 0o644, ME).await.unwrap();
        fs.write(fh, 0, &pattern(100, i)).await.unwrap();
        fs.release(fh, ME).await.unwrap();
        assert!(a.ino > 0);
    }
    sent(&c);
    for i in 0..20 {
        fs.unlink(d, &format!("f{i}")).await.unwrap();
    }
    assert_eq!(
        sent(&c),
        Vec::<&str>::new(),
        "unlinks wait for no round trip"
    );
    assert_eq!(fs.removals().0, 20);
    fs.rmdir(ROOT_INO, "d").await.unwrap();
    assert_eq!(sent(&c), ["remove_batch"]);
    assert_eq!(fs.removals(), (0, 0));
    let e = other.lookup(ROOT_INO, "d").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    // An unlink followed by nothing reaches the coordinator by itself.
    let (_, fh) = new_file(&fs, "lone").await;
    fs.release(fh, ME).await.unwrap();
    fs.unlink(ROOT_INO, "lone").await.unwrap();
    tokio::time::sleep(dfs_fuse::removals::FLUSH_AFTER * 20).await;
    assert_eq!(fs.removals().0, 0);
    let e = other.lookup(ROOT_INO, "lone").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    // The same name created again after its unlink is a new file, not the old one gone
    // later: the create waits for the unlink to land.
    let (_, fh) = new_file(&fs, "again").await;
    fs.write(fh, 0, b"old").await.unwrap();
    fs.release(fh, ME).await.unwrap();
    fs.unlink(ROOT_INO, "again").await.unwrap();
    let (ino, fh) = new_file(&fs, "again").await;
    fs.write(fh, 0, b"new").await.unwrap();
    fs.release(fh, ME).await.unwrap();
    tokio::time::sleep(dfs_fuse::removals::FLUSH_AFTER * 20).await;
    assert_eq!(other.lookup(ROOT_INO, "again").await.unwrap().ino, ino);
    assert_eq!(read_all(&other, ino).await, b"new");
}
