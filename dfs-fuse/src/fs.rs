//! The filesystem core: every operation the mount supports, as async methods that return
//! `WireResult` and never see a fuser type. `fuse.rs` adapts the kernel's requests onto
//! these; tests call them directly against an in-process cluster.
//!
//! Metadata operations go straight to the coordinator. Regular files opened on this mount
//! get a shared [`FileState`](crate::file::FileState) (one per inode, however many handles), which buffers writes
//! and commits them on flush/fsync: that is close-to-open consistency.

use crate::backend::Backend;
use crate::dir::{self, DirReplier, DirSnapshot, ListedAttrs};
use crate::dir_attrs::OwnDirs;
use crate::file::Ctx;
use crate::handles::{Handles, MAX_SEEN};
use crate::lease::Leases;
use crate::lookup_cache::{self, LookupCache, Watched};
use crate::removals::Deferred;
use crate::shard_io::ShardIo;
use dfs_proto::coord_msg::{
    Attr, Caller, CoordRequest, CoordResponse, DirEntry, FileKind, FsStats, RenameFlags, SetAttrs,
};
use dfs_proto::{Ino, WireError, WireResult};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Tunables of the mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Bytes of whole shards kept in memory for readers.
    pub cache_bytes: usize,
    /// Uploads in flight across the mount (each holds one shard in memory).
    pub upload_slots: usize,
    /// Dirty bytes per file before uploads start ahead of a flush.
    pub max_dirty: usize,
    /// Dirty bytes across all the files of the mount before uploads start.
    pub max_dirty_total: usize,
    /// Deadline of one request to a storage node.
    pub node_deadline: Duration,
    /// How long a read keeps trying when no live node is known to hold a shard (asking
    /// the coordinator again where it is between tries) before it fails with EIO: a
    /// coordinator restart, while the nodes register again, is then a pause, not an
    /// error.
    pub holder_wait: Duration,
    /// How long a directory listing may answer lookups (`lookup_cache`); the mount sets
    /// it to the kernel's attribute TTL, the staleness the kernel allows anyway. Zero
    /// turns the lookup cache off.
    pub lookup_ttl: Duration,
    /// Unlinks answered at once and sent to the coordinator in batches (`removals.rs`);
    /// false sends each one and waits for its answer.
    pub write_behind_removals: bool,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            cache_bytes: 64 << 20,
            upload_slots: 8,
            max_dirty: DEFAULT_MAX_DIRTY,
            max_dirty_total: DEFAULT_MAX_DIRTY,
            node_deadline: Duration::from_millis(1500),
            holder_wait: Duration::from_secs(10),
            lookup_ttl: Duration::from_secs(1),
            write_behind_removals: true,
        }
    }
}

/// Default of both dirty budgets (per file and per mount). Random 4 KiB writes are
/// buffered as sparse patches, and every flush of one costs a read-modify-write of a
/// whole shard; the more patches fit, the more writes each flush absorbs
/// (docs/PERFORMANCE.md, change 5). 128 MiB gave ~1.5x the random-write IOPS of 64 MiB,
/// but put the mount's peak RSS at 263 MiB in the full benchmark, over the target of half
/// of mfsmount's (470 MiB there); 64 MiB keeps the peak near 200 MiB.
pub const DEFAULT_MAX_DIRTY: usize = 64 << 20;

pub struct Fs<B: Backend> {
    /// Its backend is wrapped in `Watched`, so every change marks `lookups` stale; under
    /// it in `OwnDirs`, which answers the `getattr` of a directory this mount just
    /// changed; and under that in `Deferred`, which writes unlinks behind.
    ctx: Ctx<Watched<OwnDirs<Deferred<B>>>>,
    removals: Arc<Deferred<B>>,
    holder_wait: Duration,
    lookups: Arc<LookupCache>,
    /// What is open: files, their handles, directory handles.
    open: Handles,
    /// The last name each inode was looked up or created under, so error logs can say
    /// which file failed (the kernel talks to us in inode numbers only).
    names: Mutex<HashMap<Ino, String>>,
    /// The last directory listing taken, and when: see [`Fs::opendir`].
    last_listing: Mutex<Option<(Arc<DirSnapshot>, std::time::Instant)>>,
    /// The cluster's shard size (fixed when it was created), learnt from the first file
    /// opened; 0 until then.
    shard_size: AtomicU32,
}

pub(crate) fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Most entries of a directory listing kept for the next opendir (see [`Fs::opendir`]).
pub const REUSED_LISTING_MAX: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

macro_rules! expect {
    ($resp:expr, $variant:ident, $what:literal) => {
        match $resp {
            CoordResponse::$variant(v) => Ok(v),
            _ => Err(WireError::unexpected($what)),
        }
    };
}

