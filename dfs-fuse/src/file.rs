//! One open regular file on this mount: its committed layout, the bytes written since the
//! last commit, the uploads in flight, and the commit that makes them visible.
//!
//! The write path, in order:
//! 1. `write()` copies the bytes into a per-shard buffer (`dirty`, see `dirty.rs`). A
//!    write into a shard that already has stored content records only the bytes written
//!    (a sparse buffer); nothing is read from the nodes at that point.
//! 2. When a buffer becomes a full shard (a sequential writer crossed a shard boundary),
//!    or too many bytes are dirty (per file, or across the mount), a buffer is uploaded in
//!    the background (`inflight`): for a sparse one, fetch the stored shard and patch it;
//!    then hash it, ask the coordinator for nodes, PUT to them in parallel.
//! 3. `commit()` (from flush on close, or fsync) uploads what is left, waits for every
//!    upload, then sends one `Commit` to the coordinator: the new size and the new shards
//!    replace the old ones in one metadata transaction. Until then, other mounts see the
//!    previous content (close-to-open consistency).
//!
//! Reads see this mount's own uncommitted writes: a read is planned against `dirty`,
//! then uploaded-but-uncommitted shards, then the committed layout.

use crate::backend::Backend;
use crate::dirty::{self, DirtyShard, Sparse};
use crate::shard_io::{ShardIo, Stored};
use dfs_proto::coord_msg::{
    Attr, Caller, CommitShard, CoordRequest, CoordResponse, LayoutShard, NanoTime, NodeAddr,
    MAX_LAYOUT_PAGE,
};
use dfs_proto::node_msg::ByteRange;
use dfs_proto::{Ino, ShardId, WireError, WireResult};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::error;

/// What every open file shares with the rest of the mount.
pub struct Ctx<B> {
    /// For the coordinator requests of a file (its commit).
    pub backend: Arc<B>,
    /// Fetching and storing shards.
    pub io: Arc<ShardIo<B>>,
    /// Bounds the uploads in flight across the mount (and so the memory they hold).
    pub upload_slots: Arc<Semaphore>,
    /// Dirty bytes one file may buffer before uploads start without waiting for a flush.
    pub max_dirty: usize,
    /// Dirty bytes buffered by all the files of the mount together, and their limit.
    pub dirty_total: Arc<AtomicUsize>,
    /// Uncommitted shards of every open file, for the lease renewal.
    pub leases: Arc<Leases>,
    pub max_dirty_total: usize,
}

impl<B> Clone for Ctx<B> {
    fn clone(&self) -> Self {
        Ctx {
            backend: self.backend.clone(),
            io: self.io.clone(),
            upload_slots: self.upload_slots.clone(),
            max_dirty: self.max_dirty,
            dirty_total: self.dirty_total.clone(),
            leases: self.leases.clone(),
            max_dirty_total: self.max_dirty_total,
        }
    }
}

/// An upload's outcome; on failure, the buffer comes back so its bytes are not lost.
type UploadResult = Result<Stored, (WireError, DirtyShard)>;

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
    /// `len` bytes of a sparse buffer: the base's bytes (`base`: a `Fetch`, possibly
    /// shorter than `len`; zeros after it), with the written `patches` (offset, bytes) on
    /// top.
    Overlay {
        len: usize,
        base: Option<Box<Piece>>,
        patches: Vec<(usize, Vec<u8>)>,
    },
}

