#![allow(clippy::unwrap_used)]
//! Directory listings: the core's paging (`Fs::readdir`, `dir.rs`) against the in-process
//! cluster, while the directory changes; then the same listing through a real FUSE mount,
//! which is what exercises the adapters in `fuse.rs` over fuser's reply buffers.

mod common;
use common::*;
use dfs_fuse::dir::DirReplier;
use dfs_fuse::fs::Fs;
use dfs_proto::coord_msg::{Attr, FileKind};
use dfs_proto::{Ino, ROOT_INO};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A reply buffer with room for `room` entries.
struct Page {
    room: usize,
    got: Vec<(u64, String, Option<Attr>)>,
}

impl DirReplier for Page {
    fn add(&mut self, _ino: Ino, offset: u64, _: FileKind, name: &str, a: Option<&Attr>) -> bool {
        if self.got.len() == self.room {
            return true;
        }
        self.got.push((offset, name.to_string(), a.cloned()));
        false
    }
}

/// One readdir (or readdirplus) request, as the kernel sends it.
async fn page(fs: &Fs<Cluster>, fh: u64, offset: u64, room: usize, plus: bool) -> Page {
    let snap = fs.dir(fh).unwrap();
    let mut p = Page {
        room,
        got: Vec::new(),
    };
    fs.readdir(&snap, offset, plus, &mut p).await;
    p
}

async fn dir_with(fs: &Fs<Cluster>, n: usize) -> Ino {
    let d = fs
        .mknod(ROOT_INO, "d", FileKind::Dir, 0o755, 0, ME)
        .await
        .unwrap();
    for i in 0..n {
        fs.mknod(d.ino, &format!("n{i:03}"), FileKind::File, 0o644, 0, ME)
            .await
            .unwrap();
    }
    d.ino
}

/// Walks a whole listing in pages of `room`, each resuming where the last one ended.
async fn walk(fs: &Fs<Cluster>, fh: u64, room: usize, plus: bool) -> Vec<String> {
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let p = page(fs, fh, offset, room, plus).await;
        let Some(last) = p.got.last() else {
            return names;
        };
        offset = last.0;
        names.extend(p.got.into_iter().map(|g| g.1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_walked_while_entries_change_shows_each_entry_once() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let d = dir_with(&fs, 50).await;
    let fh = fs.opendir(d).await.unwrap();
    let first = page(&fs, fh, 0, 10, false).await;
    // Between two requests: one entry already listed and one not yet listed go away, a
    // new one appears.
    fs.unlink(d, "n002").await.unwrap();
    fs.unlink(d, "n030").await.unwrap();
    fs.mknod(d, "n0255", FileKind::File, 0o644, 0, ME)
        .await
        .unwrap();
    let mut names: Vec<String> = first.got.iter().map(|g| g.1.clone()).collect();
    let mut offset = first.got.last().unwrap().0;
    loop {
        let p = page(&fs, fh, offset, 10, false).await;
        let Some(last) = p.got.last() else { break };
        offset = last.0;
        names.extend(p.got.into_iter().map(|g| g.1));
    }
    // The handle's snapshot, exactly: no entry twice, none skipped.
    let mut want = vec![".".to_string(), "..".to_string()];
    want.extend((0..50).map(|i| format!("n{i:03}")));
    assert_eq!(names, want);
    fs.releasedir(fh);
    // A new opendir sees the directory as it is now.
    let fh = fs.opendir(d).await.unwrap();
    let now: BTreeSet<String> = walk(&fs, fh, 7, false).await.into_iter().collect();
    assert!(now.contains("n0255"));
    assert!(!now.contains("n002") && !now.contains("n030"));
    assert_eq!(now.len(), 2 + 49);
    fs.releasedir(fh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdirplus_lists_the_same_names_with_this_mounts_unflushed_sizes() {
    let c = Cluster::new(2, 2).await;
    let fs = fs(&c);
    let d = dir_with(&fs, 30).await;
    let (a, wfh) = fs.create(d, "written", 0o644, ME).await.unwrap();
    fs.write(wfh, 0, &pattern(1000, 1)).await.unwrap();
    let fh = fs.opendir(d).await.unwrap();
    for room in [1, 4, 100] {
        assert_eq!(
            walk(&fs, fh, room, false).await,
            walk(&fs, fh, room, true).await
        );
    }
    let all = page(&fs, fh, 0, 100, true).await;
    let (_, _, attr) = all.got.iter().find(|g| g.1 == "written").unwrap();
    let attr = attr.as_ref().unwrap();
    // Not committed yet: the listing says 0 bytes; readdirplus says what a stat here says.
    assert_eq!((attr.ino, attr.size), (a.ino, 1000));
    let (_, _, dot) = &all.got[0];
    assert_eq!(
        dot.as_ref().map(|a| (a.ino, a.kind)),
        Some((d, FileKind::Dir))
    );
    fs.releasedir(fh);
    fs.release(wfh, ME).await.unwrap();
}

/// The same listing through the kernel: `fuse.rs`'s readdir and readdirplus adapters over
/// fuser's reply buffers (a 300-entry directory takes several requests), and a file
/// written and read back through the mount.
#[test]
fn a_real_mount_lists_every_entry_once() {
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(Cluster::new(2, 2));
    let fs = Arc::new(fs(&c));
    rt.block_on(dir_with(&fs, 300));
    let mnt = tempfile::tempdir().unwrap();
    let adapter = dfs_fuse::fuse::FuseAdapter::new(
        fs.clone(),
        rt.handle().clone(),
        Duration::from_secs(1),
        Arc::new(std::sync::OnceLock::new()),
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("dfs-test".into())];
    let session = fuser::Session::new(adapter, mnt.path(), &config)
        .unwrap()
        .spawn()
        .unwrap();
    let dir = mnt.path().join("d");
    let listed = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let want: Vec<String> = (0..300).map(|i| format!("n{i:03}")).collect();
    assert_eq!(listed(), want);
    // `ls -l`: a listing followed by a stat of each entry (the kernel may use readdirplus).
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        assert!(e.metadata().unwrap().is_file());
    }
    assert_eq!(listed(), want, "the second listing differs");
    let data = pattern(3 * MIB + 5, 9);
    std::fs::write(dir.join("copied"), &data).unwrap();
    assert_eq!(std::fs::read(dir.join("copied")).unwrap(), data);
    assert!(listed().contains(&"copied".to_string()));
    session.umount_and_join().unwrap();
}