mod background;
mod files;
mod xattr;

impl<B: Backend> Fs<B> {
    pub fn new(backend: Arc<B>, cfg: FsConfig) -> Fs<B> {
        let lookups = Arc::new(LookupCache::new(cfg.lookup_ttl));
        let removals = Deferred::new(backend, cfg.write_behind_removals);
        let own_dirs = Arc::new(OwnDirs::new(removals.clone(), cfg.lookup_ttl));
        let backend = Arc::new(Watched::new(own_dirs, lookups.clone()));
        Fs {
            removals,
            holder_wait: cfg.holder_wait,
            lookups,
            ctx: Ctx {
                io: Arc::new(ShardIo::new(
                    backend.clone(),
                    cfg.cache_bytes,
                    cfg.node_deadline,
                )),
                backend,
                upload_slots: Arc::new(Semaphore::new(cfg.upload_slots.max(1))),
                max_dirty: cfg.max_dirty,
                dirty_total: Arc::new(AtomicUsize::new(0)),
                leases: Arc::new(Leases::default()),
                max_dirty_total: cfg.max_dirty_total,
            },
            open: Handles::default(),
            names: Mutex::new(HashMap::new()),
            last_listing: Mutex::new(None),
            shard_size: AtomicU32::new(0),
        }
    }