/// The shards each open file has stored on nodes but not committed yet, kept apart from
/// the files so that the task renewing their lease (`Fs::touch_uncommitted`, every
/// second) never waits for a file's lock: a commit holds that lock while it uploads, and
/// under load that can outlast the coordinator's grace for uncommitted shards, which
/// would then be collected under the commit's feet.
#[derive(Default)]
pub struct Leases {
    next: AtomicU64,
    by_file: std::sync::Mutex<BTreeMap<u64, Vec<ShardId>>>,
}

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<ShardId>>> {
        self.by_file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key for one file state (two states of one inode may briefly coexist).
    fn key(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn publish(&self, key: u64, ids: Vec<ShardId>) {
        let mut m = self.map();
        if ids.is_empty() {
            m.remove(&key);
        } else {
            m.insert(key, ids);
        }
    }

    /// Every shard stored but not committed, across the mount.
    pub fn all(&self) -> Vec<ShardId> {
        self.map().values().flatten().copied().collect()
    }
}

pub struct FileState {
    pub ino: Ino,
    /// Attributes as last returned by the coordinator.
    pub attr: Attr,
    pub shard_size: u32,
    layout: BTreeMap<u64, LayoutShard>,
    /// Size including this mount's uncommitted writes.
    pub size: u64,
    dirty: BTreeMap<u64, DirtyShard>,
    /// Memory held by `dirty`, also counted in the mount-wide `budget`.
    dirty_bytes: usize,
    budget: Arc<AtomicUsize>,
    /// Uploads running, with the length of the shard each is storing.
    inflight: BTreeMap<u64, (JoinHandle<UploadResult>, usize)>,
    uploaded: BTreeMap<u64, Stored>,
    /// Where `uploaded`'s IDs are published for the lease renewal, under `lease_key`.
    leases: Arc<Leases>,
    lease_key: u64,
    /// Time of the last write, committed as the file's mtime.
    mtime: Option<NanoTime>,
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
            budget: Arc::new(AtomicUsize::new(0)),
            inflight: BTreeMap::new(),
            uploaded: BTreeMap::new(),
            leases: Arc::new(Leases::default()),
            lease_key: 0,
            mtime: None,
            unlinked: false,
        })
    }

    /// Publishes this file's uncommitted shards in the mount's `leases` from now on.
    pub fn attach_leases(&mut self, leases: Arc<Leases>) {
        self.leases = leases;
        self.lease_key = self.leases.key();
        self.publish_leases();
    }

    /// Files the uploads that finished since the last write (a failure puts the bytes
    /// back in `dirty`, to be retried by the commit), so that their shards are leased.
    pub fn reap_uploads(&mut self) {
        let _ = self.reap_finished();
    }

    /// Called whenever `uploaded` changes.
    fn publish_leases(&self) {
        let ids = self.uploaded.values().map(|s| s.id).collect();
        self.leases.publish(self.lease_key, ids);
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

    /// Connects this file's dirty-byte count to the mount-wide one (at open).
    pub fn attach_budget(&mut self, total: Arc<AtomicUsize>) {
        total.fetch_add(self.dirty_bytes, Ordering::Relaxed);
        self.budget.fetch_sub(self.dirty_bytes, Ordering::Relaxed);
        self.budget = total;
    }

    fn add_dirty(&mut self, n: usize) {
        self.dirty_bytes += n;
        self.budget.fetch_add(n, Ordering::Relaxed);
    }

    fn sub_dirty(&mut self, n: usize) {
        let n = n.min(self.dirty_bytes);
        self.dirty_bytes -= n;
        self.budget.fetch_sub(n, Ordering::Relaxed);
    }

    /// Puts a buffer into `dirty` (replacing any), keeping the counts right.
    fn put_dirty(&mut self, idx: u64, d: DirtyShard) {
        self.add_dirty(d.mem());
        if let Some(old) = self.dirty.insert(idx, d) {
            self.sub_dirty(old.mem());
        }
    }

    fn take_dirty(&mut self, idx: u64) -> Option<DirtyShard> {
        let d = self.dirty.remove(&idx)?;
        self.sub_dirty(d.mem());
        Some(d)
    }

    /// Waits for an in-flight upload of shard `idx`, if any, and files its result.
    async fn settle(&mut self, idx: u64) -> WireResult<()> {
        if let Some((task, _)) = self.inflight.remove(&idx) {
            self.file_upload(idx, task.await);
        }
        Ok(())
    }

    /// Records the outcome of one upload: success goes to `uploaded`; on failure the bytes
    /// go back to `dirty`, under any written since, so nothing is lost.
    fn file_upload(
        &mut self,
        idx: u64,
        r: Result<UploadResult, tokio::task::JoinError>,
    ) -> Option<WireError> {
        match r {
            Ok(Ok(stored)) => {
                self.uploaded.insert(idx, stored);
                self.publish_leases();
                None
            }
            Ok(Err((e, data))) => {
                let back = match self.take_dirty(idx) {
                    Some(newer) => data.combine(newer),
                    None => data,
                };
                self.put_dirty(idx, back);
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

    /// Length of shard `idx`'s current content outside `dirty`: the upload in flight, if
    /// any (it will replace the stored one), else the stored shard.
    fn stored_len(&self, idx: u64) -> usize {
        match self.inflight.get(&idx) {
            Some((_, len)) => *len,
            None => self.source(idx).map_or(0, |s| s.len as usize),
        }
    }

    /// The dirty buffer of shard `idx`, created for a write about to land at `at..at+n`
    /// (inside the shard) if there is none. Nothing is fetched: if the shard has stored
    /// bytes the write does not replace, the buffer is sparse over them.
    fn buffer(&mut self, idx: u64, at: usize, n: usize) -> &mut DirtyShard {
        if !self.dirty.contains_key(&idx) {
            // Bytes of the shard's current content that are still part of the file (a
            // truncate may have cut the shard short of its stored length).
            let valid = self
                .stored_len(idx)
                .min(self.size.saturating_sub(self.shard_span(idx)) as usize);
            let d = if at == 0 && n >= valid {
                // Replaces all there is: a new shard, or a sequential writer. Size the
                // buffer once instead of doubling it eight times.
                DirtyShard::Full(Vec::with_capacity(self.shard_size as usize))
            } else {
                DirtyShard::Sparse(Sparse::new(valid))
            };
            self.dirty.insert(idx, d);
        }
        self.dirty
            .entry(idx)
            .or_insert_with(|| DirtyShard::Full(Vec::new()))
    }

    /// Files the results of uploads that have finished, without waiting for the others.
    /// Returns the first failure.
    fn reap_finished(&mut self) -> Option<WireError> {
        let done: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, (t, _))| t.is_finished())
            .map(|(&i, _)| i)
            .collect();
        let mut first = None;
        for idx in done {
            if let Some((task, len)) = self.inflight.remove(&idx) {
                match try_join(task) {
                    Ok(r) => {
                        if let Some(e) = self.file_upload(idx, r) {
                            first.get_or_insert(e);
                        }
                    }
                    Err(task) => {
                        self.inflight.insert(idx, (task, len));
                    }
                }
            }
        }
        first
    }

    /// True while this file must give back memory: over its own budget, or the mount is
    /// over its total and this file holds some of it.
    fn over_budget<B>(&self, ctx: &Ctx<B>) -> bool {
        self.dirty_bytes > ctx.max_dirty
            || (self.dirty_bytes > 0
                && ctx.dirty_total.load(Ordering::Relaxed) > ctx.max_dirty_total)
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
            let buf = self.buffer(idx, at, n);
            let before = buf.mem();
            buf.write(at, chunk);
            let (after, full) = (
                buf.mem(),
                matches!(buf, DirtyShard::Full(b) if b.len() == s as usize),
            );
            self.add_dirty(after.saturating_sub(before));
            self.sub_dirty(before.saturating_sub(after));
            pos += n as u64;
            // The size covers this shard's bytes before anything can upload them.
            self.size = self.size.max(pos);
            if full && at + n == s as usize {
                self.start_upload(ctx, idx).await;
            }
        }
        self.mtime = Some(now);
        // Bound memory: past the limit, ship the fullest dirty shards now (see
        // `dirty::victim`). Uploads run in the background; a writer waits only when every
        // upload slot is busy.
        while self.over_budget(ctx) {
            let Some(idx) = dirty::victim(&self.dirty) else {
                break;
            };
            self.start_upload(ctx, idx).await;
        }
        Ok(())
    }

    /// Moves shard `idx` from `dirty` to an upload running in the background. Waits for
    /// an upload slot first: this is the back-pressure that bounds a writer's memory.
    async fn start_upload<B: Backend>(&mut self, ctx: &Ctx<B>, idx: u64) {
        if !self.dirty.contains_key(&idx) {
            return;
        }
        // A previous upload of the same index must finish first: its shard is the base of
        // a sparse buffer, and its result must not overwrite ours in `uploaded`. (If it
        // failed, its bytes are now merged under ours in `dirty`.)
        let _ = self.settle(idx).await;
        let Some(data) = self.take_dirty(idx) else {
            return;
        };
        let len = data.len();
        // The stored shard a sparse buffer patches, if it needs any of its bytes.
        let base = match &data {
            DirtyShard::Sparse(sp) if sp.needs_base(0, sp.len()) => self.source(idx),
            _ => None,
        };
        let permit: Option<OwnedSemaphorePermit> =
            ctx.upload_slots.clone().acquire_owned().await.ok();
        let ctx = ctx.clone();
        let task = tokio::spawn(async move {
            let r = upload(&ctx, data, base).await;
            drop(permit);
            r
        });
        self.inflight.insert(idx, (task, len));
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
        for (idx, (task, _)) in tasks {
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
        let committed = std::mem::take(&mut self.uploaded);
        self.publish_leases();
        for (index, s) in committed {
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
        let mut fresh = FileState::load(backend, self.ino).await?;
        self.layout = std::mem::take(&mut fresh.layout);
        self.attr = fresh.attr.clone();
        self.size = fresh.size;
        Ok(())
    }

    /// Asks the coordinator again where this file's committed shards are, keeping the
    /// layout itself: a read that found no live holder retries with what the coordinator
    /// knows now (after its restart, the nodes that registered since).
    pub async fn refresh_holders<B: Backend>(&mut self, backend: &B) -> WireResult<()> {
        let fresh = FileState::load(backend, self.ino).await?;
        for (i, l) in self.layout.iter_mut() {
            if let Some(f) = fresh.layout.get(i) {
                if f.id == l.id {
                    l.holders = f.holders.clone();
                }
            }
        }
        Ok(())
    }

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
            if matches!(self.dirty.get(&idx), Some(DirtyShard::Sparse(_))) {
                // The base of a sparse buffer is what an upload in flight is storing.
                self.settle(idx).await?;
            }
            match self.dirty.get(&idx) {
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
        execute_piece(ctx, p, whole, &mut out).await?;
    }
    Ok(out)
}

/// Appends one piece's bytes to `out`.
async fn execute_piece<B: Backend>(
    ctx: &Ctx<B>,
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
                    Box::pin(execute_piece(ctx, *base, whole, out)).await?;
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
                if whole || ctx.io.is_cached(&id) {
                    let d = ctx.io.fetch_whole(id, &holders).await?;
                    if d.len() < o + l {
                        return Err(WireError::corrupt(format!(
                            "shard {id} is shorter than its layout says"
                        )));
                    }
                    out.extend_from_slice(&d[o..o + l]);
                } else {
                    let d = ctx
                        .io
                        .fetch_range(id, ByteRange { offset, len }, &holders)
                        .await?;
                    out.extend_from_slice(&d);
                }
            }
        }
    }
    Ok(())
}

