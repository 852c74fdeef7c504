//! POSIX namespace rules.
//!
//! Longer than the ~600 lines a source file should stay under, on purpose: it is a flat
//! list of independent tests, one per rule, each readable alone; nothing in it is shared
//! state or structure that a split would make clearer.

use super::*;

#[tokio::test]
async fn root_is_created() {
    let t = T::new();
    let r = t.getattr(ROOT).await.unwrap();
    assert_eq!(r.kind, FileKind::Dir);
    assert_eq!((r.perm, r.uid, r.gid, r.nlink), (0o755, 0, 0, 2));
    let d = t.readdir(ROOT, None, 10).await.unwrap();
    assert_eq!(d.parent, ROOT);
    assert!(d.entries.is_empty() && !d.more);
}

#[tokio::test]
async fn bad_names_and_parents() {
    let t = T::new();
    for bad in ["", ".", "..", "a/b", "nul\0"] {
        let r = t.create_as(ROOT, bad, FileKind::File, 0o644, USER).await;
        assert_eq!(code(r), ErrorCode::Invalid, "{bad:?}");
    }
    let long = "x".repeat(dfs_proto::MAX_NAME_LEN + 1);
    let r = t.create_as(ROOT, &long, FileKind::File, 0o644, USER).await;
    assert_eq!(code(r), ErrorCode::NameTooLong);
    let f = t.file(ROOT, "f").await;
    let r = t.create_as(f.ino, "x", FileKind::File, 0o644, USER).await;
    assert_eq!(code(r), ErrorCode::NotDir);
    assert_eq!(code(t.lookup(f.ino, "x").await), ErrorCode::NotDir);
    let r = t.create_as(999, "x", FileKind::File, 0o644, USER).await;
    assert_eq!(code(r), ErrorCode::NotFound);
    assert_eq!(code(t.getattr(999).await), ErrorCode::NotFound);
}

#[tokio::test]
async fn lookup_finds_and_misses() {
    let t = T::new();
    let f = t.file(ROOT, "a").await;
    assert_eq!(t.lookup(ROOT, "a").await.unwrap(), f);
    let e = t.lookup(ROOT, "b").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("\"b\""), "{e}");
}

#[tokio::test]
async fn create_sets_owner_times_and_parent() {
    let t = T::new();
    let before = t.getattr(ROOT).await.unwrap();
    let f = t
        .create_as(ROOT, "f", FileKind::File, 0o100644, USER)
        .await
        .unwrap();
    assert_eq!(
        (f.uid, f.gid, f.nlink, f.perm, f.size),
        (1000, 1000, 1, 0o644, 0)
    );
    assert!(f.atime == f.mtime && f.mtime == f.ctime && f.ctime == f.crtime);
    let root = t.getattr(ROOT).await.unwrap();
    assert!(root.mtime >= f.mtime && root.mtime > before.mtime);
    assert_eq!(root.ctime, root.mtime);
    assert_eq!(root.nlink, 2, "a file does not link to its parent");
    let r = t.create_as(ROOT, "f", FileKind::Dir, 0o755, USER).await;
    assert_eq!(code(r), ErrorCode::Exists);
}

#[tokio::test]
async fn mkdir_counts_links() {
    let t = T::new();
    let d = t.mkdir(ROOT, "d").await;
    assert_eq!(d.nlink, 2);
    assert_eq!(t.getattr(ROOT).await.unwrap().nlink, 3);
    t.mkdir(d.ino, "e").await;
    assert_eq!(t.getattr(d.ino).await.unwrap().nlink, 3);
    assert_eq!(t.readdir(d.ino, None, 10).await.unwrap().parent, ROOT);
}

