//! Rename, the most intricate namespace operation: it may move a directory to another
//! parent (fixing its `..` and both parents' link counts), replace an existing target in
//! the same transaction, or swap two entries (RENAME_EXCHANGE).

use super::{check_name, delete_inode, drop_link, load_dir, no_entry, touch_dir};
use crate::store::Reader;
use crate::store::{err, Tables};
use dfs_proto::coord_msg::{FileKind, NanoTime, RenameFlags};
use dfs_proto::{ErrorCode, Ino, WireError, WireResult, ROOT_INO};

/// Deepest directory nesting we walk when checking a rename; deeper means a loop, which
/// only a corrupt store could contain.
const MAX_DEPTH: usize = 1 << 16;

/// Refuses to move directory `moved` to a place inside `dest` if `dest` is `moved`
/// itself or below it: the subtree would be cut off from the root.
fn check_not_within(t: &Tables<'_>, dest: Ino, moved: Ino) -> WireResult<()> {
    let mut cur = dest;
    for _ in 0..MAX_DEPTH {
        if cur == moved {
            return Err(WireError::invalid(format!(
                "cannot move directory {moved} into itself or its own subdirectory"
            )));
        }
        if cur == ROOT_INO {
            return Ok(());
        }
        cur = t.must_inode(cur)?.parent;
    }
    Err(WireError::internal(format!(
        "directory {dest} is nested deeper than {MAX_DEPTH} levels (loop in the tree?)"
    )))
}

/// Sets a moved directory's `..` and its ctime, or just the ctime of anything else.
fn moved(t: &mut Tables<'_>, ino: Ino, new_parent: Option<Ino>, now: NanoTime) -> WireResult<()> {
    let mut n = t.must_inode(ino)?;
    if let Some(p) = new_parent {
        n.parent = p;
    }
    n.ctime = now;
    t.put_inode(ino, &n)
}

/// Applies both directories' link-count changes and times.
fn touch_parents(
    t: &mut Tables<'_>,
    (a, da): (Ino, i64),
    (b, db): (Ino, i64),
    now: NanoTime,
) -> WireResult<()> {
    if a == b {
        touch_dir(t, a, da + db, now)
    } else {
        touch_dir(t, a, da, now)?;
        touch_dir(t, b, db, now)
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn rename(
    t: &mut Tables<'_>,
    parent: Ino,
    name: &str,
    new_parent: Ino,
    new_name: &str,
    flags: RenameFlags,
    now: NanoTime,
) -> WireResult<()> {
    check_name(name)?;
    check_name(new_name)?;
    if flags.noreplace && flags.exchange {
        return Err(WireError::invalid(
            "rename: noreplace and exchange cannot be combined",
        ));
    }
    load_dir(t, parent)?;
    load_dir(t, new_parent)?;
    let src = t
        .dirent(parent, name)?
        .ok_or_else(|| no_entry(name, parent))?;
    if parent == new_parent && name == new_name {
        return Ok(());
    }
    let dst = t.dirent(new_parent, new_name)?;
    let cross = parent != new_parent;
    let src_dir = src.kind == FileKind::Dir;

    if flags.exchange {
        let dst = dst.ok_or_else(|| no_entry(new_name, new_parent))?;
        let dst_dir = dst.kind == FileKind::Dir;
        if src_dir {
            check_not_within(t, new_parent, src.ino)?;
        }
        if dst_dir {
            check_not_within(t, parent, dst.ino)?;
        }
        t.put_dirent(parent, name, dst)?;
        t.put_dirent(new_parent, new_name, src)?;
        // A directory that changes parent takes one `..` link with it.
        let (mut dp, mut dn) = (0i64, 0i64);
        if cross && src_dir {
            dp -= 1;
            dn += 1;
        }
        if cross && dst_dir {
            dn -= 1;
            dp += 1;
        }
        moved(t, src.ino, (cross && src_dir).then_some(new_parent), now)?;
        moved(t, dst.ino, (cross && dst_dir).then_some(parent), now)?;
        return touch_parents(t, (parent, dp), (new_parent, dn), now);
    }

    if src_dir {
        check_not_within(t, new_parent, src.ino)?;
    }
    let (mut dp, mut dn) = (0i64, 0i64);
    if let Some(dst) = dst {
        if dst.ino == src.ino {
            // Two names of the same file: POSIX says rename does nothing.
            return Ok(());
        }
        if flags.noreplace {
            return Err(err(
                ErrorCode::Exists,
                format!("{new_name:?} already exists in directory {new_parent}"),
            ));
        }
        match (src_dir, dst.kind == FileKind::Dir) {
            (true, false) => {
                return Err(err(
                    ErrorCode::NotDir,
                    format!("cannot replace non-directory {new_name:?} with a directory"),
                ))
            }
            (false, true) => {
                return Err(err(
                    ErrorCode::IsDir,
                    format!("cannot replace directory {new_name:?} with a non-directory"),
                ))
            }
            (true, true) => {
                if !t.dir_is_empty(dst.ino)? {
                    return Err(err(
                        ErrorCode::NotEmpty,
                        format!("directory {new_name:?} ({}) is not empty", dst.ino),
                    ));
                }
                delete_inode(t, dst.ino)?;
                dn -= 1;
            }
            // The replaced file loses a name. The wire format has no `keep` for rename,
            // so a replaced file that is still open elsewhere is deleted now.
            (false, false) => drop_link(t, dst.ino, false, now)?,
        }
    }
    t.remove_dirent(parent, name)?;
    t.put_dirent(new_parent, new_name, src)?;
    if cross && src_dir {
        dp -= 1;
        dn += 1;
    }
    moved(t, src.ino, (cross && src_dir).then_some(new_parent), now)?;
    touch_parents(t, (parent, dp), (new_parent, dn), now)
}
