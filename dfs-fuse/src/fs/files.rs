//! Regular files: create, open, read, write, flush and release. Each open file has one
//! shared [`FileState`] per inode; writes are buffered there and committed on flush (the
//! `close()` a program sees) and again at release, for writes through mmap and for a
//! flush that failed.

use super::{now_ns, Fs};
use crate::backend::Backend;
use crate::file::FileState;
use crate::handles::Handle;
use crate::read::execute_read;
use crate::readahead::{self, READAHEAD_SHARDS};
use dfs_proto::coord_msg::{Attr, Caller, CoordRequest, FileKind, SetAttrs};
use dfs_proto::{ErrorCode, Ino, WireError, WireResult};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl<B: Backend> Fs<B> {
    /// Creates and opens a regular file.
    pub async fn create(
        &self,
        parent: Ino,
        name: &str,
        perm: u32,
        caller: Caller,
    ) -> WireResult<(Attr, u64)> {
        let attr = self
            .mknod(parent, name, FileKind::File, perm, 0, caller)
            .await?;
        // A new file has no layout to fetch: once the cluster's shard size is known (from
        // any earlier open), the create is one coordinator round trip, not two.
        let shard_size = self.shard_size.load(Ordering::Relaxed);
        if shard_size == 0 {
            let (fh, _) = self.open(attr.ino).await?;
            return Ok((attr, fh));
        }
        let mut st = FileState::fresh(attr.clone(), shard_size);
        st.created_here = Some(std::time::Instant::now());
        st.attach_budget(self.ctx.dirty_total.clone());
        st.attach_leases(self.ctx.leases.clone());
        self.open.same_generation(attr.ino, attr.generation);
        let file = self.open.first_open(st);
        let fh = self.open.add_handle(attr.ino, file);
        Ok((attr, fh))
    }

    /// What the kernel's CREATE asks (`open` with `O_CREAT`): [`Fs::create`], or, if the
    /// name exists and `flags` lack `O_EXCL`, an open of the file that is there. The
    /// kernel sends CREATE only after a lookup said the name was absent; another mount may
    /// have made it since (a round trip earlier, or, in a directory made here, up to a
    /// TTL earlier: `dir_attrs.rs`), and `open(O_CREAT)` must then open that file, as
    /// it would have had the lookup found it.
    pub async fn create_open(
        &self,
        parent: Ino,
        name: &str,
        perm: u32,
        caller: Caller,
        flags: i32,
    ) -> WireResult<(Attr, u64)> {
        let e = match self.create(parent, name, perm, caller).await {
            Err(e) if e.code == ErrorCode::Exists && flags & libc::O_EXCL == 0 => e,
            r => return r,
        };
        let a = self.lookup(parent, name).await?;
        match a.kind {
            FileKind::File => {}
            FileKind::Dir => {
                return Err(WireError::new(
                    ErrorCode::IsDir,
                    format!("{name:?} is a directory"),
                ))
            }
            // A symlink, FIFO or device made by another mount: the kernel would have
            // followed or opened it; we cannot from here, so say what happened.
            _ => return Err(e),
        }
        // The kernel checked the parent for a create, not this file for an open: check
        // the mode bits as it would (the caller's primary group only: the mount is not
        // told the supplementary ones).
        let wants_write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let wants_read = flags & libc::O_ACCMODE != libc::O_WRONLY;
        let bits = if caller.uid == a.uid {
            a.perm >> 6
        } else if caller.gid == a.gid {
            a.perm >> 3
        } else {
            a.perm
        } & 0o7;
        let allowed =
            caller.uid == 0 || ((!wants_read || bits & 4 != 0) && (!wants_write || bits & 2 != 0));
        if !allowed {
            return Err(WireError::new(
                ErrorCode::Unauthorized,
                format!("{name:?} exists (made by another mount) and may not be opened so"),
            ));
        }
        let (fh, _) = self.open(a.ino).await?;
        if flags & libc::O_TRUNC != 0 && a.size > 0 {
            let set = SetAttrs {
                size: Some(0),
                ..SetAttrs::default()
            };
            let a = self.setattr(a.ino, caller, set).await?;
            return Ok((a, fh));
        }
        Ok((a, fh))
    }

    /// Opens a regular file. Returns the handle and whether the kernel may keep what it
    /// cached of the file (attributes and pages): only if the content has not changed
    /// since this mount last opened it. Otherwise the caller must make the kernel forget
    /// them before the open returns; that is what makes close-to-open hold.
    pub async fn open(&self, ino: Ino) -> WireResult<(u64, bool)> {
        let (file, keep_cache) = match self.open.join_open(ino) {
            // Open here already: its state is the freshest view this mount has.
            Some(f) => (f, true),
            None => {
                // Close-to-open: every first open fetches the committed layout afresh.
                let mut st = FileState::load(&*self.ctx.backend, ino).await?;
                self.shard_size.store(st.shard_size, Ordering::Relaxed);
                st.attach_budget(self.ctx.dirty_total.clone());
                st.attach_leases(self.ctx.leases.clone());
                let keep = self.open.same_generation(ino, st.attr.generation);
                // If another open of the same file won the race, this joins its state.
                (self.open.first_open(st), keep)
            }
        };
        Ok((self.open.add_handle(ino, file), keep_cache))
    }

    fn handle(&self, fh: u64) -> WireResult<Arc<Handle>> {
        self.open.handle(fh)
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> WireResult<Vec<u8>> {
        let h = self.handle(fh)?;
        let sequential = h.reads.observe(offset, size);
        let give_up = tokio::time::Instant::now() + self.holder_wait;
        let mut backoff = Duration::from_millis(50);
        loop {
            let r = self.read_once(&h, offset, size, sequential).await;
            let unheld = match &r {
                Err(e) if e.code == dfs_proto::ErrorCode::Unavailable => {
                    h.file.lock().await.lacks_holders(offset, size)
                }
                _ => false,
            };
            match r {
                // No live node is known to hold a shard of the range: the coordinator
                // restarted and the nodes are registering again. Ask again where the
                // shards are, and retry.
                Err(e) if unheld && tokio::time::Instant::now() + backoff < give_up => {
                    tracing::warn!(
                        "read of {} bytes {offset}..{}: {e}; retrying in {backoff:?}",
                        self.describe(h.ino),
                        offset + u64::from(size)
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let mut st = h.file.lock().await;
                    if let Err(e) = st.refresh_holders(&*self.ctx.backend).await {
                        tracing::warn!("could not refresh the holders of {}: {e}", st.ino);
                    }
                }
                r => {
                    return r.inspect_err(|e| {
                        tracing::error!(
                            "read of {} bytes {offset}..{} failed: {e}",
                            self.describe(h.ino),
                            offset + u64::from(size)
                        );
                    })
                }
            }
        }
    }

    async fn read_once(
        &self,
        h: &Handle,
        offset: u64,
        size: u32,
        sequential: bool,
    ) -> WireResult<Vec<u8>> {
        let (pieces, next) = {
            let mut st = h.file.lock().await;
            let pieces = st.plan_read(offset, size).await?;
            let next = if sequential {
                st.next_shards(offset, READAHEAD_SHARDS)
            } else {
                Vec::new()
            };
            (pieces, next)
        };
        // Readahead: a sequential reader will want the next shards soon; start fetching
        // them now so the network works while the program consumes this one.
        readahead::prefetch(&self.ctx.io, next);
        let whole = sequential || size >= 64 * 1024;
        execute_read(&self.ctx.io, pieces, whole).await
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> WireResult<u32> {
        let h = self.handle(fh)?;
        let mut st = h.file.lock().await;
        st.write(&self.ctx, offset, data, now_ns()).await?;
        Ok(data.len() as u32)
    }

    /// flush (every close) and fsync: make this mount's writes durable and visible.
    pub async fn flush(&self, fh: u64, caller: Caller) -> WireResult<()> {
        let h = self.handle(fh)?;
        let mut st = h.file.lock().await;
        st.commit(&self.ctx, caller).await
    }

    /// fsync: commit (as a close does), then make the file's shards durable on the nodes
    /// (`Sync`) and the commit durable on the coordinator (its log's fsync), in that
    /// order, so that a durable layout never names shards that were not. A close alone
    /// leaves both to the nodes' and the coordinator's own periodic syncs
    /// (docs/SEMANTICS.md).
    pub async fn fsync(&self, fh: u64, caller: Caller) -> WireResult<()> {
        let h = self.handle(fh)?;
        let shards = {
            let mut st = h.file.lock().await;
            st.commit(&self.ctx, caller).await?;
            st.committed_shards()
        };
        self.ctx.io.sync(&shards).await?;
        match self.meta(CoordRequest::Sync).await? {
            dfs_proto::coord_msg::CoordResponse::Unit => Ok(()),
            _ => Err(dfs_proto::WireError::unexpected("Sync")),
        }
    }

    /// The last close of a handle.
    pub async fn release(&self, fh: u64, caller: Caller) -> WireResult<()> {
        let Some(h) = self.open.remove_handle(fh) else {
            return Ok(());
        };
        let mut st = h.file.lock().await;
        // Normally flush already committed; this catches writes through mmap and a flush
        // that failed (the kernel ignores RELEASE's answer, so say in the log what happened).
        let pending = st.has_changes();
        let r = st.commit(&self.ctx, caller).await;
        if pending {
            match &r {
                Ok(()) => tracing::info!(ino = h.ino, "committed at release, after close"),
                Err(e) => tracing::error!(
                    ino = h.ino,
                    "last commit at release failed, the unsaved changes are dropped: {e}"
                ),
            }
        }
        let last = self.open.drop_handle(&h);
        if last && st.unlinked {
            let _ = self.meta(CoordRequest::Release { ino: h.ino }).await;
        }
        r
    }
}
