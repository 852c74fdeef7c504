//! The node's shards on local disk: where their files live in the data directory, how a
//! shard is written durably, read back verified, deleted and listed, and how much space
//! the shards take against the node's capacity.
//!
//! # Data directory
//!
//! ```text
//! DATA/
//!   node.id              this node's identity: 16 hex digits, created on first start
//!   lock                 flock()ed while a dfs-node process uses the directory
//!   tmp/                 shards being written; anything found here at start is a leftover
//!                        of a crash mid-write and is removed
//!   shards/aa/bb/<id>    one file per shard, named by the 64 hex digits of its SHA-256;
//!                        aa and bb are the first two pairs of those digits
//! ```
//!
//! Shards are content-addressed: the name is the hash of the content, so the same bytes
//! are stored once, a put can be repeated safely, and any copy can be checked by hashing
//! it. The two fan-out levels (256 x 256 directories) keep each directory small (a million
//! shards means about 15 per directory), so lookups stay fast on any filesystem.
//!
//! The format of each file (header, per-block checksums, data) is in [`crate::shard_file`].
//!
//! All methods do blocking file I/O: async callers run them in `spawn_blocking`.

use crate::fanout::FanoutDirs;
use crate::shard_file::{self, Header, HEADER_LEN};
use anyhow::Context;
use dfs_ops::durable;
use dfs_proto::node_msg::{ByteRange, NodeStats};
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult, MAX_SHARD_SIZE};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tracing::warn;

/// The shards of one data directory.
pub struct ShardStore {
    root: PathBuf,
    shards_dir: PathBuf,
    tmp_dir: PathBuf,
    node: NodeId,
    /// Configured capacity in bytes; `None` means "what the filesystem has, minus reserve".
    limit: Option<u64>,
    reserve: u64,
    space: Mutex<Space>,
    /// Makes temporary file names unique among concurrent puts of the same shard.
    tmp_seq: AtomicU64,
    /// Holds the directory's flock for as long as the store is open; also the handle
    /// `syncfs` is called on.
    lock: File,
    /// fsync every shard before a put is acknowledged (`--durable-close`). Otherwise a put
    /// is acknowledged once written and renamed into place, and made durable by [`sync`]
    /// (a client's fsync, or the node's own timer).
    ///
    /// [`sync`]: ShardStore::sync
    durable_puts: bool,
    /// Puts installed so far, and how many of them a finished `syncfs` covers: `sync` has
    /// work only when they differ.
    installed: AtomicU64,
    synced: AtomicU64,
    /// One `syncfs` at a time; whoever waited for one finds its puts covered.
    syncing: Mutex<()>,
    /// The `aa/bb` directories known to exist (fanout.rs).
    fanout: FanoutDirs,
}

/// Space accounting. One mutex guards it *and* every change to the set of shard files
/// (rename into place, unlink), so the counters always agree with the directory and two
/// concurrent puts cannot both be promised the last free bytes.
#[derive(Debug, Default)]
struct Space {
    /// Sum of the sizes of the shard files.
    used: u64,
    shards: u64,
    /// Bytes promised to puts that are still writing.
    reserved: u64,
}

impl ShardStore {
    /// Opens (creating if needed) the data directory `root`. `limit` caps the bytes shards
    /// may take; without it the node uses the filesystem's free space minus `reserve`.
    pub fn open(root: &Path, limit: Option<u64>, reserve: u64) -> anyhow::Result<ShardStore> {
        dfs_ops::durable::create_private_dir(root)?;
        let lock = lock_dir(root)?;
        let shards_dir = durable::create_dir(root, "shards")
            .with_context(|| format!("create {}/shards", root.display()))?;
        let tmp_dir = durable::create_dir(root, "tmp")
            .with_context(|| format!("create {}/tmp", root.display()))?;
        clean_tmp(&tmp_dir).with_context(|| format!("clean {}", tmp_dir.display()))?;
        let node = load_or_create_node_id(root)?;
        let store = ShardStore {
            root: root.to_path_buf(),
            shards_dir: shards_dir.clone(),
            tmp_dir,
            node,
            limit,
            reserve,
            space: Mutex::new(Space::default()),
            tmp_seq: AtomicU64::new(0),
            lock,
            durable_puts: false,
            installed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            syncing: Mutex::new(()),
            fanout: FanoutDirs::new(&shards_dir, false),
        };
        // The counters live in memory only; the directory is the truth, so rebuild them.
        let found = store
            .scan()
            .with_context(|| format!("scan {}", store.shards_dir.display()))?;
        {
            let mut space = store.space();
            space.shards = found.len() as u64;
            space.used = found.iter().map(|(_, len)| len).sum();
        }
        Ok(store)
    }

