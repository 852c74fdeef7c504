//! End-to-end behaviour over real QUIC, in one process and without a kernel: the
//! coordinator, storage nodes and the mount's filesystem core as `whole/mod.rs` starts
//! them. Each test also fails on an unexpected WARN or ERROR log line.
#![allow(clippy::unwrap_used)]

// `pattern`, `read_all`, `ME` and `MIB` are shared with the in-memory cluster's tests.
mod common;
mod whole;

use common::{pattern, read_all, ME, MIB};
use dfs_coord::CoordSettings;
use dfs_proto::coord_msg::RenameFlags;
use dfs_proto::{ErrorCode, ROOT_INO};
use std::path::Path;
use whole::Whole;

fn r2() -> CoordSettings {
    CoordSettings {
        replicas: 2,
        min_copies: 2,
        ..CoordSettings::default()
    }
}

/// Shard files under a node's data directory (`shards/aa/bb/<id>`).
fn shard_files(node_dir: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    1
                }
            })
            .sum()
    }
    walk(&node_dir.join("shards"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_through_one_mount_reads_back_through_another_and_is_on_r_disks() {
    let w = Whole::start(3, r2()).await;
    let a = w.mount();
    let data = pattern(5 * MIB + 12345, 1);
    let (attr, fh) = a.create(ROOT_INO, "f", 0o644, ME).await.unwrap();
    // Several writes, as `cp` makes them.
    for (i, chunk) in data.chunks(128 * 1024).enumerate() {
        let n = a.write(fh, (i * 128 * 1024) as u64, chunk).await.unwrap();
        assert_eq!(n as usize, chunk.len());
    }
    a.release(fh, ME).await.unwrap();

    let b = w.mount();
    let found = b.lookup(ROOT_INO, "f").await.unwrap();
    assert_eq!(found.ino, attr.ino);
    assert_eq!(found.size, data.len() as u64);
    assert_eq!(read_all(&b, attr.ino).await, data, "bytes differ");
    // Six shards (five whole, one short), each on two of the three nodes' disks.
    let on_disk: usize = (1..=3)
        .map(|k| shard_files(&w.dir.path().join(format!("node-{k}"))))
        .sum();
    assert_eq!(on_disk, 6 * 2, "shard files on the nodes' disks");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_made_on_one_mount_are_seen_by_another() {
    let w = Whole::start(2, r2()).await;
    let a = w.mount();
    let b = w.mount();
    let d = a
        .mknod(
            ROOT_INO,
            "d",
            dfs_proto::coord_msg::FileKind::Dir,
            0o755,
            0,
            ME,
        )
        .await
        .unwrap();
    let (f, fh) = a.create(d.ino, "x", 0o644, ME).await.unwrap();
    a.write(fh, 0, b"hello").await.unwrap();
    a.release(fh, ME).await.unwrap();
    a.rename(d.ino, "x", ROOT_INO, "y", RenameFlags::default())
        .await
        .unwrap();
    let y = b.lookup(ROOT_INO, "y").await.unwrap();
    assert_eq!(y.ino, f.ino);
    assert_eq!(read_all(&b, y.ino).await, b"hello");
    let gone = b.lookup(d.ino, "x").await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    b.unlink(ROOT_INO, "y").await.unwrap();
    b.rmdir(ROOT_INO, "d").await.unwrap();
    let gone = a.lookup(ROOT_INO, "d").await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_gracefully_costs_readers_nothing() {
    let mut w = Whole::start(3, r2()).await;
    let a = w.mount();
    let data = pattern(3 * MIB, 2);
    let (attr, fh) = a.create(ROOT_INO, "f", 0o644, ME).await.unwrap();
    a.write(fh, 0, &data).await.unwrap();
    a.release(fh, ME).await.unwrap();
    w.stop_node(1).await;
    // A fresh mount (nothing cached) reads every shard from whichever copy is left.
    let b = w.mount();
    assert_eq!(read_all(&b, attr.ino).await, data);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restart_is_a_pause_for_a_mount_not_an_error() {
    let mut w = Whole::start(2, r2()).await;
    let a = w.mount();
    let one = pattern(2 * MIB + 7, 3);
    let (f1, fh) = a.create(ROOT_INO, "one", 0o644, ME).await.unwrap();
    a.write(fh, 0, &one).await.unwrap();
    a.release(fh, ME).await.unwrap();
    w.restart_coord().await;
    // The same mount, with the connections of the previous coordinator process: reads
    // the old file, writes a new one.
    assert_eq!(read_all(&a, f1.ino).await, one);
    let two = pattern(MIB + 3, 4);
    let (f2, fh) = a.create(ROOT_INO, "two", 0o644, ME).await.unwrap();
    a.write(fh, 0, &two).await.unwrap();
    a.release(fh, ME).await.unwrap();
    let b = w.mount();
    assert_eq!(read_all(&b, f1.ino).await, one);
    assert_eq!(read_all(&b, f2.ino).await, two);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_check_catches_a_warning_from_any_task_and_lets_allowed_ones_pass() {
    // The check must be able to fail: a warning from another task, on another thread,
    // is caught; one the test allowed is not.
    let w = Whole::start(1, CoordSettings::default()).await;
    tokio::spawn(async { tracing::warn!("planted warning") })
        .await
        .unwrap();
    tokio::task::spawn_blocking(|| tracing::error!("planted error"))
        .await
        .unwrap();
    tracing::warn!("expected trouble");
    let bad = whole::Logs::get().take_unexpected(&["expected trouble"]);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].starts_with("WARN ") && bad[0].contains("planted warning"));
    assert!(bad[1].starts_with("ERROR ") && bad[1].contains("planted error"));
    w.stop().await;
}
