//! The metadata store: the redb tables, the postcard-encoded records kept in them, and
//! typed accessors that every other module uses instead of touching redb directly.
//!
//! All of the coordinator's durable state lives in one redb file plus its write-ahead log
//! (`meta.wal` beside it). A write request runs as ONE write transaction: a change that
//! fails half way leaves nothing behind (the transaction aborts). When it succeeds, its
//! changes are appended to the log with one `write()` and then committed to redb without
//! an fsync (`Durability::None`); the answer goes out after that. So:
//! - an acknowledged change survives a crash of the coordinator (`kill -9`): its record is
//!   in the page cache, and the log is replayed at the next start;
//! - it survives a power loss once the log is fsynced: a background thread does that
//!   every [`wal::GROUP_SYNC_INTERVAL`] for everything appended meanwhile, and `Sync`
//!   (a client's `fsync`/`fsyncdir`) waits for it at once ([`Store::sync`]);
//! - with `--durable-close` ([`Store::open`]'s `strict`), every change waits for its fsync
//!   before it is acknowledged (still shared: group commit).
//!
//! redb keeps one linear history, so the store after a crash is a prefix of the
//! acknowledged changes, never a change without one it depended on. A checkpoint
//! ([`Store::checkpoint`]) makes redb itself durable and empties the log.
//!
//! - `store/records.rs`: the records (inodes, directory entries, shard records...);
//! - `store/tables.rs`: the tables, their keys, and the typed accessors;
//! - `store/wal.rs`: the log.

#[cfg(test)]
mod power_loss;
mod records;
mod tables;
pub(crate) mod wal;

pub(crate) use records::{err, Dirent, Inode, NodeAdmin, ShardRec, StoredSettings, S_ISGID};
pub(crate) use tables::{ReadTables, Reader, Tables};

use dfs_proto::coord_msg::{FileKind, NanoTime};
use dfs_proto::{WireError, WireResult, ROOT_INO};
use records::Wire;
use redb::{Database, Durability, ReadableDatabase};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wal::{FileLog, LogDevice, Wal};

/// The redb database and its log. Its methods block on disk I/O: call them from
/// `tokio::task::spawn_blocking`, never directly on the async runtime.
pub(crate) struct Store {
    db: Database,
    /// `None` for a store in memory (tests): nothing to survive.
    wal: Option<Arc<Wal>>,
    /// Acknowledge a change only once its log record is fsynced (`--durable-close`).
    strict: bool,
    last_checkpoint: Mutex<Instant>,
}

