//! One open regular file on this mount: its committed layout, the bytes written since the
//! last commit, and the commit that makes them visible. The buffers themselves are in
//! `dirty.rs`, the uploads in `upload.rs`, read planning in `read.rs`.
//!
//! The write path, in order:
//! 1. `write()` copies the bytes into a per-shard buffer (`dirty`, see `dirty.rs`). A
//!    write into a shard that already has stored content records only the bytes written
//!    (a sparse buffer); nothing is read from the nodes at that point.
//! 2. When a buffer becomes a full shard (a sequential writer crossed a shard boundary),
//!    or too many bytes are dirty (per file, or across the mount), a buffer is uploaded in
//!    the background (`upload.rs`): for a sparse one, fetch the stored shard and patch it;
//!    then hash it, ask the coordinator for nodes, PUT to them in parallel.
//! 3. `commit()` (from flush on close, or fsync) uploads what is left, waits for every
//!    upload, then sends one `Commit` to the coordinator: the new size and the new shards
//!    replace the old ones in one metadata transaction. Until then, other mounts see the
//!    previous content (close-to-open consistency).
//!
//! Reads see this mount's own uncommitted writes: a read is planned against `dirty`,
//! then uploaded-but-uncommitted shards, then the committed layout.

use crate::backend::Backend;
use crate::dirty::{Buffers, DirtyShard, Sparse};
use crate::lease::Leases;
use crate::shard_io::ShardIo;
use crate::upload::{Finished, Uploads};
use dfs_proto::coord_msg::{
    Attr, Caller, CommitShard, CoordRequest, CoordResponse, LayoutShard, NanoTime, NodeAddr,
    SetAttrs, MAX_LAYOUT_PAGE,
};
use dfs_proto::{Ino, ShardId, WireError, WireResult};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::sync::Semaphore;
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

/// Where the current bytes of one shard index live.
#[derive(Clone)]
pub struct Source {
    pub id: ShardId,
    pub len: u32,
    pub holders: Vec<NodeAddr>,
}

