//! Extended attributes: small named values attached to an inode (`user.*`, ACLs,
//! security labels), kept in their own table keyed by (inode, name) so listing them is a
//! range scan and deleting an inode can drop them all.

use crate::store::Reader;
use crate::store::{err, ReadTables, Tables};
use dfs_proto::coord_msg::{NanoTime, XattrMode};
use dfs_proto::{ErrorCode, Ino, WireError, WireResult, MAX_XATTR_VALUE};

/// Longest attribute name (Linux XATTR_NAME_MAX).
pub(crate) const MAX_XATTR_NAME: usize = 255;

fn check_name(name: &str) -> WireResult<()> {
    if name.is_empty() {
        return Err(WireError::invalid("empty extended attribute name"));
    }
    if name.len() > MAX_XATTR_NAME || name.contains('\0') {
        return Err(err(
            ErrorCode::TooBig,
            format!(
                "extended attribute name of {} bytes is too long (or contains NUL)",
                name.len()
            ),
        ));
    }
    Ok(())
}

fn no_attr(ino: Ino, name: &str) -> WireError {
    err(
        ErrorCode::NoAttr,
        format!("inode {ino} has no extended attribute {name:?}"),
    )
}

/// Attribute changes are metadata changes: they bump ctime (never mtime).
fn touch(t: &mut Tables<'_>, ino: Ino, now: NanoTime) -> WireResult<()> {
    let mut n = t.must_inode(ino)?;
    n.ctime = now;
    t.put_inode(ino, &n)
}

pub(crate) fn set(
    t: &mut Tables<'_>,
    ino: Ino,
    name: &str,
    value: &[u8],
    mode: XattrMode,
    now: NanoTime,
) -> WireResult<()> {
    check_name(name)?;
    if value.len() > MAX_XATTR_VALUE {
        return Err(err(
            ErrorCode::TooBig,
            format!(
                "extended attribute value of {} bytes is larger than {MAX_XATTR_VALUE}",
                value.len()
            ),
        ));
    }
    t.must_inode(ino)?;
    let exists = t.xattr(ino, name)?.is_some();
    match mode {
        XattrMode::Create if exists => {
            return Err(err(
                ErrorCode::Exists,
                format!("inode {ino} already has extended attribute {name:?}"),
            ))
        }
        XattrMode::Replace if !exists => return Err(no_attr(ino, name)),
        _ => {}
    }
    t.put_xattr(ino, name, value)?;
    touch(t, ino, now)
}

pub(crate) fn get(r: &ReadTables, ino: Ino, name: &str) -> WireResult<Vec<u8>> {
    check_name(name)?;
    r.must_inode(ino)?;
    r.xattr(ino, name)?.ok_or_else(|| no_attr(ino, name))
}

pub(crate) fn list(r: &ReadTables, ino: Ino) -> WireResult<Vec<String>> {
    r.must_inode(ino)?;
    r.xattr_names(ino)
}

pub(crate) fn remove(t: &mut Tables<'_>, ino: Ino, name: &str, now: NanoTime) -> WireResult<()> {
    check_name(name)?;
    t.must_inode(ino)?;
    if !t.remove_xattr(ino, name)? {
        return Err(no_attr(ino, name));
    }
    touch(t, ino, now)
}