#[tokio::test]
async fn setgid_directories_pass_their_group_down() {
    let t = T::new();
    let d = t.mkdir(ROOT, "shared").await;
    t.setattr(
        d.ino,
        SetAttrs {
            perm: Some(0o2775),
            gid: Some(50),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let f = t.file(d.ino, "f").await;
    assert_eq!((f.gid, f.perm), (50, 0o644));
    let sub = t.mkdir(d.ino, "sub").await;
    assert_eq!((sub.gid, sub.perm), (50, 0o2755));
    let g = t.file(sub.ino, "g").await;
    assert_eq!(g.gid, 50);
    // Without set-group-ID the caller's group is used.
    let plain = t.file(ROOT, "p").await;
    assert_eq!(plain.gid, USER.gid);
}

#[tokio::test]
async fn special_files() {
    let t = T::new();
    for (name, kind) in [("fifo", FileKind::Fifo), ("sock", FileKind::Socket)] {
        let a = t.create_as(ROOT, name, kind, 0o600, USER).await.unwrap();
        assert_eq!((a.kind, a.rdev), (kind, 0));
    }
    for (name, kind) in [("c", FileKind::CharDev), ("b", FileKind::BlockDev)] {
        let a = t
            .attr(CoordRequest::Create {
                parent: ROOT,
                name: name.into(),
                kind,
                perm: 0o600,
                rdev: 0x0801,
                caller: Caller::ROOT,
            })
            .await
            .unwrap();
        assert_eq!((a.kind, a.rdev), (kind, 0x0801));
    }
    let f = t
        .attr(CoordRequest::Create {
            parent: ROOT,
            name: "reg".into(),
            kind: FileKind::File,
            perm: 0o600,
            rdev: 7,
            caller: USER,
        })
        .await
        .unwrap();
    assert_eq!(f.rdev, 0, "rdev only means something for devices");
    let r = t.create_as(ROOT, "l", FileKind::Symlink, 0o777, USER).await;
    assert_eq!(code(r), ErrorCode::Invalid);
}

async fn symlink(t: &T, name: &str, target: &str) -> WireResult<Attr> {
    t.attr(CoordRequest::Symlink {
        parent: ROOT,
        name: name.into(),
        target: target.into(),
        caller: USER,
    })
    .await
}

#[tokio::test]
async fn symlinks() {
    let t = T::new();
    let l = symlink(&t, "l", "some/where").await.unwrap();
    assert_eq!(
        (l.kind, l.perm, l.size, l.nlink),
        (FileKind::Symlink, 0o777, 10, 1)
    );
    match t.call(CoordRequest::Readlink { ino: l.ino }).await.unwrap() {
        CoordResponse::Target(s) => assert_eq!(s, "some/where"),
        other => panic!("{other:?}"),
    }
    assert_eq!(code(symlink(&t, "e", "").await), ErrorCode::Invalid);
    let long = "x".repeat(dfs_proto::MAX_SYMLINK_LEN + 1);
    assert_eq!(
        code(symlink(&t, "long", &long).await),
        ErrorCode::NameTooLong
    );
    assert_eq!(code(symlink(&t, "l", "x").await), ErrorCode::Exists);
    let f = t.file(ROOT, "f").await;
    let r = t.call(CoordRequest::Readlink { ino: f.ino }).await;
    assert_eq!(code(r), ErrorCode::Invalid);
}

async fn link(t: &T, ino: Ino, parent: Ino, name: &str) -> WireResult<Attr> {
    t.attr(CoordRequest::Link {
        ino,
        new_parent: parent,
        new_name: name.into(),
    })
    .await
}

#[tokio::test]
async fn hard_links() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    let d = t.mkdir(ROOT, "d").await;
    assert_eq!(
        code(link(&t, d.ino, ROOT, "d2").await),
        ErrorCode::NotPermitted
    );
    assert_eq!(code(link(&t, f.ino, ROOT, "d").await), ErrorCode::Exists);
    assert_eq!(code(link(&t, 999, ROOT, "x").await), ErrorCode::NotFound);
    let a = link(&t, f.ino, d.ino, "g").await.unwrap();
    assert_eq!((a.ino, a.nlink), (f.ino, 2));
    assert!(a.ctime > f.ctime);
    assert_eq!(t.lookup(d.ino, "g").await.unwrap().nlink, 2);
    let dir = t.getattr(d.ino).await.unwrap();
    assert!(dir.mtime >= a.ctime && dir.ctime == dir.mtime);
}

async fn unlink(t: &T, parent: Ino, name: &str, keep: bool) -> WireResult<()> {
    t.unit(CoordRequest::Unlink {
        parent,
        name: name.into(),
        keep,
    })
    .await
}

#[tokio::test]
async fn unlink_drops_links_then_the_inode() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    link(&t, f.ino, ROOT, "g").await.unwrap();
    t.mkdir(ROOT, "d").await;
    assert_eq!(
        code(unlink(&t, ROOT, "nope", false).await),
        ErrorCode::NotFound
    );
    assert_eq!(code(unlink(&t, ROOT, "d", false).await), ErrorCode::IsDir);
    let before = t.getattr(ROOT).await.unwrap();
    unlink(&t, ROOT, "f", false).await.unwrap();
    let a = t.getattr(f.ino).await.unwrap();
    assert_eq!(a.nlink, 1);
    assert!(a.ctime > f.ctime);
    let root = t.getattr(ROOT).await.unwrap();
    assert!(root.mtime > before.mtime && root.ctime == root.mtime);
    assert_eq!(code(t.lookup(ROOT, "f").await), ErrorCode::NotFound);
    unlink(&t, ROOT, "g", false).await.unwrap();
    assert_eq!(code(t.getattr(f.ino).await), ErrorCode::NotFound);
}

