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
//!   durable by the next immediate commit, which `server.rs` forces within
//!   [`SYNC_INTERVAL`]. An fsync costs ~3 ms on the benchmark machine and was the largest
//!   part of a small-file create or delete (docs/PERFORMANCE.md); POSIX does not make a
//!   new name durable before fsync of its directory either. redb keeps one linear history,
//!   so an immediate commit persists every earlier lazy one, and a crash rolls back to a
//!   consistent state: at most the last `SYNC_INTERVAL` of namespace changes is lost,
//!   never a file's committed content, and never in an order that breaks a reference.
//!
//! Keys are chosen so that the scans we need are range scans on a B-tree:
//! a directory is the key range `(dir, "")..(dir + 1, "")` of `dirents`, already in name
//! order; a file's layout is `(ino, 0)..(ino + 1, 0)` of `layout`, in shard-index order.

use dfs_proto::coord_msg::{Attr, FileKind, NanoTime};
use dfs_proto::{ErrorCode, Ino, ShardId, WireError, WireResult, ROOT_INO};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// inode number -> [`Inode`].
const INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("inodes");
/// (directory, name) -> [`Dirent`]. Names sort bytewise, which is what `ls` sees.
const DIRENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("dirents");
/// (file, shard index) -> (shard id, bytes of that shard that belong to the file).
const LAYOUT: TableDefinition<(u64, u64), (&[u8; 32], u32)> = TableDefinition::new("layout");
/// shard id -> [`ShardRec`]: size, how many layout entries use it, which nodes hold it.
const SHARDS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("shards");
/// (inode, attribute name) -> value.
const XATTRS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("xattrs");
/// node id -> last address it registered with (so a restarted coordinator knows its nodes).
const NODES: TableDefinition<u64, &str> = TableDefinition::new("nodes");
/// node id -> [`NodeAdmin`]: what an administrator decided about the node (draining,
/// removed). Kept apart from `nodes` so that stores written before it existed open as
/// they are.
const NODE_ADMIN: TableDefinition<u64, &[u8]> = TableDefinition::new("node_admin");
/// Inodes with no name left that a client still has open (see `Unlink { keep }`).
const ORPHANS: TableDefinition<u64, ()> = TableDefinition::new("orphans");
/// Counters and cluster settings.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_NEXT_INO: &str = "next_ino";
const META_SETTINGS: &str = "settings";

/// One inode as stored. Times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inode {
    pub kind: FileKind,
    /// `mode & 0o7777`.
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    pub atime: NanoTime,
    pub mtime: NanoTime,
    pub ctime: NanoTime,
    pub crtime: NanoTime,
    pub generation: u64,
    /// For directories, the directory containing it (its `..`); 0 for other kinds, which
    /// may have several names in several directories.
    pub parent: Ino,
    /// For symlinks, the target.
    pub target: Option<String>,
}

impl Inode {
    /// A new, empty inode: all times `now`, one link (two for a directory: its entry in
    /// the parent and its own `.`), no parent or symlink target yet.
    pub(crate) fn fresh(kind: FileKind, perm: u32, uid: u32, gid: u32, now: NanoTime) -> Inode {
        Inode {
            kind,
            perm,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            uid,
            gid,
            rdev: 0,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            generation: 0,
            parent: 0,
            target: None,
        }
    }
}

impl Inode {
    pub fn attr(&self, ino: Ino) -> Attr {
        Attr {
            ino,
            kind: self.kind,
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            size: self.size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.crtime,
            generation: self.generation,
        }
    }
}

/// What a directory entry points at. The kind is kept beside the inode number so checks
/// like "is the target a directory?" need no second lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dirent {
    pub ino: Ino,
    pub kind: FileKind,
}

