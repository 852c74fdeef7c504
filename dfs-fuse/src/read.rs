//! Reads of an open file: which bytes come from where (planning, against this mount's
//! own uncommitted writes first), and fetching them (executing the plan).
//!
//! A read is planned under the file's lock, and executed after it is released: the plan
//! copies what it needs from memory and names the shard ranges to fetch, so a slow node
//! never holds up a writer of the same file.
//!
//! Planning looks, for each shard the range covers, at (1) the file's dirty buffer, (2)
//! an upload in flight (waited for: its shard is about to be the stored one), (3) a shard
//! stored but not committed, (4) the committed layout; a shard that is in none of them
//! is a hole, read as zeros.

use crate::backend::Backend;
use crate::dirty::DirtyShard;
use crate::file::FileState;
use crate::shard_io::ShardIo;
use dfs_proto::coord_msg::NodeAddr;
use dfs_proto::node_msg::ByteRange;
use dfs_proto::{ShardId, WireError, WireResult};

/// A piece of a read's answer.
pub enum Piece {
    Bytes(Vec<u8>),
    Zeros(usize),
    Fetch {
        id: ShardId,
        holders: Vec<NodeAddr>,
        offset: u32,
        len: u32,
    },
    /// `len` bytes of a sparse buffer: the base's bytes (`base`: a `Fetch`, possibly
    /// shorter than `len`; zeros after it), with the written `patches` (offset, bytes) on
    /// top.
    Overlay {
        len: usize,
        base: Option<Box<Piece>>,
        patches: Vec<(usize, Vec<u8>)>,
    },
}

impl FileState {
    /// True if a shard stored for bytes `offset..offset+len` has no holder known to be
    /// live: what a read sees while the nodes register again after a coordinator restart,
    /// and worth waiting out. (A holder that is listed but does not answer is a node that
    /// is down: that read fails after the node deadline, as before.)
    pub fn lacks_holders(&self, offset: u64, len: u32) -> bool {
        let s = u64::from(self.shard_size);
        let end = offset.saturating_add(u64::from(len)).min(self.size);
        if offset >= end {
            return false;
        }
        (offset / s..=(end - 1) / s)
            .any(|i| self.source(i).is_some_and(|src| src.holders.is_empty()))
    }

    /// Plans a read of up to `len` bytes at `offset`: which bytes come from memory, which
    /// are holes, and which shard ranges must be fetched.
    pub async fn plan_read(&mut self, offset: u64, len: u32) -> WireResult<Vec<Piece>> {
        let end = offset.saturating_add(u64::from(len)).min(self.size);
        let s = u64::from(self.shard_size);
        let mut pieces = Vec::new();
        let mut pos = offset;
        while pos < end {
            let idx = pos / s;
            let a = (pos % s) as usize;
            let b = ((end - self.shard_span(idx)).min(s)) as usize;
            pos = self.shard_span(idx) + b as u64;
            if matches!(self.dirty.get(idx), Some(DirtyShard::Sparse(_))) {
                // The base of a sparse buffer is what an upload in flight is storing.
                self.settle(idx).await?;
            }
            match self.dirty.get(idx) {
                Some(DirtyShard::Full(buf)) => {
                    // The buffer holds the shard's bytes up to its length; past that, up
                    // to the file size, is a hole (the read may start inside it).
                    let have = buf.len().clamp(a, b);
                    pieces.push(Piece::Bytes(buf.get(a..have).unwrap_or_default().to_vec()));
                    pieces.push(Piece::Zeros(b - have));
                    continue;
                }
                Some(DirtyShard::Sparse(sp)) => {
                    // Written bytes over the stored ones: fetch the base only if some
                    // byte of the range was not written.
                    let base = if sp.needs_base(a, b) {
                        let src = self.source(idx).ok_or_else(|| {
                            WireError::internal(format!("shard {idx} lost its stored base"))
                        })?;
                        let to = sp.valid().min(b);
                        Some(Box::new(Piece::Fetch {
                            id: src.id,
                            holders: src.holders,
                            offset: a as u32,
                            len: (to - a) as u32,
                        }))
                    } else {
                        None
                    };
                    pieces.push(Piece::Overlay {
                        len: b - a,
                        base,
                        patches: sp.patches_in(a, b),
                    });
                    continue;
                }
                None => {}
            }
            self.settle(idx).await?;
            match self.source(idx) {
                None => pieces.push(Piece::Zeros(b - a)),
                Some(src) => {
                    let valid = (src.len as usize).clamp(a, b);
                    if valid > a {
                        pieces.push(Piece::Fetch {
                            id: src.id,
                            holders: src.holders,
                            offset: a as u32,
                            len: (valid - a) as u32,
                        });
                    }
                    pieces.push(Piece::Zeros(b - valid));
                }
            }
        }
        Ok(pieces)
    }
}

/// Turns a plan into bytes. Sequential readers fetch (and cache) whole shards, which the
/// next reads of the same shard then hit; random readers fetch only the range they need,
/// which the node verifies against the shard's per-block checksums.
pub async fn execute_read<B: Backend>(
    io: &ShardIo<B>,
    pieces: Vec<Piece>,
    whole: bool,
) -> WireResult<Vec<u8>> {
    let mut out = Vec::new();
    for p in pieces {
        execute_piece(io, p, whole, &mut out).await?;
    }
    Ok(out)
}

/// Appends one piece's bytes to `out`.
async fn execute_piece<B: Backend>(
    io: &ShardIo<B>,
    p: Piece,
    whole: bool,
    out: &mut Vec<u8>,
) -> WireResult<()> {
    {
        match p {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::Zeros(n) => out.resize(out.len() + n, 0),
            Piece::Overlay { len, base, patches } => {
                let start = out.len();
                if let Some(base) = base {
                    Box::pin(execute_piece(io, *base, whole, out)).await?;
                }
                out.resize(start + len, 0);
                for (o, b) in patches {
                    out[start + o..start + o + b.len()].copy_from_slice(&b);
                }
            }
            Piece::Fetch {
                id,
                holders,
                offset,
                len,
            } => {
                let (o, l) = (offset as usize, len as usize);
                if whole || io.is_cached(&id) {
                    let d = io.fetch_whole(id, &holders).await?;
                    if d.len() < o + l {
                        return Err(WireError::corrupt(format!(
                            "shard {id} is shorter than its layout says"
                        )));
                    }
                    out.extend_from_slice(&d[o..o + l]);
                } else {
                    let d = io
                        .fetch_range(id, ByteRange { offset, len }, &holders)
                        .await?;
                    out.extend_from_slice(&d);
                }
            }
        }
    }
    Ok(())
}