    /// Bytes buffered by this mount's writers and not yet handed to an upload.
    pub fn dirty_bytes(&self) -> usize {
        self.ctx.dirty_total.load(Ordering::Relaxed)
    }

    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        self.ctx.backend.meta(req).await
    }

    /// Overlays local, uncommitted state on attributes from the coordinator.
    ///
    /// `attr` may be older than the file's state: a commit (a release's, say) can finish
    /// between the coordinator's answer and this lock. The content generation tells which
    /// is newer; a stale answer must not roll the size back.
    async fn overlay(&self, attr: Attr) -> Attr {
        let Some(f) = self.open.open_file(attr.ino) else {
            return attr;
        };
        let st = f.lock().await;
        if st.has_changes() {
            let mut a = st.local_attr();
            if attr.generation >= st.attr.generation {
                // Metadata (mode, owner, links) from the fresher answer, unless this
                // mount changed mode or owner itself and the commit has yet to carry it.
                if !st.has_pending_owner_or_mode() {
                    a.perm = attr.perm;
                    a.uid = attr.uid;
                    a.gid = attr.gid;
                }
                a.nlink = attr.nlink;
                a.ctime = a.ctime.max(attr.ctime);
            }
            a
        } else if st.attr.generation > attr.generation {
            st.local_attr()
        } else {
            attr
        }
    }

    // ---- namespace ------------------------------------------------------------------

    pub async fn lookup(&self, parent: Ino, name: &str) -> WireResult<Attr> {
        let now = std::time::Instant::now();
        if let Some(a) = self.lookups.get(parent, name, now) {
            self.remember_name(a.ino, name);
            return Ok(self.overlay(a).await);
        }
        // Counted whether the name exists or not: `stat` of many new names is as much a
        // reason to list the directory as `stat` of many old ones.
        if let Some(generation) = self.lookups.miss(parent, now) {
            tokio::spawn(lookup_cache::prefetch(
                self.ctx.backend.clone(),
                self.lookups.clone(),
                parent,
                generation,
            ));
        }
        let a = expect!(
            self.meta(CoordRequest::Lookup {
                parent,
                name: name.into()
            })
            .await?,
            Attr,
            "Lookup"
        )?;
        self.remember_name(a.ino, name);
        Ok(self.overlay(a).await)
    }

    fn remember_name(&self, ino: Ino, name: &str) {
        let mut names = lock(&self.names);
        if names.len() >= MAX_SEEN {
            names.clear();
        }
        names.insert(ino, name.to_string());
    }

    /// `"name" (inode N)` for logs.
    fn describe(&self, ino: Ino) -> String {
        match lock(&self.names).get(&ino) {
            Some(n) => format!("{n:?} (inode {ino})"),
            None => format!("inode {ino}"),
        }
    }

    pub async fn getattr(&self, ino: Ino) -> WireResult<Attr> {
        // A file this mount created less than a TTL ago and has had open since: its
        // attributes are the create's answer plus what this mount did to it, and another
        // mount can have changed them no longer ago than a cached attribute may be stale.
        // (`tar -x` as root: the kernel asks before each `fchown`, to clear set-user-ID.)
        if let Some(f) = self.open.open_file(ino) {
            let st = f.lock().await;
            let ttl = self.lookups.ttl();
            if st.created_here.is_some_and(|t| t.elapsed() < ttl) && !st.unlinked {
                return Ok(st.local_attr());
            }
        }
        match self.meta(CoordRequest::GetAttr { ino }).await {
            Ok(r) => Ok(self.overlay(expect!(r, Attr, "GetAttr")?).await),
            Err(e) => {
                // An open file whose last name is gone may no longer exist on the
                // coordinator (e.g. replaced by a rename); fstat still works on Linux.
                let file = self.open.open_file(ino);
                match file {
                    Some(f) if e.code == dfs_proto::ErrorCode::NotFound => {
                        Ok(f.lock().await.local_attr())
                    }
                    _ => Err(e),
                }
            }
        }
    }

    pub async fn setattr(&self, ino: Ino, caller: Caller, set: SetAttrs) -> WireResult<Attr> {
        let Some(f) = self.open.open_file(ino) else {
            return expect!(
                self.meta(CoordRequest::SetAttr { ino, caller, set })
                    .await?,
                Attr,
                "SetAttr"
            );
        };
        let mut st = f.lock().await;
        if let Some(a) = st.fold(&set, now_ns()) {
            return Ok(a);
        }
        if st.has_changes() || st.has_pending() {
            // A change that cannot be folded goes after the writes made before it: commit
            // what is buffered first, so that a truncate applies to the newest content
            // and a set-user-ID bit set after writing is not cleared by the commit of
            // those writes.
            st.commit(&self.ctx, caller).await?;
        }
        let a = expect!(
            self.meta(CoordRequest::SetAttr {
                ino,
                caller,
                set: set.clone()
            })
            .await?,
            Attr,
            "SetAttr"
        )?;
        if set.size.is_some() {
            st.reload(&*self.ctx.backend).await?;
            return Ok(a);
        }
        st.attr = a.clone();
        drop(st);
        Ok(self.overlay(a).await)
    }

    pub async fn mknod(
        &self,
        parent: Ino,
        name: &str,
        kind: FileKind,
        perm: u32,
        rdev: u32,
        caller: Caller,
    ) -> WireResult<Attr> {
        let a = expect!(
            self.meta(CoordRequest::Create {
                parent,
                name: name.into(),
                kind,
                perm: perm & 0o7777,
                rdev,
                caller
            })
            .await?,
            Attr,
            "Create"
        )?;
        self.remember_name(a.ino, name);
        // A new inode has no extended attributes, and the kernel asks for one
        // (`security.capability`, to strip it) before every write: answering that here
        // saves a round trip per small file written. The memory lasts until the next
        // change through this mount or the TTL, like one learnt from a listing.
        self.lookups
            .listed_bare(a.ino, self.lookups.generation(), std::time::Instant::now());
        Ok(a)
    }

    pub async fn symlink(
        &self,
        parent: Ino,
        name: &str,
        target: &str,
        caller: Caller,
    ) -> WireResult<Attr> {
        expect!(
            self.meta(CoordRequest::Symlink {
                parent,
                name: name.into(),
                target: target.into(),
                caller
            })
            .await?,
            Attr,
            "Symlink"
        )
    }

    pub async fn readlink(&self, ino: Ino) -> WireResult<String> {
        expect!(
            self.meta(CoordRequest::Readlink { ino }).await?,
            Target,
            "Readlink"
        )
    }

    pub async fn link(&self, ino: Ino, new_parent: Ino, new_name: &str) -> WireResult<Attr> {
        let a = expect!(
            self.meta(CoordRequest::Link {
                ino,
                new_parent,
                new_name: new_name.into()
            })
            .await?,
            Attr,
            "Link"
        )?;
        if let Some(f) = self.open.open_file(ino) {
            // Its link count and ctime changed: ask the coordinator from now on.
            f.lock().await.created_here = None;
        }
        Ok(self.overlay(a).await)
    }

    pub async fn unlink(&self, parent: Ino, name: &str) -> WireResult<()> {
        // If the file is open here, ask the coordinator to keep the inode until our last
        // close: an open file stays readable after its last name is removed. Finding out
        // costs a lookup, which `rm -r` of a tree (nothing open) need not pay.
        let nothing_open = self.open.no_open_files();
        let target = if nothing_open {
            None
        } else {
            match self
                .meta(CoordRequest::Lookup {
                    parent,
                    name: name.into(),
                })
                .await
            {
                Ok(CoordResponse::Attr(a)) => Some(a.ino),
                _ => None,
            }
        };
        let open = target.and_then(|ino| self.open.open_file(ino));
        let keep = open.is_some();
        self.meta(CoordRequest::Unlink {
            parent,
            name: name.into(),
            keep,
        })
        .await?;
        if let Some(f) = open {
            let mut st = f.lock().await;
            st.created_here = None;
            if let Ok(CoordResponse::Attr(a)) =
                self.meta(CoordRequest::GetAttr { ino: st.ino }).await
            {
                st.unlinked = a.nlink == 0;
                st.attr.nlink = a.nlink;
            }
        }
        Ok(())
    }

    pub async fn rmdir(&self, parent: Ino, name: &str) -> WireResult<()> {
        self.meta(CoordRequest::Rmdir {
            parent,
            name: name.into(),
        })
        .await
        .map(drop)
    }

    pub async fn rename(
        &self,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> WireResult<()> {
        self.meta(CoordRequest::Rename {
            parent,
            name: name.into(),
            new_parent,
            new_name: new_name.into(),
            flags,
        })
        .await
        .map(drop)
    }

    pub async fn statfs(&self) -> WireResult<FsStats> {
        expect!(self.meta(CoordRequest::StatFs).await?, FsStats, "StatFs")
    }

    /// Unlinks acknowledged to programs and not yet answered by the coordinator, and
    /// those it refused after that (`removals.rs`).
    pub fn removals(&self) -> (u64, u64) {
        (self.removals.pending(), self.removals.refused())
    }

    /// fsyncdir: the coordinator makes namespace changes durable a fraction of a second
    /// after acknowledging them; this makes every change so far durable now (the `Sync`
    /// request first sends the unlinks written behind, as every request does).
    pub async fn sync_namespace(&self) -> WireResult<()> {
        match self.meta(CoordRequest::Sync).await? {
            CoordResponse::Unit => Ok(()),
            _ => Err(WireError::unexpected("Sync")),
        }
    }

    // ---- directories ----------------------------------------------------------------

    /// Takes a snapshot of the directory (see `dir.rs`) and returns its handle.
    ///
    /// `rm -r` opens every directory twice in a row (GNU fts reads it once to size it up,
    /// closes it, then opens it again to walk it), so the last listing is reused by the
    /// next opendir of the same directory if it is less than a TTL old and nothing
    /// changed through this mount since it was fetched: the staleness lookups from a
    /// listing already allow (SEMANTICS.md). Only a listing of at most
    /// [`REUSED_LISTING_MAX`] entries is kept after its handle closes.
    pub async fn opendir(&self, ino: Ino) -> WireResult<u64> {
        let generation = self.lookups.generation();
        let ttl = self.lookups.ttl();
        let reuse = lock(&self.last_listing)
            .as_ref()
            .filter(|(snap, at)| {
                snap.ino == ino && snap.generation == generation && at.elapsed() < ttl
            })
            .map(|(snap, _)| snap.clone());
        if let Some(snap) = reuse {
            return Ok(self.open.add_dir(snap));
        }
        let fetched = std::time::Instant::now();
        let snap = Arc::new(DirSnapshot::fetch(&*self.ctx.backend, ino, generation).await?);
        if snap.entries.len() <= REUSED_LISTING_MAX && !ttl.is_zero() {
            *lock(&self.last_listing) = Some((snap.clone(), fetched));
        }
        Ok(self.open.add_dir(snap))
    }

    pub fn dir(&self, fh: u64) -> WireResult<Arc<DirSnapshot>> {
        self.open.dir(fh)
    }

    /// readdir (`attrs` false) and readdirplus (`attrs` true): adds the entries of `snap`
    /// from position `offset` on to `out` until it is full (see `dir.rs`).
    pub async fn readdir<R: DirReplier>(
        &self,
        snap: &DirSnapshot,
        offset: u64,
        attrs: bool,
        out: &mut R,
    ) {
        if attrs {
            dir::fill(snap, offset, out, Some(self)).await
        } else {
            dir::fill::<R, Self>(snap, offset, out, None).await
        }
    }

    /// The attributes `lookup` would give for a listed entry: the listing's, with this
    /// mount's uncommitted writes overlaid (for readdirplus).
    /// Also notes whether it has extended attributes, so that the `getxattr` calls of
    /// `ls -l` that follow need no round trip when it has none.
    pub async fn listed_attr(&self, snap: &DirSnapshot, entry: &DirEntry) -> Attr {
        if !entry.xattrs {
            let now = std::time::Instant::now();
            self.lookups
                .listed_bare(entry.attr.ino, snap.generation, now);
        }
        self.overlay(entry.attr.clone()).await
    }

    pub fn releasedir(&self, fh: u64) {
        self.open.remove_dir(fh);
    }
}

impl<B: Backend> ListedAttrs for Fs<B> {
    fn listed_attr(
        &self,
        snap: &DirSnapshot,
        entry: &DirEntry,
    ) -> impl Future<Output = Attr> + Send {
        Fs::listed_attr(self, snap, entry)
    }
}