/// One content-addressed shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardRec {
    /// Full size of the shard's content.
    pub size: u32,
    /// Number of layout entries (in any file) that use this shard. At 0 the shard is
    /// garbage: after a grace period the garbage collector (`gc.rs`) deletes its copies
    /// on the nodes and then the record.
    pub refs: u64,
    /// Nodes believed to hold a copy (node ids), whether up or down.
    pub locations: Vec<u64>,
}

/// An administrator's decision about a node, persisted so that a coordinator restart
/// does not undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NodeAdmin {
    /// Being emptied (`DrainNode`): no new shards, its copies do not count.
    Draining,
    /// Forgotten (`RemoveNode`): refused if it registers again.
    Removed,
}

/// Cluster settings that must not silently change once data exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSettings {
    pub replicas: u32,
    pub shard_size: u32,
}

/// Turns any store error into an `Internal` wire error: the client can do nothing about
/// a failing metadata disk except report it.
pub(crate) trait Wire<T> {
    fn wire(self) -> WireResult<T>;
}

impl<T, E: std::fmt::Display> Wire<T> for Result<T, E> {
    fn wire(self) -> WireResult<T> {
        self.map_err(|e| WireError::internal(format!("metadata store: {e}")))
    }
}

fn encode<T: Serialize>(v: &T) -> WireResult<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| WireError::internal(format!("encode record: {e}")))
}

fn decode<T: DeserializeOwned>(b: &[u8], what: &str) -> WireResult<T> {
    postcard::from_bytes(b).map_err(|e| WireError::internal(format!("corrupt {what} record: {e}")))
}

type StrKeyBound<'a> = Bound<(u64, &'a str)>;

/// Key bounds covering every `(first, _)` key of a table keyed by `(u64, &str)`, starting
/// after `after` if given. `""` is the smallest string, so `(first + 1, "")` is the first
/// key past the group.
fn str_group(first: u64, after: Option<&str>) -> (StrKeyBound<'_>, StrKeyBound<'_>) {
    let lo = match after {
        Some(a) => Bound::Excluded((first, a)),
        None => Bound::Included((first, "")),
    };
    let hi = match first.checked_add(1) {
        Some(n) => Bound::Excluded((n, "")),
        None => Bound::Unbounded,
    };
    (lo, hi)
}