/// Stores one dirty buffer as a shard. A sparse buffer is first completed: the stored
/// shard it patches (`base`) is fetched once, verified, and the patches laid over it.
/// This is the read-modify-write that immutable, content-addressed shards require; it
/// runs here, in the background, instead of in `write()`.
async fn upload<B: Backend>(ctx: &Ctx<B>, data: DirtyShard, base: Option<Source>) -> UploadResult {
    let data = match data {
        DirtyShard::Full(d) => d,
        DirtyShard::Sparse(sp) => {
            let fetched = match &base {
                None if sp.needs_base(0, sp.len()) => Err(WireError::internal(
                    "a sparse shard buffer has no stored base to patch",
                )),
                None => Ok(None),
                Some(src) => ctx.io.fetch_for_patch(src.id, &src.holders).await.map(Some),
            };
            match fetched {
                Ok(Some(b)) if b.len() < sp.valid() => {
                    let e = WireError::corrupt("stored shard shorter than its layout says");
                    return Err((e, DirtyShard::Sparse(sp)));
                }
                Ok(b) => sp.merge(b.as_deref().map_or(&[], |v| v.as_slice())),
                Err(e) => return Err((e, DirtyShard::Sparse(sp))),
            }
        }
    };
    ctx.io
        .store(data)
        .await
        .map_err(|(e, d)| (e, DirtyShard::Full(d)))
}

impl Drop for FileState {
    /// Buffers dropped with the file (its last handle closed after a failed commit) give
    /// their share of the mount's budget back.
    fn drop(&mut self) {
        self.budget.fetch_sub(self.dirty_bytes, Ordering::Relaxed);
        self.leases.publish(self.lease_key, Vec::new());
    }
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