pub struct FileState {
    pub ino: Ino,
    /// Attributes as last returned by the coordinator.
    pub attr: Attr,
    pub shard_size: u32,
    layout: BTreeMap<u64, LayoutShard>,
    /// Size including this mount's uncommitted writes.
    pub size: u64,
    /// When this mount created the file, if it has had it open ever since and nothing
    /// made its attributes unknowable here (a link or unlink through this mount): then,
    /// for one TTL, [`FileState::local_attr`] is as fresh as the coordinator's answer.
    pub created_here: Option<std::time::Instant>,
    /// Bytes written and not yet handed to an upload (read by `read.rs` too).
    pub(crate) dirty: Buffers,
    /// Uploads running, and shards stored but not committed.
    uploads: Uploads,
    /// Time of the last write, committed as the file's mtime.
    mtime: Option<NanoTime>,
    /// Mode, owner and atime changes folded into the next commit (see [`FileState::fold`]),
    /// already applied to `attr`.
    pending: SetAttrs,
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
            dirty: Buffers::default(),
            uploads: Uploads::default(),
            mtime: None,
            pending: SetAttrs::default(),
            unlinked: false,
            created_here: None,
        })
    }

    /// Publishes this file's uncommitted shards in the mount's `leases` from now on.
    pub fn attach_leases(&mut self, leases: Arc<Leases>) {
        self.uploads.attach_leases(leases);
    }

    /// Connects this file's dirty-byte count to the mount-wide one (at open).
    pub fn attach_budget(&mut self, total: Arc<AtomicUsize>) {
        self.dirty.attach_budget(total);
    }

    /// Files the uploads that finished since the last write (a failure puts the bytes
    /// back in `dirty`, to be retried by the commit), so that their shards are leased.
    pub fn reap_uploads(&mut self) {
        let _ = self.reap_finished();
    }

    /// True if this mount holds changes the coordinator has not committed.
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || !self.uploads.is_empty()
    }

    /// Folds a `chmod`, `chown` or `utimes` into the file's next commit instead of
    /// sending it on its own, and returns the attributes to answer with; `None` if it
    /// must be sent now.
    ///
    /// `tar -x` and `cp -p` set mode, owner and times right after writing each file and
    /// before closing it: folded, those cost no round trip each, and the commit at close
    /// applies them in the same transaction as the content (in the order they were made:
    /// content first). Folded only while that commit is certain to come (this mount holds
    /// uncommitted writes), and never for a truncate (which needs the coordinator now)
    /// or a mode with set-user-ID or set-group-ID (which a later write by another user
    /// must clear, an ordering the commit does not keep). Until the close, other mounts
    /// see the old attributes, as they see the old content: close-to-open, as NFS.
    pub fn fold(&mut self, set: &SetAttrs, now: NanoTime) -> Option<Attr> {
        if !self.has_changes() || set.size.is_some() || set.perm.is_some_and(|p| p & 0o6000 != 0) {
            return None;
        }
        let mut meta = set.clone();
        // A set mtime is simply the mtime to commit, until a later write replaces it.
        if let Some(t) = meta.mtime.take() {
            self.mtime = Some(t.at(now));
        }
        meta.apply_meta(&mut self.attr, now);
        self.pending.merge(&meta);
        Some(self.local_attr())
    }

    /// True if a folded mode or owner change waits for the next commit.
    pub fn has_pending_owner_or_mode(&self) -> bool {
        self.pending.perm.is_some() || self.pending.uid.is_some() || self.pending.gid.is_some()
    }

    /// True if folded changes wait for the next commit.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
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

    pub(crate) fn shard_span(&self, idx: u64) -> u64 {
        idx * u64::from(self.shard_size)
    }

    /// Waits for an in-flight upload of shard `idx`, if any, and files its result.
    pub(crate) async fn settle(&mut self, idx: u64) -> WireResult<()> {
        if let Some(r) = self.uploads.wait(idx).await {
            self.file_upload(idx, r);
        }
        Ok(())
    }

    /// Records the outcome of one upload: success goes to `uploads`' stored shards; on
    /// failure the bytes go back to `dirty`, under any written since, so nothing is lost.
    fn file_upload(&mut self, idx: u64, r: Finished) -> Option<WireError> {
        match r {
            Ok(Ok(stored)) => {
                self.uploads.record(idx, stored);
                None
            }
            Ok(Err((e, data))) => {
                let back = match self.dirty.take(idx) {
                    Some(newer) => data.combine(newer),
                    None => data,
                };
                self.dirty.put(idx, back);
                Some(e)
            }
            Err(e) => Some(WireError::internal(format!("upload task failed: {e}"))),
        }
    }

    /// Where the current stored bytes of shard `idx` are: an upload not yet committed,
    /// else the committed layout.
    pub(crate) fn source(&self, idx: u64) -> Option<Source> {
        if let Some(s) = self.uploads.stored(idx) {
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
        match self.uploads.inflight_len(idx) {
            Some(len) => len,
            None => self.source(idx).map_or(0, |s| s.len as usize),
        }
    }

    /// Makes sure shard `idx` has a dirty buffer, created for a write about to land at
    /// `at..at+n` (inside the shard) if there is none. Nothing is fetched: if the shard has
    /// stored bytes the write does not replace, the buffer is sparse over them.
    fn ensure_buffer(&mut self, idx: u64, at: usize, n: usize) {
        if !self.dirty.contains(idx) {
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
            self.dirty.put(idx, d);
        }
    }

    /// Files the results of uploads that have finished, without waiting for the others.
    /// Returns the first failure.
    fn reap_finished(&mut self) -> Option<WireError> {
        let mut first = None;
        for (idx, r) in self.uploads.finished() {
            if let Some(e) = self.file_upload(idx, r) {
                first.get_or_insert(e);
            }
        }
        first
    }

    /// True while this file must give back memory: over its own budget, or the mount is
    /// over its total and this file holds some of it.
    fn over_budget<B>(&self, ctx: &Ctx<B>) -> bool {
        self.dirty.bytes() > ctx.max_dirty
            || (self.dirty.bytes() > 0 && self.dirty.mount_bytes() > ctx.max_dirty_total)
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
            if self.dirty.bytes() + data.len() > ctx.max_dirty {
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
            self.ensure_buffer(idx, at, n);
            let full = self.dirty.write(idx, at, chunk) == Some(s as usize);
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
            let Some(idx) = self.dirty.victim() else {
                break;
            };
            self.start_upload(ctx, idx).await;
        }
        Ok(())
    }

    /// Moves shard `idx` from `dirty` to an upload running in the background. Waits for
    /// an upload slot first: this is the back-pressure that bounds a writer's memory.
    async fn start_upload<B: Backend>(&mut self, ctx: &Ctx<B>, idx: u64) {
        if !self.dirty.contains(idx) {
            return;
        }
        // A previous upload of the same index must finish first: its shard is the base of
        // a sparse buffer, and its result must not overwrite ours in `uploads`. (If it
        // failed, its bytes are now merged under ours in `dirty`.)
        let _ = self.settle(idx).await;
        let Some(data) = self.dirty.take(idx) else {
            return;
        };
        // The stored shard a sparse buffer patches, if it needs any of its bytes.
        let base = match &data {
            DirtyShard::Sparse(sp) if sp.needs_base(0, sp.len()) => self.source(idx),
            _ => None,
        };
        self.uploads.start(ctx, idx, data, base).await;
    }

    /// Uploads everything dirty and commits it, with the local size, in one coordinator
    /// transaction. On error the data stays buffered, so a later flush/fsync can retry.
    pub async fn commit<B: Backend>(&mut self, ctx: &Ctx<B>, caller: Caller) -> WireResult<()> {
        for idx in self.dirty.indexes() {
            self.start_upload(ctx, idx).await;
        }
        let mut first_err = None;
        // Each result is filed as soon as it is in, so a stored shard is leased while the
        // others are still uploading.
        for (idx, task) in self.uploads.take_inflight() {
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
        if self.uploads.nothing_stored() && self.pending.is_empty() {
            return Ok(());
        }
        let shards = self
            .uploads
            .stored_shards()
            .map(|(index, s)| CommitShard {
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
            set: self.pending.clone(),
        };
        let attr = match ctx.backend.meta(req).await? {
            CoordResponse::Attr(a) => a,
            _ => return Err(WireError::unexpected("Commit")),
        };
        for (index, s) in self.uploads.take_stored() {
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
        self.pending = SetAttrs::default();
        Ok(())
    }

    /// Every committed shard of the file with its holders: what a `fsync` makes durable.
    pub fn committed_shards(&self) -> Vec<(ShardId, Vec<NodeAddr>)> {
        self.layout
            .values()
            .map(|l| (l.id, l.holders.clone()))
            .collect()
    }

    /// The state of a file this mount has just created: nothing committed yet, so
    /// nothing to load (the coordinator refuses a `Create` over an existing name).
    pub fn fresh(attr: Attr, shard_size: u32) -> FileState {
        FileState {
            ino: attr.ino,
            size: attr.size,
            attr,
            shard_size,
            layout: BTreeMap::new(),
            dirty: Buffers::default(),
            uploads: Uploads::default(),
            mtime: None,
            pending: SetAttrs::default(),
            unlinked: false,
            created_here: None,
        }
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
}