#[tokio::test]
async fn unlinked_open_file_is_kept_until_release() {
    let t = T::new();
    t.register(1, 1 << 30).await;
    t.register(2, 1 << 30).await;
    let f = t.file(ROOT, "open").await;
    t.commit(f.ino, 3, vec![cshard(0, b"abc", &[1, 2])], USER)
        .await
        .unwrap();
    assert_eq!(t.status().await.shards, 1);
    unlink(&t, ROOT, "open", true).await.unwrap();
    let a = t.getattr(f.ino).await.unwrap();
    assert_eq!((a.nlink, a.size), (0, 3));
    assert_eq!(t.layout(f.ino, 0, 10).await.unwrap().shards.len(), 1);
    assert_eq!(t.names(ROOT).await, Vec::<String>::new());
    // A file without a name cannot get one back.
    assert_eq!(
        code(link(&t, f.ino, ROOT, "again").await),
        ErrorCode::NotFound
    );
    t.unit(CoordRequest::Release { ino: f.ino }).await.unwrap();
    assert_eq!(code(t.getattr(f.ino).await), ErrorCode::NotFound);
    assert_eq!(
        t.status().await.shards,
        0,
        "the shard is no longer referenced"
    );
    // Releasing again, or releasing a file that still has a name, does nothing.
    t.unit(CoordRequest::Release { ino: f.ino }).await.unwrap();
    let g = t.file(ROOT, "g").await;
    t.unit(CoordRequest::Release { ino: g.ino }).await.unwrap();
    assert!(t.getattr(g.ino).await.is_ok());
}

async fn rmdir(t: &T, parent: Ino, name: &str) -> WireResult<()> {
    t.unit(CoordRequest::Rmdir {
        parent,
        name: name.into(),
    })
    .await
}

#[tokio::test]
async fn rmdir_rules() {
    let t = T::new();
    t.file(ROOT, "f").await;
    let d = t.mkdir(ROOT, "d").await;
    t.file(d.ino, "x").await;
    assert_eq!(code(rmdir(&t, ROOT, "f").await), ErrorCode::NotDir);
    assert_eq!(code(rmdir(&t, ROOT, "d").await), ErrorCode::NotEmpty);
    assert_eq!(code(rmdir(&t, ROOT, "zz").await), ErrorCode::NotFound);
    unlink(&t, d.ino, "x", false).await.unwrap();
    assert_eq!(t.getattr(ROOT).await.unwrap().nlink, 3);
    rmdir(&t, ROOT, "d").await.unwrap();
    let root = t.getattr(ROOT).await.unwrap();
    assert_eq!(root.nlink, 2);
    assert_eq!(code(t.getattr(d.ino).await), ErrorCode::NotFound);
}

async fn rename(
    t: &T,
    (p, n): (Ino, &str),
    (np, nn): (Ino, &str),
    flags: RenameFlags,
) -> WireResult<()> {
    t.unit(CoordRequest::Rename {
        parent: p,
        name: n.into(),
        new_parent: np,
        new_name: nn.into(),
        flags,
    })
    .await
}

const PLAIN: RenameFlags = RenameFlags {
    noreplace: false,
    exchange: false,
};

