//! The metadata store: the redb tables, the postcard-encoded records kept in them, and
//! typed accessors that every other module uses instead of touching redb directly.
//!
//! All of the coordinator's durable state lives in one redb file. A write request runs as
//! ONE write transaction: a change that fails half way leaves nothing behind (the
//! transaction aborts). How soon it reaches the disk depends on the request:
//! - a file's `Commit` (close, fsync), `Sync` (fsyncdir) and the coordinator's own
//!   bookkeeping are committed with `Durability::Immediate` (fsync) before the answer;
//! - namespace changes (create, mkdir, unlink, rename, setattr, ...) are committed with
//!   `Durability::None` ([`Store::write_soon`]): visible to every client at once, made
//!   durable by the next immediate commit, which `daemon.rs` forces within
//!   [`SYNC_INTERVAL`]. An fsync costs ~3 ms on the benchmark machine and was the largest
//!   part of a small-file create or delete (docs/PERFORMANCE.md); POSIX does not make a
//!   new name durable before fsync of its directory either. redb keeps one linear history,
//!   so an immediate commit persists every earlier lazy one, and a crash rolls back to a
//!   consistent state: at most the last `SYNC_INTERVAL` of namespace changes is lost,
//!   never a file's committed content, and never in an order that breaks a reference.
//!
//! - `store/records.rs`: the records (inodes, directory entries, shard records...);
//! - `store/tables.rs`: the tables, their keys, and the typed accessors.

mod records;
mod tables;

pub(crate) use records::{err, Dirent, Inode, NodeAdmin, ShardRec, StoredSettings, S_ISGID};
pub(crate) use tables::{ReadTables, Reader, Tables};

use dfs_proto::coord_msg::{FileKind, NanoTime};
use dfs_proto::{WireResult, ROOT_INO};
use records::Wire;
use redb::{Database, Durability, ReadableDatabase};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The redb database. Its methods block on disk I/O: call them from
/// `tokio::task::spawn_blocking`, never directly on the async runtime.
pub(crate) struct Store {
    db: Database,
    /// Set by a lazy commit, cleared by an immediate one: whether `sync` has work to do.
    unsynced: AtomicBool,
}

/// The longest a namespace change stays only in memory (see the module comment).
pub(crate) const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

impl Store {
    /// Opens (or creates) the store in a file.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        let db = Database::builder()
            .create(path)
            .map_err(|e| anyhow::anyhow!("open metadata store {}: {e}", path.display()))?;
        Ok(Store {
            db,
            unsynced: AtomicBool::new(false),
        })
    }

    /// A store that lives in memory only, for tests.
    pub fn in_memory() -> anyhow::Result<Store> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| anyhow::anyhow!("create in-memory metadata store: {e}"))?;
        Ok(Store {
            db,
            unsynced: AtomicBool::new(false),
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

    /// Runs `f` in one write transaction, committed durably (fsync) if `f` succeeds and
    /// rolled back entirely if it fails.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tables<'_>) -> WireResult<T>) -> WireResult<T> {
        self.write_with(Durability::Immediate, f)
    }

    /// Like [`Store::write`], but the commit is not fsynced: it becomes durable with the
    /// next immediate commit (at the latest the next [`Store::sync`]).
    pub fn write_soon<T>(&self, f: impl FnOnce(&mut Tables<'_>) -> WireResult<T>) -> WireResult<T> {
        self.write_with(Durability::None, f)
    }

    /// Makes every lazy commit so far durable (one fsync), if there is any.
    pub fn sync(&self) -> WireResult<()> {
        if !self.unsynced.load(Ordering::Acquire) {
            return Ok(());
        }
        self.write(|_| Ok(()))
    }

    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T>,
    ) -> WireResult<T> {
        let mut txn = self.db.begin_write().wire()?;
        let lazy = matches!(durability, Durability::None);
        txn.set_durability(durability).wire()?;
        let out = {
            let mut tables = Tables::open(&txn)?;
            f(&mut tables)
        };
        match out {
            Ok(v) => {
                // redb runs one write transaction at a time, so no other commit can slip
                // in between this store and the commit: an immediate commit persists
                // everything the flag covered, and a lazy one marks itself.
                self.unsynced.store(lazy, Ordering::Release);
                if let Err(e) = txn.commit() {
                    // Whatever was pending still is.
                    self.unsynced.store(true, Ordering::Release);
                    return Err(e).wire();
                }
                Ok(v)
            }
            Err(e) => {
                if let Err(abort) = txn.abort() {
                    tracing::warn!("failed to abort a metadata transaction: {abort}");
                }
                Err(e)
            }
        }
    }

    /// Runs `f` on a consistent read-only snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTables) -> WireResult<T>) -> WireResult<T> {
        let txn = self.db.begin_read().wire()?;
        let tables = ReadTables::open(&txn)?;
        f(&tables)
    }
}

impl Drop for Store {
    /// A coordinator that stops normally loses nothing: lazy commits are made durable
    /// before the database closes.
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("failed to make the last namespace changes durable: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(replicas: u32) -> StoredSettings {
        StoredSettings {
            replicas,
            shard_size: 1 << 20,
        }
    }

    #[test]
    fn lazy_commits_are_visible_at_once_and_durable_after_sync_or_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = Store::open(&path).unwrap();
            store.write_soon(|t| t.put_settings(&settings(3))).unwrap();
            assert!(store.unsynced.load(Ordering::Acquire));
            // Readers see a lazy commit before it is durable.
            let got = store.write(|t| t.settings()).unwrap().map(|s| s.replicas);
            assert_eq!(got, Some(3));
            // That immediate commit persisted it; sync has nothing left to do.
            assert!(!store.unsynced.load(Ordering::Acquire));
            store.write_soon(|t| t.put_settings(&settings(5))).unwrap();
            store.sync().unwrap();
            assert!(!store.unsynced.load(Ordering::Acquire));
            store.write_soon(|t| t.put_settings(&settings(7))).unwrap();
            // Dropped with a lazy commit pending: Drop makes it durable.
        }
        let store = Store::open(&path).unwrap();
        let got = store.write(|t| t.settings()).unwrap().map(|s| s.replicas);
        assert_eq!(got, Some(7));
    }
}