    /// Whether every put is fsynced before it is acknowledged.
    pub fn durable_puts(&self) -> bool {
        self.durable_puts
    }

    /// fsync every shard before acknowledging its put (`--durable-close`), as before the
    /// durability contract of docs/SEMANTICS.md made that optional.
    pub fn with_durable_puts(mut self, on: bool) -> ShardStore {
        self.durable_puts = on;
        self.fanout.set_durable(on);
        self
    }

    /// Makes every shard installed so far durable: one `syncfs(2)` of the data
    /// directory's filesystem, shared by everyone waiting (a node's disk holds its shards
    /// and little else, so syncing the filesystem costs what syncing each shard file and
    /// directory would, in one call). Returns at once when nothing was installed since.
    pub fn sync(&self) -> WireResult<()> {
        let want = self.installed.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let _one = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if self.synced.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let upto = self.installed.load(Ordering::Acquire);
        // SAFETY: syncfs only reads the descriptor, which `self.lock` keeps open.
        let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&self.lock)) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(WireError::internal(format!(
                "sync {}: {e}",
                self.root.display()
            )));
        }
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// `Sync` from a client: the listed shards this node holds are durable when it
    /// returns; the answer names those it does not hold (so the client does not count
    /// this node as a durable copy of them).
    pub fn sync_shards(&self, ids: &[ShardId]) -> WireResult<Vec<ShardId>> {
        let missing = ids
            .iter()
            .filter(|id| !self.shard_path(**id).exists())
            .copied()
            .collect();
        self.sync()?;
        Ok(missing)
    }

    /// This node's identity, from `DATA/node.id`.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `data` as shard `id`: in place and readable on return, durable once
    /// [`ShardStore::sync`] has run (at once with `--durable-close`).
    pub fn put(&self, id: ShardId, data: &[u8]) -> WireResult<()> {
        if data.len() > MAX_SHARD_SIZE as usize {
            return Err(WireError::invalid(format!(
                "shard of {} bytes exceeds the limit of {MAX_SHARD_SIZE}",
                data.len()
            )));
        }
        // Check the content against its name before anything touches the disk: a shard
        // stored under the wrong name would be served as valid forever after. The same
        // pass over the bytes computes the block checksums of the file (shard_file.rs).
        let (prefix, hashed) = shard_file::encode(data);
        if hashed != id {
            return Err(WireError::corrupt(format!(
                "shard {id}: content does not match its id"
            )));
        }
        // Already here? Then the put is done, as long as our copy is intact. A damaged copy
        // is replaced: that is exactly how a re-replication repairs this node. Comparing
        // our copy with the bytes just verified against the ID is as strong as hashing it,
        // and much cheaper.
        match self.read_with(id, None, Verify::Blocks) {
            Ok(ours) if ours == data => return Ok(()),
            Ok(_) => {
                warn!(shard = %id, "replacing damaged copy ({}) with the bytes being put", Defect::Content);
            }
            Err(ReadError::Failed(e)) if e.code == ErrorCode::NotFound => {}
            Err(ReadError::Corrupt(c)) => {
                warn!(shard = %id, "replacing damaged copy ({}) with the bytes being put", c.defect);
            }
            Err(ReadError::Failed(e)) => return Err(e),
        }

        let file_len = (prefix.len() + data.len()) as u64;
        let mut reservation = self.reserve(id, file_len)?;

        // 1. Write into tmp/, never in place: a crash mid-write then leaves a partial file
        //    only in tmp/ (cleaned at the next start), never under a valid shard name.
        // 2. With --durable-close, fsync it, so the bytes are on disk before any name
        //    points at them. Otherwise a power loss before the next sync may leave the
        //    name with a short or empty file: the shard file's own checksums then mark
        //    that copy damaged (never served), and repair replaces it.
        let tmp = self
            .write_tmp(id, &prefix, data)
            .map_err(|e| io_failure("write", id, e))?;
        self.fanout
            .ensure(id.0[0], id.0[1])
            .map_err(|e| io_failure("create directory for", id, e))?;
        let path = self.shard_path(id);
        {
            let mut space = self.space();
            let old = match fs::metadata(&path) {
                Ok(m) => Some(m.len()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_failure("stat", id, e)),
            };
            // 3. rename into place: atomic, so readers see no file or the whole file. Over
            //    an existing copy (damaged, or put concurrently) it is a harmless swap of
            //    identical content. No such directory means it was removed behind the
            //    store's back since it was remembered: make it again, once.
            let installed = match fs::rename(&tmp.path, &path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && tmp.path.exists() => {
                    self.fanout.forget(id.0[0], id.0[1]);
                    self.fanout
                        .ensure(id.0[0], id.0[1])
                        .and_then(|()| fs::rename(&tmp.path, &path))
                }
                other => other,
            };
            installed.map_err(|e| io_failure("install", id, e))?;
            tmp.keep();
            space.used = space.used.saturating_sub(old.unwrap_or(0)) + file_len;
            if old.is_none() {
                space.shards += 1;
            }
            space.reserved = space.reserved.saturating_sub(reservation.take());
        }
        // 4. With --durable-close, fsync the directory so the rename itself survives a
        //    power cut before the writer is told the shard is stored.
        if self.durable_puts {
            let dir = path.parent().unwrap_or(&self.shards_dir);
            durable::fsync_dir(dir).map_err(|e| io_failure("sync directory of", id, e))?;
        }
        self.installed.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Reads a whole shard (`None`) or a byte range of it, verified. Damage is reported as
    /// a `Corrupt` wire error; callers that act on damage use [`ShardStore::read`].
    pub fn get(&self, id: ShardId, range: Option<ByteRange>) -> WireResult<Vec<u8>> {
        self.read(id, range).map_err(WireError::from)
    }

    /// Like [`ShardStore::get`], but says exactly what is damaged, and in which file, so the
    /// caller can drop that copy with [`ShardStore::discard`]. A whole read is checked
    /// fully ([`Verify::Content`]).
    pub fn read(&self, id: ShardId, range: Option<ByteRange>) -> Result<Vec<u8>, ReadError> {
        self.read_with(id, range, Verify::Content)
    }

    /// [`ShardStore::read`] with a choice of how far a whole read is checked. A range read
    /// is always checked against the block checksums of the blocks it covers.
    pub fn read_with(
        &self,
        id: ShardId,
        range: Option<ByteRange>,
        verify: Verify,
    ) -> Result<Vec<u8>, ReadError> {
        let file = File::open(self.shard_path(id)).map_err(|e| io_failure("open", id, e))?;
        let meta = file.metadata().map_err(|e| io_failure("stat", id, e))?;
        let file_key = (meta.dev(), meta.ino());
        let found = |fault: Fault| match fault {
            Fault::Defect(defect) => ReadError::Corrupt(Corruption {
                id,
                defect,
                file_key,
            }),
            Fault::Failed(e) => ReadError::Failed(e),
        };
        let file_len = meta.len();
        let mut head = [0u8; HEADER_LEN];
        let head_len = HEADER_LEN.min(usize::try_from(file_len).unwrap_or(HEADER_LEN));
        read_at(&file, &mut head[..head_len], 0, id).map_err(found)?;
        let header = Header::parse(&head[..head_len], file_len)
            .map_err(|m| found(Fault::Defect(Defect::Layout(m))))?;
        match range {
            None => self.read_whole(&file, id, header, verify),
            Some(r) => self.read_range(&file, id, header, r),
        }
        .map_err(found)
    }

    /// Every block checked against its checksum, then (with [`Verify::Content`]) the whole
    /// content against its id: the checksums could have been damaged together with the
    /// data they cover, the id cannot.
    fn read_whole(
        &self,
        file: &File,
        id: ShardId,
        h: Header,
        verify: Verify,
    ) -> Result<Vec<u8>, Fault> {
        // Sizes come from a header already checked against the file size and the shard cap.
        let mut sums = vec![0u8; h.blocks() as usize * h.sum.size()];
        read_at(file, &mut sums, h.sum_offset(0), id)?;
        let mut data = vec![0u8; h.data_len as usize];
        read_at(file, &mut data, h.data_offset(), id)?;
        if let Err(b) = shard_file::verify_blocks(h.sum, &sums, &data, 0) {
            return Err(Fault::Defect(Defect::Block(b)));
        }
        if verify == Verify::Content && !id.matches(&data) {
            return Err(Fault::Defect(Defect::Content));
        }
        Ok(data)
    }

    /// Reads only the blocks covering `r` and their checksums.
    fn read_range(
        &self,
        file: &File,
        id: ShardId,
        h: Header,
        r: ByteRange,
    ) -> Result<Vec<u8>, Fault> {
        let (offset, len) = (u64::from(r.offset), u64::from(r.len));
        let end = offset + len;
        if end > u64::from(h.data_len) {
            return Err(Fault::Failed(WireError::invalid(format!(
                "range {offset}+{len} is beyond the {} bytes of shard {id}",
                h.data_len
            ))));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let bs = u64::from(shard_file::BLOCK_SIZE);
        let (first, last) = (offset / bs, (end - 1) / bs);
        let mut sums = vec![0u8; ((last - first + 1) as usize) * h.sum.size()];
        read_at(file, &mut sums, h.sum_offset(first), id)?;
        let span_start = first * bs;
        let span_end = ((last + 1) * bs).min(u64::from(h.data_len));
        let mut blocks = vec![0u8; (span_end - span_start) as usize];
        read_at(file, &mut blocks, h.data_offset() + span_start, id)?;
        if let Err(b) = shard_file::verify_blocks(h.sum, &sums, &blocks, first) {
            return Err(Fault::Defect(Defect::Block(b)));
        }
        // Keep only the requested bytes (in place: no second allocation).
        let lo = (offset - span_start) as usize;
        blocks.truncate(lo + len as usize);
        blocks.drain(..lo);
        Ok(blocks)
    }

    /// Removes a shard.
    pub fn delete(&self, id: ShardId) -> WireResult<()> {
        let path = self.shard_path(id);
        let mut space = self.space();
        let len = fs::metadata(&path)
            .map_err(|e| io_failure("stat", id, e))?
            .len();
        fs::remove_file(&path).map_err(|e| io_failure("delete", id, e))?;
        space.used = space.used.saturating_sub(len);
        space.shards = space.shards.saturating_sub(1);
        // No directory fsync: if a crash brings the file back, the node lists it in its
        // next inventory and the coordinator, which no longer wants it, deletes it again.
        Ok(())
    }

    /// Removes the damaged copy `c` found, so it no longer counts as a copy and a repair
    /// can put a good one in its place. Returns whether a file was removed.
    ///
    /// Only *that* file is removed: between the failed read and now, a put (a repair, or a
    /// client writing the same bytes) may have renamed a good copy over it, and deleting
    /// that would destroy the very repair. The file's device and inode number tell the two
    /// apart, checked under the same lock that every rename into place takes.
    pub fn discard(&self, c: &Corruption) -> WireResult<bool> {
        let path = self.shard_path(c.id);
        let mut space = self.space();
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            // Someone else (a concurrent read or the scrubber) already dropped it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_failure("stat", c.id, e)),
        };
        if (meta.dev(), meta.ino()) != c.file_key {
            return Ok(false);
        }
        fs::remove_file(&path).map_err(|e| io_failure("delete", c.id, e))?;
        space.used = space.used.saturating_sub(meta.len());
        space.shards = space.shards.saturating_sub(1);
        Ok(true)
    }

    /// IDs of all stored shards, from a directory scan.
    pub fn list(&self) -> io::Result<Vec<ShardId>> {
        Ok(self.scan()?.into_iter().map(|(id, _)| id).collect())
    }

    /// Capacity, usage and shard count.
    pub fn stats(&self) -> NodeStats {
        let space = self.space();
        let capacity = self.capacity(space.used);
        NodeStats {
            capacity,
            used: space.used,
            free: capacity.saturating_sub(space.used),
            shards: space.shards,
        }
    }

    /// The only place a shard's path is built (see [`relative_path`]).
    fn shard_path(&self, id: ShardId) -> PathBuf {
        self.shards_dir.join(relative_path(id))
    }

    fn write_tmp(&self, id: ShardId, prefix: &[u8], data: &[u8]) -> io::Result<TmpFile> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp_dir.join(format!("{}.{seq}", id.to_hex()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let tmp = TmpFile { path, keep: false };
        f.write_all(prefix)?;
        f.write_all(data)?;
        if self.durable_puts {
            f.sync_all()?;
        }
        Ok(tmp)
    }

    /// Promises `bytes` to a put, or refuses with `NoSpace`. Checking and reserving under
    /// one lock is what keeps concurrent puts from together exceeding the capacity.
    fn reserve(&self, id: ShardId, bytes: u64) -> WireResult<Reservation<'_>> {
        let mut space = self.space();
        let capacity = self.capacity(space.used);
        let free = capacity
            .saturating_sub(space.used)
            .saturating_sub(space.reserved);
        if bytes > free {
            return Err(WireError::no_space(format!(
                "shard {id} needs {bytes} bytes, {free} of {capacity} are free"
            )));
        }
        space.reserved += bytes;
        Ok(Reservation { store: self, bytes })
    }

    fn capacity(&self, used: u64) -> u64 {
        match self.limit {
            Some(limit) => limit,
            None => {
                // Shards may grow into what the filesystem has left, minus a reserve kept
                // for everything else on the disk (logs, the OS, other programs).
                let avail = fs_available(&self.root).unwrap_or_else(|e| {
                    // Counting the disk as full is the safe way to be wrong.
                    warn!("failed to read free space of {}: {e}", self.root.display());
                    0
                });
                used + avail.saturating_sub(self.reserve)
            }
        }
    }

    fn space(&self) -> MutexGuard<'_, Space> {
        // The counters stay consistent even if a thread panicked holding the lock: each
        // update is a few assignments with nothing that can panic in between.
        self.space.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// All shard files with their sizes. Files whose names are not valid shard IDs (or
    /// that sit in the wrong fan-out directory) are skipped and logged, never guessed at.
    fn scan(&self) -> io::Result<Vec<(ShardId, u64)>> {
        let mut out = Vec::new();
        for a in fs::read_dir(&self.shards_dir)? {
            let a = a?;
            if !a.file_type()?.is_dir() {
                warn!("ignoring unexpected file {}", a.path().display());
                continue;
            }
            for b in fs::read_dir(a.path())? {
                let b = b?;
                if !b.file_type()?.is_dir() {
                    warn!("ignoring unexpected file {}", b.path().display());
                    continue;
                }
                for f in fs::read_dir(b.path())? {
                    let f = f?;
                    let id = f.file_name().to_str().and_then(ShardId::from_hex);
                    let Some(id) = id.filter(|id| self.shard_path(*id) == f.path()) else {
                        warn!("ignoring unexpected file {}", f.path().display());
                        continue;
                    };
                    match f.metadata() {
                        Ok(m) if m.is_file() => out.push((id, m.len())),
                        Ok(_) => warn!("ignoring non-file {}", f.path().display()),
                        // Deleted between the listing and the stat: simply no longer here.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Space promised to an in-flight put; handed back when dropped unless the put consumed it.
struct Reservation<'a> {
    store: &'a ShardStore,
    bytes: u64,
}

impl Reservation<'_> {
    fn take(&mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut space = self.store.space();
            space.reserved = space.reserved.saturating_sub(self.bytes);
        }
    }
}

/// A file in `tmp/`, removed when dropped unless it was renamed into place: a failed put
/// leaves nothing behind.
struct TmpFile {
    path: PathBuf,
    keep: bool,
}

impl TmpFile {
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// How far a whole-shard read is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Every block against its checksum: catches what a disk does to a file (flipped bits,
    /// torn or lost writes). Enough for a caller that checks the SHA-256 of what it gets
    /// anyway, as a client and a replicating node do with a whole shard, so the node does
    /// not hash the megabyte a second time for them.
    Blocks,
    /// The blocks, then the SHA-256 of the whole content against the ID: also catches a
    /// file whose checksums were rewritten together with its data (a bug, a file copied
    /// under the wrong name). The scrubber checks this way.
    Content,
}

/// A read's failure before it is tied to the file it happened in.
enum Fault {
    Defect(Defect),
    Failed(WireError),
}

impl From<WireError> for Fault {
    fn from(e: WireError) -> Self {
        Fault::Failed(e)
    }
}

fn read_at(file: &File, buf: &mut [u8], offset: u64, id: ShardId) -> Result<(), Fault> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // The file is shorter than its (already checked) header said: it shrank.
            Fault::Defect(Defect::Layout("file ends early".into()))
        } else {
            Fault::Failed(io_failure("read", id, e))
        }
    })
}

fn io_failure(verb: &str, id: ShardId, e: io::Error) -> WireError {
    if e.kind() == io::ErrorKind::NotFound {
        WireError::not_found(format!("shard {id} is not on this node"))
    } else {
        WireError::internal(format!("failed to {verb} shard {id}: {e}"))
    }
}

/// Where shard `id` lives below `shards/`: `aa/bb/aabb…` (64 hex digits). Built only from
/// the hex form: a shard ID comes from the network, and hex digits cannot name anything
/// outside `shards/` (no `/`, no `..`). The fuzz target `shard_path` checks exactly that.
pub fn relative_path(id: ShardId) -> PathBuf {
    let hex = id.to_hex();
    PathBuf::from(&hex[0..2]).join(&hex[2..4]).join(hex)
}

mod data_dir;
mod defect;

use data_dir::{clean_tmp, fs_available, load_or_create_node_id, lock_dir};
pub use defect::{Corruption, Defect, ReadError};

#[cfg(test)]
mod tests;