#[tokio::test]
async fn rename_simple_and_noop() {
    let t = T::new();
    let f = t.file(ROOT, "a").await;
    rename(&t, (ROOT, "a"), (ROOT, "a"), PLAIN).await.unwrap();
    assert_eq!(
        code(rename(&t, (ROOT, "zz"), (ROOT, "b"), PLAIN).await),
        ErrorCode::NotFound
    );
    rename(&t, (ROOT, "a"), (ROOT, "b"), PLAIN).await.unwrap();
    assert_eq!(t.names(ROOT).await, vec!["b"]);
    let b = t.lookup(ROOT, "b").await.unwrap();
    assert_eq!(b.ino, f.ino);
    assert!(b.ctime > f.ctime);
}

#[tokio::test]
async fn rename_refuses_moving_a_directory_into_itself() {
    let t = T::new();
    let a = t.mkdir(ROOT, "a").await;
    let b = t.mkdir(a.ino, "b").await;
    let r = rename(&t, (ROOT, "a"), (b.ino, "a"), PLAIN).await;
    assert_eq!(code(r), ErrorCode::Invalid);
    let r = rename(&t, (ROOT, "a"), (a.ino, "self"), PLAIN).await;
    assert_eq!(code(r), ErrorCode::Invalid);
}

#[tokio::test]
async fn rename_over_existing_targets() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    let g = t.file(ROOT, "g").await;
    t.mkdir(ROOT, "d").await;
    let full = t.mkdir(ROOT, "full").await;
    t.file(full.ino, "x").await;
    t.mkdir(ROOT, "empty").await;
    let noreplace = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    assert_eq!(
        code(rename(&t, (ROOT, "f"), (ROOT, "g"), noreplace).await),
        ErrorCode::Exists
    );
    assert_eq!(
        code(rename(&t, (ROOT, "d"), (ROOT, "f"), PLAIN).await),
        ErrorCode::NotDir
    );
    assert_eq!(
        code(rename(&t, (ROOT, "f"), (ROOT, "d"), PLAIN).await),
        ErrorCode::IsDir
    );
    assert_eq!(
        code(rename(&t, (ROOT, "d"), (ROOT, "full"), PLAIN).await),
        ErrorCode::NotEmpty
    );
    // File over file: the old target is gone.
    rename(&t, (ROOT, "f"), (ROOT, "g"), PLAIN).await.unwrap();
    assert_eq!(t.lookup(ROOT, "g").await.unwrap().ino, f.ino);
    assert_eq!(code(t.getattr(g.ino).await), ErrorCode::NotFound);
    // Directory over empty directory: the parent loses the replaced one's `..` link.
    let nlink = t.getattr(ROOT).await.unwrap().nlink;
    rename(&t, (ROOT, "d"), (ROOT, "empty"), PLAIN)
        .await
        .unwrap();
    assert_eq!(t.getattr(ROOT).await.unwrap().nlink, nlink - 1);
    assert_eq!(t.names(ROOT).await, vec!["empty", "full", "g"]);
}

#[tokio::test]
async fn rename_keeps_hard_linked_target() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    let g = t.file(ROOT, "g").await;
    link(&t, g.ino, ROOT, "g2").await.unwrap();
    rename(&t, (ROOT, "f"), (ROOT, "g"), PLAIN).await.unwrap();
    assert_eq!(t.getattr(g.ino).await.unwrap().nlink, 1);
    assert_eq!(t.lookup(ROOT, "g").await.unwrap().ino, f.ino);
    // Renaming one name of a file onto another name of the same file does nothing.
    link(&t, f.ino, ROOT, "f2").await.unwrap();
    rename(&t, (ROOT, "g"), (ROOT, "f2"), PLAIN).await.unwrap();
    assert_eq!(t.names(ROOT).await, vec!["f2", "g", "g2"]);
}

