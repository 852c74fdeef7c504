//! One open regular file on this mount: its committed layout, the bytes written since the
//! last commit, the uploads in flight, and the commit that makes them visible.
//!
//! The write path, in order:
//! 1. `write()` copies the bytes into a per-shard buffer (`dirty`). The first write to a
//!    shard that already has content loads that content first, unless the write covers it.
//! 2. When a buffer becomes a full shard (a sequential writer crossed a shard boundary),
//!    or too many bytes are dirty, the buffer is uploaded in the background (`inflight`):
//!    hash it, ask the coordinator for nodes, PUT to them in parallel.
//! 3. `commit()` (from flush on close, or fsync) uploads what is left, waits for every
//!    upload, then sends one `Commit` to the coordinator: the new size and the new shards
//!    replace the old ones in one metadata transaction. Until then, other mounts see the
//!    previous content (close-to-open consistency).
//!
//! Reads see this mount's own uncommitted writes: a read is planned against `dirty`,
//! then uploaded-but-uncommitted shards, then the committed layout.

use crate::backend::Backend;
use crate::node_health::NodeHealth;
use crate::shard_cache::ShardCache;
use crate::shard_io::{self, Stored};
use dfs_proto::coord_msg::{
    Attr, Caller, CommitShard, CoordRequest, CoordResponse, LayoutShard, NanoTime, NodeAddr,
    MAX_LAYOUT_PAGE,
};
use dfs_proto::node_msg::ByteRange;
use dfs_proto::{Ino, ShardId, WireError, WireResult};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::error;

/// What every open file shares with the rest of the mount.
pub struct Ctx<B> {
    pub backend: Arc<B>,
    pub cache: Arc<ShardCache>,
    /// Bounds the uploads in flight across the mount (and so the memory they hold).
    pub upload_slots: Arc<Semaphore>,
    /// Nodes that failed recently, tried last.
    pub health: Arc<NodeHealth>,
    /// Deadline of one request to a storage node.
    pub node_deadline: Duration,
    /// Dirty bytes one file may buffer before uploads start without waiting for a flush.
    pub max_dirty: usize,
}

impl<B> Clone for Ctx<B> {
    fn clone(&self) -> Self {
        Ctx {
            backend: self.backend.clone(),
            cache: self.cache.clone(),
            upload_slots: self.upload_slots.clone(),
            health: self.health.clone(),
            node_deadline: self.node_deadline,
            max_dirty: self.max_dirty,
        }
    }
}

type UploadResult = Result<Stored, (WireError, Vec<u8>)>;

/// Where the current bytes of one shard index live.
#[derive(Clone)]
struct Source {
    id: ShardId,
    len: u32,
    holders: Vec<NodeAddr>,
}

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
}

pub struct FileState {
    pub ino: Ino,
    /// Attributes as last returned by the coordinator.
    pub attr: Attr,
    pub shard_size: u32,
    layout: BTreeMap<u64, LayoutShard>,
    /// Size including this mount's uncommitted writes.
    pub size: u64,
    dirty: BTreeMap<u64, Vec<u8>>,
    dirty_bytes: usize,
    inflight: BTreeMap<u64, JoinHandle<UploadResult>>,
    uploaded: BTreeMap<u64, Stored>,
    /// Time of the last write, committed as the file's mtime.
    mtime: Option<NanoTime>,
    /// Open handles on this mount.
    pub handles: u32,
    /// Unlinked while open: tell the coordinator when the last handle closes.
    pub unlinked: bool,
}

impl FileState {
    /// Loads the committed layout of `ino` from the coordinator.
    pub async fn load<B: Backend>(backend: &B, ino: Ino) -> WireResult<FileState> {
        let mut layout = BTreeMap::new();
        let mut from = 0;
        let (attr, shard_size) = loop {
            let page = match backend
                .meta(CoordRequest::GetLayout {
                    ino,
                    from,
                    limit: MAX_LAYOUT_PAGE,
                })
                .await?
            {
                CoordResponse::Layout(l) => l,
                _ => return Err(WireError::unexpected("GetLayout")),
            };
            for s in page.shards {
                from = s.index + 1;
                layout.insert(s.index, s);
            }
            if !page.more {
                break (page.attr, page.shard_size);
            }
        };
        if shard_size == 0 || shard_size > dfs_proto::MAX_SHARD_SIZE {
            return Err(WireError::internal(format!(
                "coordinator sent shard size {shard_size}"
            )));
        }
        Ok(FileState {
            ino,
            size: attr.size,
            attr,
            shard_size,
            layout,
            dirty: BTreeMap::new(),
            dirty_bytes: 0,
            inflight: BTreeMap::new(),
            uploaded: BTreeMap::new(),
            mtime: None,
            handles: 0,
            unlinked: false,
        })
    }

