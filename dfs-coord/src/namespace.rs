//! The POSIX namespace: names, directories, links and attributes, with the rules Linux
//! filesystems apply (link counts, set-group-ID inheritance, which times change when).
//!
//! Every function here runs inside one store transaction, so an operation that touches
//! several records (a rename that replaces its target touches two directories, two
//! entries and two inodes) is all-or-nothing.

use crate::layout;
use crate::store::Reader;
use crate::store::{err, Dirent, Inode, ReadTables, Tables};
use dfs_proto::coord_msg::{
    Attr, Caller, DirEntry, DirPage, FileKind, NanoTime, SetAttrs, MAX_DIR_PAGE,
};
use dfs_proto::{ErrorCode, Ino, WireError, WireResult, MAX_NAME_LEN, MAX_SYMLINK_LEN, ROOT_INO};

mod rename;
pub(crate) use rename::rename;

pub(crate) use crate::store::S_ISGID;

/// Checks one path component. `.` and `..` are handled by the kernel and never stored.
pub(crate) fn check_name(name: &str) -> WireResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(WireError::invalid(format!("invalid file name {name:?}")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(err(
            ErrorCode::NameTooLong,
            format!(
                "file name of {} bytes is longer than {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// Loads a directory, or `NotFound`/`NotDir`.
fn load_dir(t: &Tables<'_>, ino: Ino) -> WireResult<Inode> {
    let d = t.must_inode(ino)?;
    if d.kind != FileKind::Dir {
        return Err(err(
            ErrorCode::NotDir,
            format!("inode {ino} is not a directory"),
        ));
    }
    Ok(d)
}

fn no_entry(name: &str, dir: Ino) -> WireError {
    WireError::not_found(format!("no entry {name:?} in directory {dir}"))
}

/// Loads directory `ino`, adds `nlink_delta` to its link count and sets its mtime and
/// ctime: what every change to a directory's entries does.
fn touch_dir(t: &mut Tables<'_>, ino: Ino, nlink_delta: i64, now: NanoTime) -> WireResult<()> {
    let mut d = t.must_inode(ino)?;
    let n = i64::from(d.nlink).saturating_add(nlink_delta);
    d.nlink = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    d.mtime = now;
    d.ctime = now;
    t.put_inode(ino, &d)
}

pub(crate) fn lookup(r: &ReadTables, parent: Ino, name: &str) -> WireResult<Attr> {
    check_name(name)?;
    let p = r.must_inode(parent)?;
    if p.kind != FileKind::Dir {
        return Err(err(
            ErrorCode::NotDir,
            format!("inode {parent} is not a directory"),
        ));
    }
    let d = r
        .dirent(parent, name)?
        .ok_or_else(|| no_entry(name, parent))?;
    Ok(r.must_inode(d.ino)?.attr(d.ino))
}

pub(crate) fn getattr(r: &ReadTables, ino: Ino) -> WireResult<Attr> {
    Ok(r.must_inode(ino)?.attr(ino))
}

pub(crate) fn readlink(r: &ReadTables, ino: Ino) -> WireResult<String> {
    let n = r.must_inode(ino)?;
    match (n.kind, n.target) {
        (FileKind::Symlink, Some(target)) => Ok(target),
        _ => Err(WireError::invalid(format!("inode {ino} is not a symlink"))),
    }
}

/// The new inode's owner and mode. The owner is the caller; the group is the parent's if
/// the parent is set-group-ID (so a shared project directory keeps its group on every
/// file), and a new directory in such a parent inherits the bit so the rule propagates
/// down the tree.
fn new_inode(parent: &Inode, kind: FileKind, perm: u32, caller: Caller, now: NanoTime) -> Inode {
    let mut perm = perm & 0o7777;
    let gid = if parent.perm & S_ISGID != 0 {
        if kind == FileKind::Dir {
            perm |= S_ISGID;
        }
        parent.gid
    } else {
        caller.gid
    };
    Inode::fresh(kind, perm, caller.uid, gid, now)
}

/// Checks that `name` is free in directory `parent`, allocates an inode number and links
/// `node` there.
fn insert_new(
    t: &mut Tables<'_>,
    parent: Ino,
    name: &str,
    mut node: Inode,
    now: NanoTime,
) -> WireResult<Attr> {
    if t.dirent(parent, name)?.is_some() {
        return Err(err(
            ErrorCode::Exists,
            format!("{name:?} already exists in directory {parent}"),
        ));
    }
    let ino = t.alloc_ino()?;
    let is_dir = node.kind == FileKind::Dir;
    if is_dir {
        node.parent = parent;
    }
    t.put_inode(ino, &node)?;
    t.put_dirent(
        parent,
        name,
        Dirent {
            ino,
            kind: node.kind,
        },
    )?;
    // The new directory's `..` is one more link to the parent.
    touch_dir(t, parent, i64::from(is_dir), now)?;
    Ok(node.attr(ino))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn create(
    t: &mut Tables<'_>,
    parent: Ino,
    name: &str,
    kind: FileKind,
    perm: u32,
    rdev: u32,
    caller: Caller,
    now: NanoTime,
) -> WireResult<Attr> {
    check_name(name)?;
    if kind == FileKind::Symlink {
        return Err(WireError::invalid("symlinks are created with Symlink"));
    }
    let p = load_dir(t, parent)?;
    let mut node = new_inode(&p, kind, perm, caller, now);
    if matches!(kind, FileKind::CharDev | FileKind::BlockDev) {
        node.rdev = rdev;
    }
    insert_new(t, parent, name, node, now)
}

pub(crate) fn symlink(
    t: &mut Tables<'_>,
    parent: Ino,
    name: &str,
    target: &str,
    caller: Caller,
    now: NanoTime,
) -> WireResult<Attr> {
    check_name(name)?;
    if target.is_empty() || target.contains('\0') {
        return Err(WireError::invalid(format!(
            "invalid symlink target {target:?}"
        )));
    }
    if target.len() > MAX_SYMLINK_LEN {
        return Err(err(
            ErrorCode::NameTooLong,
            format!(
                "symlink target of {} bytes is longer than {MAX_SYMLINK_LEN}",
                target.len()
            ),
        ));
    }
    let p = load_dir(t, parent)?;
    // Symlink permissions are never checked on Linux; they are always shown as 0777.
    let mut node = new_inode(&p, FileKind::Symlink, 0o777, caller, now);
    node.size = target.len() as u64;
    node.target = Some(target.to_string());
    insert_new(t, parent, name, node, now)
}

pub(crate) fn link(
    t: &mut Tables<'_>,
    ino: Ino,
    new_parent: Ino,
    new_name: &str,
    now: NanoTime,
) -> WireResult<Attr> {
    check_name(new_name)?;
    let mut n = t.must_inode(ino)?;
    if n.kind == FileKind::Dir {
        // Hard links to directories would allow cycles in the tree.
        return Err(err(
            ErrorCode::NotPermitted,
            format!("cannot hard-link directory {ino}"),
        ));
    }
    if n.nlink == 0 {
        // An unlinked file that is still open cannot be given a name again (Linux ENOENT).
        return Err(WireError::not_found(format!(
            "inode {ino} has been deleted"
        )));
    }
    load_dir(t, new_parent)?;
    if t.dirent(new_parent, new_name)?.is_some() {
        return Err(err(
            ErrorCode::Exists,
            format!("{new_name:?} already exists in directory {new_parent}"),
        ));
    }
    n.nlink = n
        .nlink
        .checked_add(1)
        .ok_or_else(|| err(ErrorCode::TooBig, format!("inode {ino} has too many links")))?;
    n.ctime = now;
    t.put_inode(ino, &n)?;
    t.put_dirent(new_parent, new_name, Dirent { ino, kind: n.kind })?;
    touch_dir(t, new_parent, 0, now)?;
    Ok(n.attr(ino))
}

/// Deletes an inode and everything hanging off it: its layout (releasing its shards) and
/// its extended attributes.
pub(crate) fn delete_inode(t: &mut Tables<'_>, ino: Ino) -> WireResult<()> {
    layout::drop_from(t, ino, 0)?;
    t.remove_all_xattrs(ino)?;
    t.set_orphan(ino, false)?;
    t.remove_inode(ino)
}

/// One name of a non-directory is gone. At zero links the inode is deleted, unless a
/// client still has it open (`keep`): POSIX says an open file stays readable after its
/// last name goes, so it becomes an orphan until that client sends `Release`.
fn drop_link(t: &mut Tables<'_>, ino: Ino, keep: bool, now: NanoTime) -> WireResult<()> {
    let mut n = t.must_inode(ino)?;
    n.nlink = n.nlink.saturating_sub(1);
    n.ctime = now;
    if n.nlink > 0 {
        return t.put_inode(ino, &n);
    }
    if keep {
        t.put_inode(ino, &n)?;
        t.set_orphan(ino, true)
    } else {
        delete_inode(t, ino)
    }
}

pub(crate) fn unlink(
    t: &mut Tables<'_>,
    parent: Ino,
    name: &str,
    keep: bool,
    now: NanoTime,
) -> WireResult<()> {
    check_name(name)?;
    load_dir(t, parent)?;
    let d = t
        .dirent(parent, name)?
        .ok_or_else(|| no_entry(name, parent))?;
    if d.kind == FileKind::Dir {
        return Err(err(
            ErrorCode::IsDir,
            format!("{name:?} in directory {parent} is a directory"),
        ));
    }
    t.remove_dirent(parent, name)?;
    drop_link(t, d.ino, keep, now)?;
    touch_dir(t, parent, 0, now)
}

/// An orphan's lease expired (its mount is gone): delete the inode if it still has no
/// name. Returns whether it did. Either way the inode is no longer an orphan.
pub(crate) fn reclaim_orphan(t: &mut Tables<'_>, ino: Ino) -> WireResult<bool> {
    match t.inode(ino)? {
        Some(n) if n.nlink == 0 => delete_inode(t, ino).map(|()| true),
        // Named again, or already gone: only the stale orphan entry goes.
        _ => t.set_orphan(ino, false).map(|()| false),
    }
}

/// The last open handle of an inode is closed: delete it if it has no name left.
pub(crate) fn release(t: &mut Tables<'_>, ino: Ino) -> WireResult<()> {
    match t.inode(ino)? {
        Some(n) if n.nlink == 0 => delete_inode(t, ino),
        // Still named (or already gone: a repeated Release is harmless).
        _ => Ok(()),
    }
}

pub(crate) fn rmdir(t: &mut Tables<'_>, parent: Ino, name: &str, now: NanoTime) -> WireResult<()> {
    check_name(name)?;
    load_dir(t, parent)?;
    let d = t
        .dirent(parent, name)?
        .ok_or_else(|| no_entry(name, parent))?;
    if d.kind != FileKind::Dir {
        return Err(err(
            ErrorCode::NotDir,
            format!("{name:?} in directory {parent} is not a directory"),
        ));
    }
    if !t.dir_is_empty(d.ino)? {
        return Err(err(
            ErrorCode::NotEmpty,
            format!("directory {name:?} ({}) is not empty", d.ino),
        ));
    }
    t.remove_dirent(parent, name)?;
    delete_inode(t, d.ino)?;
    // Its `..` no longer links to the parent.
    touch_dir(t, parent, -1, now)
}

pub(crate) fn setattr(
    t: &mut Tables<'_>,
    ino: Ino,
    set: &SetAttrs,
    shard_size: u32,
    now: NanoTime,
) -> WireResult<Attr> {
    let mut n = t.must_inode(ino)?;
    if set.size.is_some() {
        match n.kind {
            FileKind::File => {}
            FileKind::Dir => {
                return Err(err(
                    ErrorCode::IsDir,
                    format!("cannot truncate directory {ino}"),
                ))
            }
            _ => {
                return Err(WireError::invalid(format!(
                    "cannot truncate inode {ino}: not a regular file"
                )))
            }
        }
    }
    if let Some(size) = set.size {
        layout::truncate(t, ino, size, shard_size)?;
        if size != n.size {
            n.size = size;
            // Cached pages of this file are stale now.
            n.generation += 1;
            n.mtime = now;
        }
    }
    n.apply_meta(ino, set, now);
    t.put_inode(ino, &n)?;
    Ok(n.attr(ino))
}

pub(crate) fn readdir(
    r: &ReadTables,
    ino: Ino,
    after: Option<&str>,
    limit: u32,
) -> WireResult<DirPage> {
    let d = r.must_inode(ino)?;
    if d.kind != FileKind::Dir {
        return Err(err(
            ErrorCode::NotDir,
            format!("inode {ino} is not a directory"),
        ));
    }
    // A zero limit would let a client loop forever on empty pages marked `more`.
    let limit = limit.clamp(1, MAX_DIR_PAGE) as usize;
    let mut raw = r.dir_entries(ino, after, limit + 1)?;
    let more = raw.len() > limit;
    raw.truncate(limit);
    let mut entries = Vec::with_capacity(raw.len());
    for (name, de) in raw {
        let attr = r
            .inode(de.ino)?
            .ok_or_else(|| {
                WireError::internal(format!(
                    "entry {name:?} in directory {ino} names missing inode {}",
                    de.ino
                ))
            })?
            .attr(de.ino);
        let xattrs = r.has_xattrs(de.ino)?;
        entries.push(DirEntry { name, attr, xattrs });
    }
    let parent = if ino == ROOT_INO { ROOT_INO } else { d.parent };
    Ok(DirPage {
        parent,
        entries,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("a").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert_eq!(
                check_name(bad).unwrap_err().code,
                ErrorCode::Invalid,
                "{bad:?}"
            );
        }
        assert!(check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert_eq!(
            check_name(&"x".repeat(MAX_NAME_LEN + 1)).unwrap_err().code,
            ErrorCode::NameTooLong
        );
    }

    #[test]
    fn setid_clearing() {
        let mut n = new_inode(
            &new_inode(
                &Inode {
                    perm: 0,
                    ..new_inode_root()
                },
                FileKind::Dir,
                0o755,
                Caller::ROOT,
                0,
            ),
            FileKind::File,
            0o6755,
            Caller::ROOT,
            0,
        );
        n.clear_setid();
        assert_eq!(n.perm, 0o755);
        n.perm = 0o6745; // group may not execute: set-group-ID stays
        n.clear_setid();
        assert_eq!(n.perm, 0o2745);
    }

    fn new_inode_root() -> Inode {
        Inode {
            kind: FileKind::Dir,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            crtime: 0,
            generation: 0,
            parent: ROOT_INO,
            target: None,
        }
    }
}