#[tokio::test]
async fn rename_directory_between_parents() {
    let t = T::new();
    let a = t.mkdir(ROOT, "a").await;
    let b = t.mkdir(ROOT, "b").await;
    let c = t.mkdir(a.ino, "c").await;
    rename(&t, (a.ino, "c"), (b.ino, "c"), PLAIN).await.unwrap();
    assert_eq!(t.getattr(a.ino).await.unwrap().nlink, 2);
    assert_eq!(t.getattr(b.ino).await.unwrap().nlink, 3);
    assert_eq!(t.readdir(c.ino, None, 10).await.unwrap().parent, b.ino);
    let moved = t.getattr(c.ino).await.unwrap();
    assert!(moved.ctime > c.ctime);
    let pa = t.getattr(a.ino).await.unwrap();
    let pb = t.getattr(b.ino).await.unwrap();
    assert!(pa.mtime > a.mtime && pb.mtime > b.mtime);
}

#[tokio::test]
async fn rename_exchange() {
    let t = T::new();
    let a = t.mkdir(ROOT, "a").await;
    let f = t.file(ROOT, "f").await;
    let d = t.mkdir(a.ino, "d").await;
    let x = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    assert_eq!(
        code(rename(&t, (ROOT, "f"), (ROOT, "none"), x).await),
        ErrorCode::NotFound
    );
    // Swap file /f with directory /a/d.
    rename(&t, (ROOT, "f"), (a.ino, "d"), x).await.unwrap();
    assert_eq!(t.lookup(ROOT, "f").await.unwrap().ino, d.ino);
    assert_eq!(t.lookup(a.ino, "d").await.unwrap().ino, f.ino);
    assert_eq!(t.readdir(d.ino, None, 1).await.unwrap().parent, ROOT);
    assert_eq!(t.getattr(a.ino).await.unwrap().nlink, 2);
    assert_eq!(t.getattr(ROOT).await.unwrap().nlink, 4);
    // Swapping a directory with its own child would detach it.
    let r = rename(&t, (ROOT, "a"), (a.ino, "d"), x).await;
    assert_eq!(code(r), ErrorCode::Invalid);
}

