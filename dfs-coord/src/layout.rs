//! File layouts: which content-addressed shard holds each `shard_size` slice of a file,
//! how many files use each shard (reference counts), and which nodes hold it.
//!
//! A file of size S is cut into slices of `shard_size` bytes; slice `i` covers bytes
//! `[i * shard_size, (i + 1) * shard_size)`. The layout maps `i` to a shard id (the
//! SHA-256 of the shard's bytes) and `len`, the number of the shard's bytes that belong to
//! the file. Missing slices, and bytes past `len`, read as zeros: that is how holes and
//! truncate-then-extend work without rewriting data.
//!
//! Writers never modify a shard: they store new shards on nodes first, then `Commit`
//! swaps them into the layout in one transaction. A reader therefore always sees either
//! the old or the new content of a slice, never a mix.

use crate::store::{err, ReadTables, Reader, ShardRec, Tables};
use dfs_proto::coord_msg::{
    Attr, Caller, CommitShard, FileKind, Layout, LayoutShard, NanoTime, NodeAddr, SetAttrs,
    MAX_LAYOUT_PAGE,
};
use dfs_proto::{ErrorCode, Ino, NodeId, ShardId, WireError, WireResult};
use std::collections::HashMap;

/// Live nodes by id, with their addresses: the registry's view at the time of a request.
pub(crate) type UpNodes = HashMap<NodeId, String>;

/// One layout entry fewer uses the shard. At zero references the record stays (with its
/// locations) until a garbage collector deletes the copies on the nodes.
fn unref(t: &mut Tables<'_>, id: &ShardId) -> WireResult<()> {
    if let Some(mut rec) = t.shard(id)? {
        rec.refs = rec.refs.saturating_sub(1);
        t.put_shard(id, &rec)?;
    }
    Ok(())
}

/// Drops every layout entry of `ino` with index >= `first`, releasing their shards.
pub(crate) fn drop_from(t: &mut Tables<'_>, ino: Ino, first: u64) -> WireResult<()> {
    for (index, id, _) in t.layout_range(ino, first, u64::MAX)? {
        t.remove_layout(ino, index)?;
        unref(t, &id)?;
    }
    Ok(())
}

/// Makes the layout fit a file of `size` bytes: slices starting at or past `size` are
/// dropped, and the slice containing the new end keeps only the bytes before it. When the
/// file grows again, the dropped bytes must read as zeros, not as the old content, which
/// is why `len` is clamped instead of leaving the shard as it was.
pub(crate) fn truncate(t: &mut Tables<'_>, ino: Ino, size: u64, shard_size: u32) -> WireResult<()> {
    let ss = u64::from(shard_size.max(1));
    drop_from(t, ino, size.div_ceil(ss))?;
    let tail = size % ss;
    if tail != 0 {
        let index = size / ss;
        if let Some((id, len)) = t.layout_entry(ino, index)? {
            // `tail < shard_size <= u32::MAX`, so this conversion never saturates.
            let keep = u32::try_from(tail).unwrap_or(u32::MAX);
            if len > keep {
                t.put_layout(ino, index, &id, keep)?;
            }
        }
    }
    Ok(())
}

/// Checks that `ino` is a regular file, for the layout requests.
fn check_file(kind: FileKind, ino: Ino) -> WireResult<()> {
    match kind {
        FileKind::File => Ok(()),
        FileKind::Dir => Err(err(ErrorCode::IsDir, format!("inode {ino} is a directory"))),
        _ => Err(WireError::invalid(format!(
            "inode {ino} is not a regular file"
        ))),
    }
}

/// The live nodes among a shard's locations, in location order.
pub(crate) fn live_holders(locations: &[u64], up: &UpNodes) -> Vec<NodeAddr> {
    locations
        .iter()
        .filter_map(|&n| {
            up.get(&NodeId(n)).map(|addr| NodeAddr {
                id: NodeId(n),
                addr: addr.clone(),
            })
        })
        .collect()
}