    /// Shards this file has stored on nodes but not committed yet: the coordinator must
    /// not collect them while we live (see `Fs::touch_uncommitted`).
    pub fn uncommitted_ids(&mut self) -> impl Iterator<Item = ShardId> + '_ {
        // Uploads that finished since the last write still sit in `inflight`; file them
        // first (a failure puts the bytes back in `dirty`, to be retried by the commit).
        let _ = self.reap_finished();
        self.uploaded.values().map(|s| s.id)
    }

    /// True if this mount holds changes the coordinator has not committed.
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || !self.inflight.is_empty() || !self.uploaded.is_empty()
    }

    /// The attributes a `stat` on this mount should show: committed ones, overlaid with
    /// the local size and mtime of uncommitted writes.
    pub fn local_attr(&self) -> Attr {
        let mut a = self.attr.clone();
        a.size = self.size;
        if let Some(m) = self.mtime {
            a.mtime = m;
            a.ctime = a.ctime.max(m);
        }
        a
    }

    fn shard_span(&self, idx: u64) -> u64 {
        idx * u64::from(self.shard_size)
    }

    /// Waits for an in-flight upload of shard `idx`, if any, and files its result.
    async fn settle(&mut self, idx: u64) -> WireResult<()> {
        if let Some(task) = self.inflight.remove(&idx) {
            self.file_upload(idx, task.await);
        }
        Ok(())
    }

    /// Records the outcome of one upload: success goes to `uploaded`; on failure the bytes
    /// go back to `dirty` (unless newer bytes were written since) so nothing is lost.
    fn file_upload(
        &mut self,
        idx: u64,
        r: Result<UploadResult, tokio::task::JoinError>,
    ) -> Option<WireError> {
        match r {
            Ok(Ok(stored)) => {
                self.uploaded.insert(idx, stored);
                None
            }
            Ok(Err((e, data))) => {
                if !self.dirty.contains_key(&idx) {
                    self.dirty_bytes += data.len();
                    self.dirty.insert(idx, data);
                }
                Some(e)
            }
            Err(e) => Some(WireError::internal(format!("upload task failed: {e}"))),
        }
    }

    fn source(&self, idx: u64) -> Option<Source> {
        if let Some(s) = self.uploaded.get(&idx) {
            return Some(Source {
                id: s.id,
                len: s.len,
                holders: s.holders.clone(),
            });
        }
        self.layout.get(&idx).map(|l| Source {
            id: l.id,
            len: l.len,
            holders: l.holders.clone(),
        })
    }

    /// The dirty buffer of shard `idx`, created from the shard's current content unless
    /// the write about to land (`at..at+n` inside the shard) replaces all of it.
    async fn buffer<B: Backend>(
        &mut self,
        ctx: &Ctx<B>,
        idx: u64,
        at: usize,
        n: usize,
    ) -> WireResult<&mut Vec<u8>> {
        if !self.dirty.contains_key(&idx) {
            self.settle(idx).await?;
            let mut buf = Vec::new();
            if let Some(src) = self.source(idx) {
                // Bytes of this shard that are still part of the file.
                let valid =
                    (src.len as u64).min(self.size.saturating_sub(self.shard_span(idx))) as usize;
                if valid > 0 && !(at == 0 && n >= valid) {
                    let whole = shard_io::fetch_whole(
                        &*ctx.backend,
                        &ctx.cache,
                        &ctx.health,
                        src.id,
                        &src.holders,
                        ctx.node_deadline,
                    )
                    .await?;
                    buf.extend_from_slice(&whole[..valid.min(whole.len())]);
                }
            }
            if buf.capacity() < self.shard_size as usize && at == 0 {
                // A write at the start of a shard is usually a sequential writer: size the
                // buffer once instead of doubling it eight times.
                buf.reserve_exact(self.shard_size as usize - buf.len());
            }
            self.dirty_bytes += buf.len();
            self.dirty.insert(idx, buf);
        }
        self.dirty
            .get_mut(&idx)
            .ok_or_else(|| WireError::internal("dirty buffer vanished"))
    }

    /// Files the results of uploads that have finished, without waiting for the others.
    /// Returns the first failure.
    fn reap_finished(&mut self) -> Option<WireError> {
        let done: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, t)| t.is_finished())
            .map(|(&i, _)| i)
            .collect();
        let mut first = None;
        for idx in done {
            if let Some(task) = self.inflight.remove(&idx) {
                match try_join(task) {
                    Ok(r) => {
                        if let Some(e) = self.file_upload(idx, r) {
                            first.get_or_insert(e);
                        }
                    }
                    Err(task) => {
                        self.inflight.insert(idx, task);
                    }
                }
            }
        }
        first
    }

    /// Applies a write at `offset`.
    ///
    /// If uploads are failing (no node has room, or none answers) and this file's buffer
    /// is already full, the write fails with that error instead of buffering without
    /// bound: the program sees ENOSPC or EIO now, not only at close.
    pub async fn write<B: Backend>(
        &mut self,
        ctx: &Ctx<B>,
        offset: u64,
        data: &[u8],
        now: NanoTime,
    ) -> WireResult<()> {
        if let Some(e) = self.reap_finished() {
            if self.dirty_bytes + data.len() > ctx.max_dirty {
                return Err(e);
            }
        }
        let s = u64::from(self.shard_size);
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| WireError::invalid("write past the largest file offset"))?;
        let mut pos = offset;
        while pos < end {
            let idx = pos / s;
            let at = (pos % s) as usize;
            let n = ((end - pos) as usize).min(s as usize - at);
            let chunk = &data[(pos - offset) as usize..][..n];
            let buf = self.buffer(ctx, idx, at, n).await?;
            let before = buf.len();
            if buf.len() < at + n {
                buf.resize(at + n, 0);
            }
            buf[at..at + n].copy_from_slice(chunk);
            let full = buf.len() == s as usize;
            let grown = buf.len() - before;
            self.dirty_bytes += grown;
            pos += n as u64;
            if full && at + n == s as usize {
                self.start_upload(ctx, idx).await;
            }
        }
        self.size = self.size.max(end);
        self.mtime = Some(now);
        // Bound memory: past the limit, ship the lowest-numbered dirty shards now.
        while self.dirty_bytes > ctx.max_dirty {
            let Some(&idx) = self.dirty.keys().next() else {
                break;
            };
            self.start_upload(ctx, idx).await;
        }
        Ok(())
    }

    /// Moves shard `idx` from `dirty` to an upload running in the background. Waits for
    /// an upload slot first: this is the back-pressure that bounds a writer's memory.
    async fn start_upload<B: Backend>(&mut self, ctx: &Ctx<B>, idx: u64) {
        let Some(data) = self.dirty.remove(&idx) else {
            return;
        };
        self.dirty_bytes -= data.len();
        // A previous upload of the same index is superseded, but must finish first so its
        // result cannot overwrite ours in `uploaded`.
        let _ = self.settle(idx).await;
        let permit: Option<OwnedSemaphorePermit> =
            ctx.upload_slots.clone().acquire_owned().await.ok();
        let backend = ctx.backend.clone();
        let health = ctx.health.clone();
        let deadline = ctx.node_deadline;
        let task = tokio::spawn(async move {
            let r = shard_io::store(&*backend, &health, data, deadline).await;
            drop(permit);
            r
        });
        self.inflight.insert(idx, task);
    }

    /// Uploads everything dirty and commits it, with the local size, in one coordinator
    /// transaction. On error the data stays buffered, so a later flush/fsync can retry.
    pub async fn commit<B: Backend>(&mut self, ctx: &Ctx<B>, caller: Caller) -> WireResult<()> {
        let idxs: Vec<u64> = self.dirty.keys().copied().collect();
        for idx in idxs {
            self.start_upload(ctx, idx).await;
        }
        let mut first_err = None;
        let tasks = std::mem::take(&mut self.inflight);
        for (idx, task) in tasks {
            if let Some(e) = self.file_upload(idx, task.await) {
                error!(
                    ino = self.ino,
                    "failed to store bytes {}..{}: {e}",
                    self.shard_span(idx),
                    self.shard_span(idx + 1)
                );
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if self.uploaded.is_empty() {
            return Ok(());
        }
        let shards = self
            .uploaded
            .iter()
            .map(|(&index, s)| CommitShard {
                index,
                id: s.id,
                len: s.len,
                shard_len: s.len,
                stored_on: s.stored_on.clone(),
            })
            .collect();
        let req = CoordRequest::Commit {
            ino: self.ino,
            size: self.size,
            mtime: self.mtime.unwrap_or(self.attr.mtime),
            shards,
            caller,
        };
        let attr = match ctx.backend.meta(req).await? {
            CoordResponse::Attr(a) => a,
            _ => return Err(WireError::unexpected("Commit")),
        };
        for (index, s) in std::mem::take(&mut self.uploaded) {
            self.layout.insert(
                index,
                LayoutShard {
                    index,
                    id: s.id,
                    len: s.len,
                    holders: s.holders,
                },
            );
        }
        // The coordinator dropped shards past the committed size; do the same here.
        let s = u64::from(self.shard_size);
        self.layout.retain(|&i, _| i * s < attr.size);
        self.size = attr.size;
        self.attr = attr;
        self.mtime = None;
        Ok(())
    }

    /// Replaces the committed view after a change made elsewhere (truncate).
    pub async fn reload<B: Backend>(&mut self, backend: &B) -> WireResult<()> {
        let fresh = FileState::load(backend, self.ino).await?;
        self.layout = fresh.layout;
        self.attr = fresh.attr;
        self.size = fresh.size;
        Ok(())
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
            if let Some(buf) = self.dirty.get(&idx) {
                // The buffer holds the shard's bytes up to its length; past that, up to
                // the file size, is a hole (the read may start inside it).
                let have = buf.len().clamp(a, b);
                pieces.push(Piece::Bytes(buf.get(a..have).unwrap_or_default().to_vec()));
                pieces.push(Piece::Zeros(b - have));
                continue;
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

    /// The committed shards after the one holding `offset`, up to `count`, for readahead.
    pub fn next_shards(&self, offset: u64, count: u64) -> Vec<(ShardId, Vec<NodeAddr>)> {
        let first = offset / u64::from(self.shard_size) + 1;
        (first..first + count)
            .filter(|i| !self.dirty.contains_key(i))
            .filter_map(|i| self.source(i).map(|s| (s.id, s.holders)))
            .collect()
    }
}

/// Turns a plan into bytes. Sequential readers fetch (and cache) whole shards, which the
/// next reads of the same shard then hit; random readers fetch only the range they need,
/// which the node verifies against the shard's per-block checksums.
pub async fn execute_read<B: Backend>(
    ctx: &Ctx<B>,
    pieces: Vec<Piece>,
    whole: bool,
) -> WireResult<Vec<u8>> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::Zeros(n) => out.resize(out.len() + n, 0),
            Piece::Fetch {
                id,
                holders,
                offset,
                len,
            } => {
                let (o, l) = (offset as usize, len as usize);
                if whole || ctx.cache.contains(&id) {
                    let d = shard_io::fetch_whole(
                        &*ctx.backend,
                        &ctx.cache,
                        &ctx.health,
                        id,
                        &holders,
                        ctx.node_deadline,
                    )
                    .await?;
                    if d.len() < o + l {
                        return Err(WireError::corrupt(format!(
                            "shard {id} is shorter than its layout says"
                        )));
                    }
                    out.extend_from_slice(&d[o..o + l]);
                } else {
                    let d = shard_io::fetch_range(
                        &*ctx.backend,
                        &ctx.health,
                        id,
                        ByteRange { offset, len },
                        &holders,
                        ctx.node_deadline,
                    )
                    .await?;
                    out.extend_from_slice(&d);
                }
            }
        }
    }
    Ok(out)
}

/// The output of a task if it has finished (`now_or_never` without the futures crate:
/// poll once with a no-op waker); the task back if it has not.
fn try_join<T>(
    mut task: JoinHandle<T>,
) -> Result<Result<T, tokio::task::JoinError>, JoinHandle<T>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(&mut task).poll(&mut cx) {
        std::task::Poll::Ready(r) => Ok(r),
        std::task::Poll::Pending => Err(task),
    }
}