/// A checkpoint is due when the log has grown this much...
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// ...or this long after the last one, if anything was logged since: it bounds both the
/// replay at start and the memory redb keeps for commits not yet written to its file.
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (or creates) the store in a file, its log beside it (`meta.wal` for
    /// `meta.redb`), and replays what the log holds past the last checkpoint.
    pub fn open(path: &Path, strict: bool) -> anyhow::Result<Store> {
        let db = Database::builder()
            .create(path)
            .map_err(|e| anyhow::anyhow!("open metadata store {}: {e}", path.display()))?;
        let log = FileLog::open(&path.with_extension("wal"))?;
        Store::recover(db, Some(Box::new(log)), strict)
    }

    /// A store on any storage: tests pass devices that simulate power loss.
    #[cfg(test)]
    pub(crate) fn open_on(
        db: impl redb::StorageBackend,
        log: impl LogDevice,
        strict: bool,
    ) -> anyhow::Result<Store> {
        let db = Database::builder()
            .create_with_backend(db)
            .map_err(|e| anyhow::anyhow!("open metadata store: {e}"))?;
        Store::recover(db, Some(Box::new(log)), strict)
    }

    /// A store that lives in memory only, for tests.
    pub fn in_memory() -> anyhow::Result<Store> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| anyhow::anyhow!("create in-memory metadata store: {e}"))?;
        Store::recover(db, None, false)
    }

    /// Applies the log's records past the checkpoint in one durable transaction, empties
    /// the log and starts it at the last LSN.
    fn recover(
        db: Database,
        log: Option<Box<dyn LogDevice>>,
        strict: bool,
    ) -> anyhow::Result<Store> {
        let wal = match log {
            None => None,
            Some(dev) => {
                let bytes = dev
                    .read_all()
                    .map_err(|e| anyhow::anyhow!("read metadata log: {e}"))?;
                let txn = db.begin_write()?;
                let last = {
                    let mut t = Tables::open(&txn).map_err(anyhow::Error::msg)?;
                    let checkpoint = t.checkpoint_lsn().map_err(anyhow::Error::msg)?;
                    let replay = wal::read_log(&bytes, checkpoint).map_err(anyhow::Error::msg)?;
                    let n = replay.records.len();
                    let mut last = checkpoint;
                    for (lsn, ops) in replay.records {
                        for op in ops {
                            t.apply(op).map_err(anyhow::Error::msg)?;
                        }
                        last = lsn;
                    }
                    if n > 0 || replay.dropped_bytes > 0 {
                        tracing::info!(
                            "metadata log: replayed {n} transactions after checkpoint {checkpoint} \
                             (up to {last}); {} bytes after them were not a whole record and were \
                             dropped (a change cut short by the crash, never acknowledged as durable)",
                            replay.dropped_bytes
                        );
                    }
                    t.put_checkpoint_lsn(last).map_err(anyhow::Error::msg)?;
                    last
                };
                txn.commit()?;
                dev.truncate()
                    .map_err(|e| anyhow::anyhow!("empty metadata log: {e}"))?;
                Some(Wal::start(dev, last))
            }
        };
        Ok(Store {
            db,
            wal,
            strict,
            last_checkpoint: Mutex::new(Instant::now()),
        })
    }

    /// Creates the tables and the root directory if missing, and reconciles the stored
    /// cluster settings with `wanted`. Returns the settings in force.
    pub fn init(&self, wanted: StoredSettings, now: NanoTime) -> WireResult<StoredSettings> {
        self.write(|t| {
            if t.inode(ROOT_INO)?.is_none() {
                // FUSE names the root inode 1. Like mkfs, we create it owned by root with
                // mode 0755; its `..` is itself.
                let root = Inode {
                    parent: ROOT_INO,
                    ..Inode::fresh(FileKind::Dir, 0o755, 0, 0, now)
                };
                t.put_inode(ROOT_INO, &root)?;
            }
            let effective = match t.settings()? {
                None => wanted,
                Some(stored) => {
                    if stored.shard_size != wanted.shard_size {
                        // Every layout entry's offset is index * shard_size: changing the
                        // shard size would silently scramble every existing file.
                        tracing::warn!(
                            "ignoring shard size {} from the command line: this cluster was \
                             created with shard size {}, which cannot change",
                            wanted.shard_size,
                            stored.shard_size
                        );
                    }
                    if stored.replicas != wanted.replicas {
                        tracing::info!(
                            "replication factor changed from {} to {}",
                            stored.replicas,
                            wanted.replicas
                        );
                    }
                    StoredSettings {
                        replicas: wanted.replicas,
                        shard_size: stored.shard_size,
                    }
                }
            };
            t.put_settings(&effective)?;
            Ok(effective)
        })
    }

    /// Runs `f` in one write transaction: logged and committed if `f` succeeds (see the
    /// module comment for when it is durable), rolled back entirely if it fails.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tables<'_>) -> WireResult<T>) -> WireResult<T> {
        let mut txn = self.db.begin_write().wire()?;
        if self.wal.is_some() {
            // The log is what makes it survive a crash; redb's own fsync waits for the
            // next checkpoint.
            txn.set_durability(Durability::None).wire()?;
        }
        let (out, redo) = {
            let mut tables = Tables::open(&txn)?;
            let out = f(&mut tables);
            (out, tables.take_redo())
        };
        let v = match out {
            Ok(v) => v,
            Err(e) => {
                if let Err(abort) = txn.abort() {
                    tracing::warn!("failed to abort a metadata transaction: {abort}");
                }
                return Err(e);
            }
        };
        // Log first, then apply: a change is never in the store without being in the log.
        let logged = match (&self.wal, redo.is_empty()) {
            (Some(w), false) => match w.append(&redo) {
                Ok(lsn) => Some((w, lsn)),
                Err(e) => {
                    let _ = txn.abort();
                    return Err(e);
                }
            },
            _ => None,
        };
        if let Err(e) = txn.commit() {
            if let Some((w, _)) = logged {
                // The log holds a change the store does not: any later change would be
                // computed without it and then replayed after it. Stop writing; a restart
                // applies the log.
                w.poison();
                return Err(WireError::internal(format!(
                    "metadata store: commit failed after the change was logged ({e}); \
                     refusing further changes until the coordinator restarts"
                )));
            }
            return Err(e).wire();
        }
        if let (true, Some((w, lsn))) = (self.strict, logged) {
            w.sync_to(lsn)?;
        }
        Ok(v)
    }

    /// Makes every change so far durable: one fsync of the log, shared with whoever else
    /// is waiting for one.
    pub fn sync(&self) -> WireResult<()> {
        match &self.wal {
            Some(w) => w.sync_all(),
            None => Ok(()),
        }
    }

    /// Makes redb itself durable up to the last logged change and empties the log.
    pub fn checkpoint(&self) -> WireResult<()> {
        let Some(w) = &self.wal else { return Ok(()) };
        let txn = self.db.begin_write().wire()?;
        w.checkpoint(|lsn| {
            {
                let mut t = Tables::open(&txn)?;
                t.put_checkpoint_lsn(lsn)?;
            }
            txn.commit().wire()
        })?;
        *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(())
    }

    /// A checkpoint if one is due (see [`CHECKPOINT_BYTES`], [`CHECKPOINT_INTERVAL`]).
    pub fn checkpoint_if_due(&self) -> WireResult<()> {
        let Some(w) = &self.wal else { return Ok(()) };
        let bytes = w.bytes();
        let age = self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if bytes >= CHECKPOINT_BYTES || (bytes > 0 && age >= CHECKPOINT_INTERVAL) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Runs `f` on a consistent read-only snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTables) -> WireResult<T>) -> WireResult<T> {
        let txn = self.db.begin_read().wire()?;
        let tables = ReadTables::open(&txn)?;
        f(&tables)
    }
}

impl Drop for Store {
    /// A coordinator that stops normally leaves an empty log: the next start replays
    /// nothing.
    fn drop(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::error!("failed to checkpoint the metadata store: {e}");
        }
    }
}
