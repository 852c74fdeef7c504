//! The write-ahead log: what makes an acknowledged change survive a crash without an fsync
//! per change.
//!
//! Why a log, when redb already has transactions? A durable redb commit costs two fsyncs
//! (~3 ms each on the benchmark machine), and a non-durable one (`Durability::None`) lives
//! only in this process's memory: a `kill -9` loses it. Every database solves this the same
//! way (PostgreSQL's WAL, SQLite's WAL mode, etcd's raft log): before a change is
//! acknowledged, append a description of it to a log file with one `write()`. The bytes
//! are then in the kernel's page cache, which survives the death of the process; only a
//! power loss or a kernel crash can lose them, and those are what the log's fsync is for.
//! The fsync is shared: a background thread makes the log durable every
//! [`GROUP_SYNC_INTERVAL`], and a client's `fsync` waits for the next one instead of
//! paying its own (one fsync serves every change waiting for it: group commit).
//!
//! A record is *physical*: the table entries the transaction wrote or removed, with their
//! bytes as stored ([`Op`]). Replaying one repeats exactly what the transaction did
//! without running any of the logic (clocks, inode numbers, placement) that decided it.
//!
//! The log is emptied at a *checkpoint* (`Store::checkpoint`): one durable redb commit
//! that records the last log sequence number (LSN) it covers, then a truncate. At start,
//! records up to that LSN are skipped and the rest are applied in order. Records carry
//! their LSN and a CRC, so a torn tail (a record half written when the power went) or
//! stale bytes from before a truncate that did not reach the disk end the replay instead
//! of being applied.
//!
//! Frame: `len: u32 LE` (payload bytes) · `crc: u32 LE` (CRC-32 of the LSN and the
//! payload) · `lsn: u64 LE` · payload (postcard `Vec<Op>`).

use dfs_proto::{Ino, WireError, WireResult};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// The longest an acknowledged change stays only in the page cache: a power loss can lose
/// at most this much (plus the fsync's own duration) of changes nobody fsynced.
pub(crate) const GROUP_SYNC_INTERVAL: Duration = Duration::from_millis(5);

/// Largest payload accepted when reading the log back: a commit of a file of a few
/// hundred thousand shards. Checked before allocating anything.
const MAX_RECORD: usize = 256 << 20;

const HEADER: usize = 16;

/// One change to one table, with the bytes as stored. The variants are the write accessors
/// of `Tables`. Postcard encodes a variant by its position: add new ones at the end only,
/// or logs written by an older coordinator would be misread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op {
    PutInode(Ino, Vec<u8>),
    RemoveInode(Ino),
    PutDirent(Ino, String, Vec<u8>),
    RemoveDirent(Ino, String),
    PutLayout(Ino, u64, [u8; 32], u32),
    RemoveLayout(Ino, u64),
    PutShard([u8; 32], Vec<u8>),
    RemoveShard([u8; 32]),
    PutXattr(Ino, String, Vec<u8>),
    RemoveXattr(Ino, String),
    PutNode(u64, String),
    RemoveNode(u64),
    PutNodeAdmin(u64, Vec<u8>),
    SetOrphan(Ino, bool),
    PutMeta(String, Vec<u8>),
}

/// Where the log's bytes go. A file in production; tests use a device that forgets what
/// was not synced when it "loses power" (`store/power_loss.rs`).
pub(crate) trait LogDevice: Send + Sync + 'static {
    /// Appends at the end, with one `write()` (no fsync).
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Empties the log.
    fn truncate(&self) -> io::Result<()>;
    /// The whole log.
    fn read_all(&self) -> io::Result<Vec<u8>>;
}

/// The log in a file, opened for appending.
pub(crate) struct FileLog {
    file: File,
}

impl FileLog {
    pub fn open(path: &Path) -> anyhow::Result<FileLog> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("open metadata log {}: {e}", path.display()))?;
        if !existed {
            // The log's name must survive a power loss as much as its records do.
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                dfs_ops::durable::fsync_dir(dir)?;
            }
        }
        Ok(FileLog { file })
    }
}

impl LogDevice for FileLog {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&self.file).write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&self) -> io::Result<()> {
        // O_APPEND: the next write lands at the new end, offset 0.
        self.file.set_len(0)
    }
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = self.file.metadata()?.len();
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(64 << 20));
        let mut f = &self.file;
        io::Seek::seek(&mut f, io::SeekFrom::Start(0))?;
        f.read_to_end(&mut out)?;
        Ok(out)
    }
}