pub(crate) fn get_layout(
    r: &ReadTables,
    ino: Ino,
    from: u64,
    limit: u32,
    shard_size: u32,
    up: &UpNodes,
    last: &[NodeId],
) -> WireResult<Layout> {
    let node = r.must_inode(ino)?;
    check_file(node.kind, ino)?;
    let limit = u64::from(limit.clamp(1, MAX_LAYOUT_PAGE));
    let to = from.saturating_add(limit);
    let mut shards = Vec::new();
    for (index, id, len) in r.layout_range(ino, from, to)? {
        let mut holders = match r.shard(&id)? {
            Some(rec) => live_holders(&rec.locations, up),
            None => Vec::new(),
        };
        // Readers try holders in order: send them to `last` (a draining node, whose copy
        // is about to be deleted, or one not heard from since a restart) last.
        holders.sort_by_key(|h| last.contains(&h.id));
        shards.push(LayoutShard {
            index,
            id,
            len,
            holders,
        });
    }
    let more = !r.layout_range(ino, to, u64::MAX)?.is_empty();
    Ok(Layout {
        attr: node.attr(ino),
        shard_size,
        shards,
        more,
    })
}

/// Records where one committed shard lives and that one more layout entry uses it.
fn add_ref(t: &mut Tables<'_>, s: &CommitShard) -> WireResult<()> {
    let mut rec = match t.shard(&s.id)? {
        Some(rec) => {
            if rec.size != s.shard_len {
                // Same id means same bytes, hence same size: a mismatch is a client bug.
                return Err(WireError::invalid(format!(
                    "shard {} is {} bytes, not {}",
                    s.id, rec.size, s.shard_len
                )));
            }
            rec
        }
        None => ShardRec {
            size: s.shard_len,
            refs: 0,
            locations: Vec::new(),
        },
    };
    rec.refs += 1;
    for n in &s.stored_on {
        if !rec.locations.contains(&n.0) {
            rec.locations.push(n.0);
        }
    }
    t.put_shard(&s.id, &rec)
}

/// Swaps new shards into a file's layout and sets its size, as one transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit(
    t: &mut Tables<'_>,
    ino: Ino,
    size: u64,
    mtime: NanoTime,
    shards: &[CommitShard],
    caller: Caller,
    set: &SetAttrs,
    shard_size: u32,
    now: NanoTime,
) -> WireResult<Attr> {
    let mut node = t.must_inode(ino)?;
    check_file(node.kind, ino)?;
    if set.size.is_some() {
        return Err(WireError::invalid(format!(
            "commit of inode {ino} carries a size change: the commit's own size is the size"
        )));
    }
    for s in shards {
        if s.len > s.shard_len || s.shard_len > shard_size {
            return Err(WireError::invalid(format!(
                "commit of shard {} at index {}: len {} / shard_len {} must satisfy \
                 len <= shard_len <= shard size {shard_size}",
                s.id, s.index, s.len, s.shard_len
            )));
        }
        // Reference the new shard before releasing the old one, so rewriting a slice with
        // identical content never lets the count touch zero.
        add_ref(t, s)?;
        if let Some((old, _)) = t.layout_entry(ino, s.index)? {
            unref(t, &old)?;
        }
        t.put_layout(ino, s.index, &s.id, s.len)?;
    }
    truncate(t, ino, size, shard_size)?;
    node.size = size;
    node.mtime = mtime;
    node.ctime = now;
    node.generation += 1;
    if caller.uid != 0 {
        // Writing to a set-user-ID program by someone other than root must not leave a
        // privileged program with content the writer chose.
        node.clear_setid();
    }
    // After the content, as the program made them: `tar` writes, then sets mode, owner
    // and times.
    node.apply_meta(ino, set, now);
    t.put_inode(ino, &node)?;
    Ok(node.attr(ino))
}

/// Shard counts for status: (in use, with fewer live copies than `replicas`).
/// A plain scan: fine for the sizes this coordinator is meant for, and always right.
pub(crate) fn replication_counts(
    r: &ReadTables,
    replicas: u32,
    up: &UpNodes,
) -> WireResult<(u64, u64)> {
    let (mut used, mut under) = (0, 0);
    for (_, rec) in r.all_shards()? {
        if rec.refs == 0 {
            continue;
        }
        used += 1;
        let live = rec
            .locations
            .iter()
            .filter(|n| up.contains_key(&NodeId(**n)))
            .count();
        if live < replicas as usize {
            under += 1;
        }
    }
    Ok((used, under))
}