/// Reading accessors, shared by read transactions ([`ReadTables`]) and write transactions
/// ([`Tables`]) so that a write sees its own earlier changes through the same code.
macro_rules! read_methods {
    () => {
        pub fn inode(&self, ino: Ino) -> WireResult<Option<Inode>> {
            match self.inodes.get(ino).wire()? {
                Some(g) => Ok(Some(decode(g.value(), "inode")?)),
                None => Ok(None),
            }
        }

        /// The inode, or `NotFound` naming it.
        pub fn must_inode(&self, ino: Ino) -> WireResult<Inode> {
            self.inode(ino)?
                .ok_or_else(|| WireError::not_found(format!("no inode {ino}")))
        }

        pub fn inode_count(&self) -> WireResult<u64> {
            self.inodes.len().wire()
        }

        pub fn dirent(&self, dir: Ino, name: &str) -> WireResult<Option<Dirent>> {
            match self.dirents.get((dir, name)).wire()? {
                Some(g) => Ok(Some(decode(g.value(), "directory entry")?)),
                None => Ok(None),
            }
        }

        /// Up to `n` entries of `dir` after `after`, in name order.
        pub fn dir_entries(
            &self,
            dir: Ino,
            after: Option<&str>,
            n: usize,
        ) -> WireResult<Vec<(String, Dirent)>> {
            let mut out = Vec::new();
            for item in self.dirents.range(str_group(dir, after)).wire()?.take(n) {
                let (k, v) = item.wire()?;
                out.push((
                    k.value().1.to_string(),
                    decode(v.value(), "directory entry")?,
                ));
            }
            Ok(out)
        }

        pub fn dir_is_empty(&self, dir: Ino) -> WireResult<bool> {
            Ok(self.dir_entries(dir, None, 1)?.is_empty())
        }

        /// Layout entries of `ino` with index in `[from, to)`, in index order.
        pub fn layout_range(
            &self,
            ino: Ino,
            from: u64,
            to: u64,
        ) -> WireResult<Vec<(u64, ShardId, u32)>> {
            let mut out = Vec::new();
            if from >= to {
                return Ok(out);
            }
            for item in self.layout.range((ino, from)..(ino, to)).wire()? {
                let (k, v) = item.wire()?;
                let (id, len) = v.value();
                out.push((k.value().1, ShardId(*id), len));
            }
            Ok(out)
        }

        pub fn layout_entry(&self, ino: Ino, index: u64) -> WireResult<Option<(ShardId, u32)>> {
            Ok(self.layout.get((ino, index)).wire()?.map(|g| {
                let (id, len) = g.value();
                (ShardId(*id), len)
            }))
        }

        pub fn shard(&self, id: &ShardId) -> WireResult<Option<ShardRec>> {
            match self.shards.get(&id.0).wire()? {
                Some(g) => Ok(Some(decode(g.value(), "shard")?)),
                None => Ok(None),
            }
        }

        /// Every shard record. Used by scans (status, inventory reconciliation).
        pub fn all_shards(&self) -> WireResult<Vec<(ShardId, ShardRec)>> {
            let mut out = Vec::new();
            for item in self.shards.iter().wire()? {
                let (k, v) = item.wire()?;
                out.push((ShardId(*k.value()), decode(v.value(), "shard")?));
            }
            Ok(out)
        }

        /// Calls `f(inode, shard)` for every layout entry, in key order. There is no
        /// reverse index (shard -> files); `fsck` is the only user and can afford a scan.
        pub fn for_each_layout(&self, mut f: impl FnMut(Ino, &ShardId)) -> WireResult<()> {
            for item in self.layout.iter().wire()? {
                let (k, v) = item.wire()?;
                f(k.value().0, &ShardId(*v.value().0));
            }
            Ok(())
        }

        pub fn xattr(&self, ino: Ino, name: &str) -> WireResult<Option<Vec<u8>>> {
            Ok(self
                .xattrs
                .get((ino, name))
                .wire()?
                .map(|g| g.value().to_vec()))
        }

        /// Whether `ino` has any extended attribute (one B-tree probe, no names read).
        pub fn has_xattrs(&self, ino: Ino) -> WireResult<bool> {
            Ok(self
                .xattrs
                .range(str_group(ino, None))
                .wire()?
                .next()
                .is_some())
        }

        pub fn xattr_names(&self, ino: Ino) -> WireResult<Vec<String>> {
            let mut out = Vec::new();
            for item in self.xattrs.range(str_group(ino, None)).wire()? {
                let (k, _) = item.wire()?;
                out.push(k.value().1.to_string());
            }
            Ok(out)
        }

        pub fn nodes(&self) -> WireResult<Vec<(u64, String)>> {
            let mut out = Vec::new();
            for item in self.nodes.iter().wire()? {
                let (k, v) = item.wire()?;
                out.push((k.value(), v.value().to_string()));
            }
            Ok(out)
        }

        /// Every node with an administrative state.
        pub fn node_admin(&self) -> WireResult<Vec<(u64, NodeAdmin)>> {
            let mut out = Vec::new();
            for item in self.node_admin.iter().wire()? {
                let (k, v) = item.wire()?;
                out.push((k.value(), decode(v.value(), "node state")?));
            }
            Ok(out)
        }

        pub fn is_orphan(&self, ino: Ino) -> WireResult<bool> {
            Ok(self.orphans.get(ino).wire()?.is_some())
        }

        /// Every inode unlinked while open and not yet released.
        pub fn orphans(&self) -> WireResult<Vec<Ino>> {
            let mut out = Vec::new();
            for item in self.orphans.iter().wire()? {
                out.push(item.wire()?.0.value());
            }
            Ok(out)
        }

        fn meta_get(&self, key: &str) -> WireResult<Option<Vec<u8>>> {
            Ok(self.meta.get(key).wire()?.map(|g| g.value().to_vec()))
        }
    };
}