struct Tail {
    /// LSN of the last record appended (or of the checkpoint, if none since).
    lsn: u64,
    /// Bytes in the log since the last checkpoint.
    bytes: u64,
    /// Set when an append failed: the log may end in a partial record, after which
    /// nothing may be appended (replay stops at it, so later records would be lost).
    failed: bool,
}

/// The open log: appends, group fsyncs, checkpoints.
pub(crate) struct Wal {
    dev: Box<dyn LogDevice>,
    tail: Mutex<Tail>,
    /// Held while an fsync runs, so that whoever waits for one finds its record covered
    /// by it instead of starting another.
    syncing: Mutex<()>,
    /// Last LSN appended, and last LSN known durable.
    written: AtomicU64,
    synced: AtomicU64,
    /// Wakes the group-sync thread when there is something to sync.
    pending: Mutex<bool>,
    wake: Condvar,
}

fn io_err(what: &str, e: io::Error) -> WireError {
    WireError::internal(format!("metadata log: {what}: {e}"))
}

impl Wal {
    /// Wraps a device whose records up to `lsn` are all applied and durable, and starts
    /// the group-sync thread (which ends when the `Wal` is dropped).
    pub fn start(dev: Box<dyn LogDevice>, lsn: u64) -> Arc<Wal> {
        let wal = Arc::new(Wal {
            dev,
            tail: Mutex::new(Tail {
                lsn,
                bytes: 0,
                failed: false,
            }),
            syncing: Mutex::new(()),
            written: AtomicU64::new(lsn),
            synced: AtomicU64::new(lsn),
            pending: Mutex::new(false),
            wake: Condvar::new(),
        });
        let weak = Arc::downgrade(&wal);
        let spawned = std::thread::Builder::new()
            .name("dfs-wal-sync".into())
            .spawn(move || group_sync_loop(weak));
        if let Err(e) = spawned {
            // Without the thread, changes are still logged and made durable by `sync`,
            // by checkpoints and at shutdown; only the bound on a power loss is gone.
            tracing::error!("cannot start the metadata log's sync thread: {e}");
        }
        wal
    }

    /// Appends one transaction's changes; returns its LSN. On return the record is in
    /// the page cache: a crash of this process no longer loses it.
    pub fn append(&self, ops: &[Op]) -> WireResult<u64> {
        let payload = postcard::to_stdvec(ops)
            .map_err(|e| WireError::internal(format!("encode log record: {e}")))?;
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.failed {
            return Err(WireError::internal(
                "metadata log: an earlier write failed; restart the coordinator",
            ));
        }
        let lsn = tail.lsn + 1;
        let frame = frame(lsn, &payload);
        if let Err(e) = self.dev.append(&frame) {
            tail.failed = true;
            return Err(io_err("append", e));
        }
        tail.lsn = lsn;
        tail.bytes += frame.len() as u64;
        self.written.store(lsn, Ordering::Release);
        drop(tail);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *p = true;
        self.wake.notify_one();
        Ok(lsn)
    }

    /// Returns once the record `lsn` is durable: at once if it already is; otherwise
    /// after an fsync, which covers every record appended before it began.
    pub fn sync_to(&self, lsn: u64) -> WireResult<()> {
        if self.synced.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if self.synced.load(Ordering::Acquire) >= lsn {
            return Ok(()); // the fsync we waited for covered it
        }
        let upto = self.written.load(Ordering::Acquire);
        self.dev.sync().map_err(|e| io_err("fsync", e))?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Makes every record appended so far durable.
    pub fn sync_all(&self) -> WireResult<()> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }

    /// Refuses every further append (see `Store::write`).
    pub fn poison(&self) {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).failed = true;
    }

    /// Bytes in the log since the last checkpoint.
    pub fn bytes(&self) -> u64 {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    /// A checkpoint: `commit(lsn)` must make the store durable up to `lsn` (the last
    /// record appended); then the log is emptied. Appends wait meanwhile, so nothing can
    /// be appended between the two steps and lost with the truncate. The caller holds
    /// the store's write transaction (taken before the log's lock, the order every writer
    /// takes them in), so no transaction is half way between log and store either.
    pub fn checkpoint(&self, commit: impl FnOnce(u64) -> WireResult<()>) -> WireResult<()> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.failed {
            return Err(WireError::internal(
                "metadata log: an earlier write failed; restart the coordinator",
            ));
        }
        let lsn = tail.lsn;
        commit(lsn)?;
        self.synced.fetch_max(lsn, Ordering::AcqRel);
        // If the truncate does not reach the disk, the records are still skipped at the
        // next start: their LSNs are covered by the checkpoint.
        self.dev.truncate().map_err(|e| io_err("truncate", e))?;
        tail.bytes = 0;
        Ok(())
    }
}