#[tokio::test]
async fn setattr_mode_owner_and_setid() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    let a = t
        .setattr(
            f.ino,
            SetAttrs {
                perm: Some(0o106755),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.perm, 0o6755);
    assert!(a.ctime > f.ctime);
    let a = t
        .setattr(
            f.ino,
            SetAttrs {
                uid: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.uid, a.gid, a.perm), (7, 1000, 0o755));
    // Set-group-ID without group-execute survives a chown.
    t.setattr(
        f.ino,
        SetAttrs {
            perm: Some(0o6745),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = t
        .setattr(
            f.ino,
            SetAttrs {
                gid: Some(8),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.gid, a.perm), (8, 0o2745));
    // Directories keep their bits.
    let d = t.mkdir(ROOT, "d").await;
    t.setattr(
        d.ino,
        SetAttrs {
            perm: Some(0o2775),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = t
        .setattr(
            d.ino,
            SetAttrs {
                uid: Some(9),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.perm, 0o2775);
}

#[tokio::test]
async fn setattr_size_and_times() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    let d = t.mkdir(ROOT, "d").await;
    let sz = |s| SetAttrs {
        size: Some(s),
        ..Default::default()
    };
    assert_eq!(code(t.setattr(d.ino, sz(0)).await), ErrorCode::IsDir);
    let fifo = t
        .create_as(ROOT, "p", FileKind::Fifo, 0o644, USER)
        .await
        .unwrap();
    assert_eq!(code(t.setattr(fifo.ino, sz(0)).await), ErrorCode::Invalid);
    let a = t.setattr(f.ino, sz(100)).await.unwrap();
    assert_eq!((a.size, a.generation), (100, 1));
    assert!(a.mtime > f.mtime && a.ctime == a.mtime);
    // Same size: nothing to invalidate.
    let b = t.setattr(f.ino, sz(100)).await.unwrap();
    assert_eq!((b.generation, b.mtime), (1, a.mtime));
    assert!(b.ctime > a.ctime);
    // Explicit times; None leaves a time alone.
    let c = t
        .setattr(
            f.ino,
            SetAttrs {
                atime: Some(SetTime::At(5)),
                mtime: Some(SetTime::At(6)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((c.atime, c.mtime), (5, 6));
    let e = t
        .setattr(
            f.ino,
            SetAttrs {
                mtime: Some(SetTime::Now),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.atime, 5);
    assert!(e.mtime > 6 && e.mtime == e.ctime);
    // A truncate with an explicit mtime keeps that mtime.
    let g = t
        .setattr(
            f.ino,
            SetAttrs {
                size: Some(1),
                mtime: Some(SetTime::At(9)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((g.size, g.mtime, g.generation), (1, 9, 2));
}

#[tokio::test]
async fn readdir_pages_in_name_order() {
    let t = T::new();
    let d = t.mkdir(ROOT, "d").await;
    for n in ["c", "a", "e", "b", "d"] {
        t.file(d.ino, n).await;
    }
    let p = t.readdir(d.ino, None, 2).await.unwrap();
    assert_eq!(p.parent, ROOT);
    let names: Vec<_> = p.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!((names, p.more), (vec!["a", "b"], true));
    assert_eq!(p.entries[0].attr, t.lookup(d.ino, "a").await.unwrap());
    let p = t.readdir(d.ino, Some("b"), 2).await.unwrap();
    let names: Vec<_> = p.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!((names, p.more), (vec!["c", "d"], true));
    let p = t.readdir(d.ino, Some("d"), 2).await.unwrap();
    assert_eq!((p.entries.len(), p.more), (1, false));
    // `after` need not exist; a zero limit still makes progress.
    let p = t.readdir(d.ino, Some("bb"), 0).await.unwrap();
    assert_eq!(p.entries[0].name, "c");
    // The page size is capped.
    let p = t.readdir(d.ino, None, u32::MAX).await.unwrap();
    assert_eq!(p.entries.len(), 5);
    let f = t.lookup(d.ino, "a").await.unwrap();
    assert_eq!(code(t.readdir(f.ino, None, 10).await), ErrorCode::NotDir);
}

#[tokio::test]
async fn readdir_page_cap() {
    let t = T::new();
    for i in 0..(MAX_DIR_PAGE + 3) {
        t.file(ROOT, &format!("f{i:05}")).await;
    }
    let p = t.readdir(ROOT, None, u32::MAX).await.unwrap();
    assert_eq!((p.entries.len() as u32, p.more), (MAX_DIR_PAGE, true));
}

async fn setx(t: &T, ino: Ino, name: &str, v: &[u8], mode: XattrMode) -> WireResult<()> {
    t.unit(CoordRequest::SetXattr {
        ino,
        name: name.into(),
        value: v.to_vec(),
        mode,
    })
    .await
}

#[tokio::test]
async fn xattrs() {
    let t = T::new();
    let f = t.file(ROOT, "f").await;
    assert_eq!(
        code(setx(&t, f.ino, "user.a", b"x", XattrMode::Replace).await),
        ErrorCode::NoAttr
    );
    setx(&t, f.ino, "user.b", b"1", XattrMode::Create)
        .await
        .unwrap();
    setx(&t, f.ino, "user.a", b"2", XattrMode::Any)
        .await
        .unwrap();
    assert_eq!(
        code(setx(&t, f.ino, "user.b", b"x", XattrMode::Create).await),
        ErrorCode::Exists
    );
    setx(&t, f.ino, "user.b", b"3", XattrMode::Replace)
        .await
        .unwrap();
    let a = t.getattr(f.ino).await.unwrap();
    assert!(a.ctime > f.ctime && a.mtime == f.mtime);
    let get = |n: &str| {
        t.call(CoordRequest::GetXattr {
            ino: f.ino,
            name: n.into(),
        })
    };
    match get("user.b").await.unwrap() {
        CoordResponse::Bytes(b) => assert_eq!(b, b"3"),
        o => panic!("{o:?}"),
    }
    assert_eq!(code(get("user.zz").await), ErrorCode::NoAttr);
    match t
        .call(CoordRequest::ListXattr { ino: f.ino })
        .await
        .unwrap()
    {
        CoordResponse::Names(n) => assert_eq!(n, vec!["user.a", "user.b"]),
        o => panic!("{o:?}"),
    }
    let rm = |n: &str| {
        t.unit(CoordRequest::RemoveXattr {
            ino: f.ino,
            name: n.into(),
        })
    };
    rm("user.a").await.unwrap();
    assert_eq!(code(rm("user.a").await), ErrorCode::NoAttr);
    assert_eq!(
        code(setx(&t, f.ino, "", b"x", XattrMode::Any).await),
        ErrorCode::Invalid
    );
    let long = "u".repeat(256);
    assert_eq!(
        code(setx(&t, f.ino, &long, b"x", XattrMode::Any).await),
        ErrorCode::TooBig
    );
    let big = vec![0u8; dfs_proto::MAX_XATTR_VALUE + 1];
    assert_eq!(
        code(setx(&t, f.ino, "user.big", &big, XattrMode::Any).await),
        ErrorCode::TooBig
    );
    assert_eq!(
        code(setx(&t, 999, "user.a", b"x", XattrMode::Any).await),
        ErrorCode::NotFound
    );
    // Attributes go with the inode.
    unlink(&t, ROOT, "f", false).await.unwrap();
    let g = t.file(ROOT, "g").await;
    match t
        .call(CoordRequest::ListXattr { ino: g.ino })
        .await
        .unwrap()
    {
        CoordResponse::Names(n) => assert!(n.is_empty()),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn statfs_counts_usable_space() {
    let t = T::new();
    t.register(1, 1000).await;
    t.register(2, 3000).await;
    t.file(ROOT, "f").await;
    match t.call(CoordRequest::StatFs).await.unwrap() {
        CoordResponse::FsStats(s) => {
            assert_eq!((s.capacity, s.free, s.used), (2000, 2000, 0));
            assert_eq!((s.inodes, s.replicas, s.shard_size), (2, 2, 1 << 20));
        }
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn listing_tells_which_entries_have_xattrs() {
    let t = T::new();
    let d = t.mkdir(ROOT, "d").await;
    let a = t.file(d.ino, "a").await;
    let b = t.file(d.ino, "b").await;
    t.file(d.ino, "c").await;
    setx(&t, a.ino, "user.k", b"1", XattrMode::Any)
        .await
        .unwrap();
    setx(&t, b.ino, "user.k", b"1", XattrMode::Any)
        .await
        .unwrap();
    t.unit(CoordRequest::RemoveXattr {
        ino: b.ino,
        name: "user.k".into(),
    })
    .await
    .unwrap();
    let p = t.readdir(d.ino, None, 10).await.unwrap();
    let flags: Vec<_> = p
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.xattrs))
        .collect();
    assert_eq!(flags, [("a", true), ("b", false), ("c", false)]);
}

#[tokio::test]
async fn a_remove_batch_applies_each_removal_in_order_and_answers_each() {
    use dfs_proto::coord_msg::{Removal, MAX_REMOVE_BATCH};
    let t = T::new();
    let d = t.mkdir(ROOT, "d").await;
    let f = t.file(d.ino, "f").await;
    t.file(d.ino, "g").await;
    let full = t.mkdir(ROOT, "full").await;
    t.file(full.ino, "x").await;
    let rm = |parent, name: &str, dir| Removal {
        parent,
        name: name.into(),
        dir,
    };
    let ops = vec![
        rm(d.ino, "f", false),
        rm(d.ino, "f", false), // gone by now
        rm(ROOT, "full", true),
        rm(d.ino, "g", false),
        rm(ROOT, "d", true), // empty once f and g are gone: the order holds
    ];
    let CoordResponse::Results(r) = t.call(CoordRequest::RemoveBatch { ops }).await.unwrap() else {
        panic!("RemoveBatch answers Results");
    };
    let codes: Vec<Option<ErrorCode>> =
        r.iter().map(|r| r.as_ref().err().map(|e| e.code)).collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::NotFound),
            Some(ErrorCode::NotEmpty),
            None,
            None
        ]
    );
    assert_eq!(code(t.getattr(f.ino).await), ErrorCode::NotFound);
    assert_eq!(code(t.lookup(ROOT, "d").await), ErrorCode::NotFound);
    assert!(t.lookup(full.ino, "x").await.is_ok());
    // Bounded before any work.
    let ops = (0..=MAX_REMOVE_BATCH)
        .map(|i| rm(full.ino, &format!("n{i}"), false))
        .collect();
    let e = t.call(CoordRequest::RemoveBatch { ops }).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Invalid);
}