/// The tables of a read transaction: a consistent snapshot, never blocked by writers.
// Both table sets get every reader method from one macro; not every method is used with
// both, which is fine.
#[allow(dead_code)]
pub(crate) struct ReadTables {
    inodes: ReadOnlyTable<u64, &'static [u8]>,
    dirents: ReadOnlyTable<(u64, &'static str), &'static [u8]>,
    layout: ReadOnlyTable<(u64, u64), (&'static [u8; 32], u32)>,
    shards: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    xattrs: ReadOnlyTable<(u64, &'static str), &'static [u8]>,
    nodes: ReadOnlyTable<u64, &'static str>,
    node_admin: ReadOnlyTable<u64, &'static [u8]>,
    orphans: ReadOnlyTable<u64, ()>,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
}

#[allow(dead_code)]
impl ReadTables {
    fn open(txn: &ReadTransaction) -> WireResult<ReadTables> {
        Ok(ReadTables {
            inodes: txn.open_table(INODES).wire()?,
            dirents: txn.open_table(DIRENTS).wire()?,
            layout: txn.open_table(LAYOUT).wire()?,
            shards: txn.open_table(SHARDS).wire()?,
            xattrs: txn.open_table(XATTRS).wire()?,
            nodes: txn.open_table(NODES).wire()?,
            node_admin: txn.open_table(NODE_ADMIN).wire()?,
            orphans: txn.open_table(ORPHANS).wire()?,
            meta: txn.open_table(META).wire()?,
        })
    }

    read_methods!();
}

/// The tables of a write transaction. Everything done through one `Tables` commits or
/// aborts together.
pub(crate) struct Tables<'t> {
    inodes: Table<'t, u64, &'static [u8]>,
    dirents: Table<'t, (u64, &'static str), &'static [u8]>,
    layout: Table<'t, (u64, u64), (&'static [u8; 32], u32)>,
    shards: Table<'t, &'static [u8; 32], &'static [u8]>,
    xattrs: Table<'t, (u64, &'static str), &'static [u8]>,
    nodes: Table<'t, u64, &'static str>,
    node_admin: Table<'t, u64, &'static [u8]>,
    orphans: Table<'t, u64, ()>,
    meta: Table<'t, &'static str, &'static [u8]>,
}