fn group_sync_loop(wal: Weak<Wal>) {
    loop {
        let Some(w) = wal.upgrade() else { return };
        {
            let p = w.pending.lock().unwrap_or_else(|p| p.into_inner());
            let (mut p, _) = w
                .wake
                .wait_timeout_while(p, Duration::from_millis(200), |p| !*p)
                .unwrap_or_else(|p| p.into_inner());
            if !*p {
                continue; // timed out: check the log still exists
            }
            *p = false;
        }
        // Let the changes of the next few milliseconds join this fsync.
        std::thread::sleep(GROUP_SYNC_INTERVAL);
        if let Err(e) = w.sync_all() {
            tracing::error!("{e}");
        }
    }
}

fn frame(lsn: u64, payload: &[u8]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&lsn.to_le_bytes());
    crc.update(payload);
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a log holds past a checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The records after the checkpoint, in order, each with its LSN.
    pub records: Vec<(u64, Vec<Op>)>,
    /// Bytes after the last good record: a record cut short by a crash or power loss (it
    /// was never acknowledged as durable), or stale bytes from before a truncate.
    pub dropped_bytes: usize,
}

/// Reads the records after `checkpoint` from a log's bytes. A bad frame (short, too
/// large, wrong CRC, out of sequence) ends the log; a frame with a good CRC that does not
/// decode is corruption this code cannot explain, and an error.
pub(crate) fn read_log(bytes: &[u8], checkpoint: u64) -> WireResult<Replay> {
    let mut out = Replay::default();
    let mut at = 0usize;
    let mut next = checkpoint + 1;
    while bytes.len() - at >= HEADER {
        let h = &bytes[at..at + HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let mut l = [0u8; 8];
        l.copy_from_slice(&h[8..16]);
        let lsn = u64::from_le_bytes(l);
        if len > MAX_RECORD || bytes.len() - at - HEADER < len {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len];
        let mut c = crc32fast::Hasher::new();
        c.update(&lsn.to_le_bytes());
        c.update(payload);
        if c.finalize() != crc {
            break;
        }
        if lsn <= checkpoint {
            if !out.records.is_empty() {
                break; // stale bytes after the new records: the end of the log
            }
            // Already in the store: a log whose truncate after a checkpoint was lost.
            at += HEADER + len;
            continue;
        }
        if lsn != next {
            break;
        }
        let ops: Vec<Op> = postcard::from_bytes(payload).map_err(|e| {
            WireError::internal(format!("metadata log record {lsn} does not decode: {e}"))
        })?;
        out.records.push((lsn, ops));
        next += 1;
        at += HEADER + len;
    }
    out.dropped_bytes = bytes.len() - at;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lsn: u64, n: u64) -> Vec<u8> {
        frame(
            lsn,
            &postcard::to_stdvec(&vec![Op::RemoveInode(n)]).unwrap(),
        )
    }

    #[test]
    fn replay_skips_checkpointed_records_and_stops_at_a_torn_or_stale_tail() {
        let mut log = Vec::new();
        for lsn in 1..=5 {
            log.extend(rec(lsn, lsn * 10));
        }
        let all = read_log(&log, 0).unwrap();
        assert_eq!(all.records.len(), 5);
        assert_eq!(all.dropped_bytes, 0);
        // Records up to the checkpoint are skipped.
        let after = read_log(&log, 3).unwrap();
        assert_eq!(
            after.records,
            vec![
                (4, vec![Op::RemoveInode(40)]),
                (5, vec![Op::RemoveInode(50)])
            ]
        );
        // A torn last record ends the log there.
        let cut = &log[..log.len() - 3];
        let torn = read_log(cut, 0).unwrap();
        assert_eq!(torn.records.len(), 4);
        assert_eq!(torn.dropped_bytes, rec(5, 50).len() - 3);
        // A flipped bit too.
        let mut bad = log.clone();
        let at = rec(1, 10).len() * 2 + HEADER + 1;
        bad[at] ^= 1;
        assert_eq!(read_log(&bad, 0).unwrap().records.len(), 2);
        // New records over stale ones (a truncate that did not reach the disk): the
        // stale ones are out of sequence and end the log.
        let mut mixed = rec(6, 60);
        mixed.extend(rec(4, 40));
        let m = read_log(&mixed, 5).unwrap();
        assert_eq!(m.records, vec![(6, vec![Op::RemoveInode(60)])]);
        assert!(m.dropped_bytes > 0);
        // A length beyond the cap is refused before anything is allocated.
        let mut huge = log.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_log(&huge, 0).unwrap().records.len(), 0);
    }
}