#[allow(dead_code)]
impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> WireResult<Tables<'t>> {
        Ok(Tables {
            inodes: txn.open_table(INODES).wire()?,
            dirents: txn.open_table(DIRENTS).wire()?,
            layout: txn.open_table(LAYOUT).wire()?,
            shards: txn.open_table(SHARDS).wire()?,
            xattrs: txn.open_table(XATTRS).wire()?,
            nodes: txn.open_table(NODES).wire()?,
            node_admin: txn.open_table(NODE_ADMIN).wire()?,
            orphans: txn.open_table(ORPHANS).wire()?,
            meta: txn.open_table(META).wire()?,
        })
    }

    read_methods!();

    pub fn put_inode(&mut self, ino: Ino, inode: &Inode) -> WireResult<()> {
        self.inodes.insert(ino, encode(inode)?.as_slice()).wire()?;
        Ok(())
    }

    pub fn remove_inode(&mut self, ino: Ino) -> WireResult<()> {
        self.inodes.remove(ino).wire()?;
        Ok(())
    }

    /// Hands out a fresh inode number. Numbers are never reused, so a stale number held
    /// by a client can only ever be `NotFound`, never someone else's file.
    pub fn alloc_ino(&mut self) -> WireResult<Ino> {
        let next = self.next_ino()?;
        self.meta
            .insert(
                META_NEXT_INO,
                next.saturating_add(1).to_le_bytes().as_slice(),
            )
            .wire()?;
        Ok(next)
    }

    fn next_ino(&self) -> WireResult<Ino> {
        match self.meta_get(META_NEXT_INO)? {
            Some(b) => {
                let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| {
                    WireError::internal("corrupt next inode counter in the metadata store")
                })?;
                Ok(u64::from_le_bytes(arr))
            }
            None => Ok(ROOT_INO + 1),
        }
    }

    pub fn put_dirent(&mut self, dir: Ino, name: &str, d: Dirent) -> WireResult<()> {
        self.dirents
            .insert((dir, name), encode(&d)?.as_slice())
            .wire()?;
        Ok(())
    }

    pub fn remove_dirent(&mut self, dir: Ino, name: &str) -> WireResult<()> {
        self.dirents.remove((dir, name)).wire()?;
        Ok(())
    }

    pub fn put_layout(&mut self, ino: Ino, index: u64, id: &ShardId, len: u32) -> WireResult<()> {
        self.layout.insert((ino, index), (&id.0, len)).wire()?;
        Ok(())
    }

    pub fn remove_layout(&mut self, ino: Ino, index: u64) -> WireResult<()> {
        self.layout.remove((ino, index)).wire()?;
        Ok(())
    }

    pub fn put_shard(&mut self, id: &ShardId, rec: &ShardRec) -> WireResult<()> {
        self.shards.insert(&id.0, encode(rec)?.as_slice()).wire()?;
        Ok(())
    }

    /// Forgets a shard entirely. Only garbage collection calls this, for a shard no
    /// layout references, so no layout entry is left pointing at a missing record.
    pub fn remove_shard(&mut self, id: &ShardId) -> WireResult<()> {
        self.shards.remove(&id.0).wire()?;
        Ok(())
    }

    pub fn put_xattr(&mut self, ino: Ino, name: &str, value: &[u8]) -> WireResult<()> {
        self.xattrs.insert((ino, name), value).wire()?;
        Ok(())
    }

    /// Removes one attribute; false if it was not there.
    pub fn remove_xattr(&mut self, ino: Ino, name: &str) -> WireResult<bool> {
        Ok(self.xattrs.remove((ino, name)).wire()?.is_some())
    }

    pub fn remove_all_xattrs(&mut self, ino: Ino) -> WireResult<()> {
        for name in self.xattr_names(ino)? {
            self.xattrs.remove((ino, name.as_str())).wire()?;
        }
        Ok(())
    }

    pub fn put_node(&mut self, id: u64, addr: &str) -> WireResult<()> {
        self.nodes.insert(id, addr).wire()?;
        Ok(())
    }

    /// Forgets a node's address (see `RemoveNode`).
    pub fn remove_node(&mut self, id: u64) -> WireResult<()> {
        self.nodes.remove(id).wire()?;
        Ok(())
    }

    pub fn set_node_admin(&mut self, id: u64, state: NodeAdmin) -> WireResult<()> {
        self.node_admin
            .insert(id, encode(&state)?.as_slice())
            .wire()?;
        Ok(())
    }

    pub fn set_orphan(&mut self, ino: Ino, orphan: bool) -> WireResult<()> {
        if orphan {
            self.orphans.insert(ino, ()).wire()?;
        } else {
            self.orphans.remove(ino).wire()?;
        }
        Ok(())
    }

    fn settings(&self) -> WireResult<Option<StoredSettings>> {
        match self.meta_get(META_SETTINGS)? {
            Some(b) => Ok(Some(decode(&b, "settings")?)),
            None => Ok(None),
        }
    }

    fn put_settings(&mut self, s: &StoredSettings) -> WireResult<()> {
        self.meta
            .insert(META_SETTINGS, encode(s)?.as_slice())
            .wire()?;
        Ok(())
    }
}

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

/// Shorthand for an error with a code and a message.
pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
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
