//! The redb tables of the metadata store and the typed accessors every other module uses
//! instead of touching redb directly: [`Reader`] for reads (on a snapshot or inside a write),
//! [`Tables`] for the writes of one transaction.
//!
//! Keys are chosen so that the scans we need are range scans on a B-tree:
//! a directory is the key range `(dir, "")..(dir + 1, "")` of `dirents`, already in name
//! order; a file's layout is `(ino, 0)..(ino + 1, 0)` of `layout`, in shard-index order.

use super::records::{decode, encode, Dirent, Inode, NodeAdmin, ShardRec, StoredSettings, Wire};
use super::wal::Op;
use dfs_proto::{Ino, ShardId, WireError, WireResult, ROOT_INO};
use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};
use std::ops::Bound;

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
/// LSN of the last write-ahead log record the store holds durably (`wal.rs`).
const META_CHECKPOINT_LSN: &str = "wal_checkpoint_lsn";

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

/// Reading, shared by read transactions ([`ReadTables`]) and write transactions
/// ([`Tables`]) so that a write sees its own earlier changes through the same code. Each
/// side only lends its open tables (the nine `*_table` methods); every read is written once,
/// below them. Callers bring the trait into scope (`use crate::store::Reader`).
pub(crate) trait Reader {
    fn inodes_table(&self) -> &impl ReadableTable<u64, &'static [u8]>;
    fn dirents_table(&self) -> &impl ReadableTable<(u64, &'static str), &'static [u8]>;
    fn layout_table(&self) -> &impl ReadableTable<(u64, u64), (&'static [u8; 32], u32)>;
    fn shards_table(&self) -> &impl ReadableTable<&'static [u8; 32], &'static [u8]>;
    fn xattrs_table(&self) -> &impl ReadableTable<(u64, &'static str), &'static [u8]>;
    fn nodes_table(&self) -> &impl ReadableTable<u64, &'static str>;
    fn node_admin_table(&self) -> &impl ReadableTable<u64, &'static [u8]>;
    fn orphans_table(&self) -> &impl ReadableTable<u64, ()>;
    fn meta_table(&self) -> &impl ReadableTable<&'static str, &'static [u8]>;

    fn inode(&self, ino: Ino) -> WireResult<Option<Inode>> {
        match self.inodes_table().get(ino).wire()? {
            Some(g) => Ok(Some(decode(g.value(), "inode")?)),
            None => Ok(None),
        }
    }

    /// The inode, or `NotFound` naming it.
    fn must_inode(&self, ino: Ino) -> WireResult<Inode> {
        self.inode(ino)?
            .ok_or_else(|| WireError::not_found(format!("no inode {ino}")))
    }

    fn inode_count(&self) -> WireResult<u64> {
        self.inodes_table().len().wire()
    }

    fn dirent(&self, dir: Ino, name: &str) -> WireResult<Option<Dirent>> {
        match self.dirents_table().get((dir, name)).wire()? {
            Some(g) => Ok(Some(decode(g.value(), "directory entry")?)),
            None => Ok(None),
        }
    }

    /// Up to `n` entries of `dir` after `after`, in name order.
    fn dir_entries(
        &self,
        dir: Ino,
        after: Option<&str>,
        n: usize,
    ) -> WireResult<Vec<(String, Dirent)>> {
        let mut out = Vec::new();
        for item in self
            .dirents_table()
            .range(str_group(dir, after))
            .wire()?
            .take(n)
        {
            let (k, v) = item.wire()?;
            out.push((
                k.value().1.to_string(),
                decode(v.value(), "directory entry")?,
            ));
        }
        Ok(out)
    }

    fn dir_is_empty(&self, dir: Ino) -> WireResult<bool> {
        Ok(self.dir_entries(dir, None, 1)?.is_empty())
    }

    /// Layout entries of `ino` with index in `[from, to)`, in index order.
    fn layout_range(&self, ino: Ino, from: u64, to: u64) -> WireResult<Vec<(u64, ShardId, u32)>> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        for item in self.layout_table().range((ino, from)..(ino, to)).wire()? {
            let (k, v) = item.wire()?;
            let (id, len) = v.value();
            out.push((k.value().1, ShardId(*id), len));
        }
        Ok(out)
    }

    fn layout_entry(&self, ino: Ino, index: u64) -> WireResult<Option<(ShardId, u32)>> {
        Ok(self.layout_table().get((ino, index)).wire()?.map(|g| {
            let (id, len) = g.value();
            (ShardId(*id), len)
        }))
    }

    fn shard(&self, id: &ShardId) -> WireResult<Option<ShardRec>> {
        match self.shards_table().get(&id.0).wire()? {
            Some(g) => Ok(Some(decode(g.value(), "shard")?)),
            None => Ok(None),
        }
    }

    /// Every shard record. Used by scans (status, inventory reconciliation).
    fn all_shards(&self) -> WireResult<Vec<(ShardId, ShardRec)>> {
        let mut out = Vec::new();
        for item in self.shards_table().iter().wire()? {
            let (k, v) = item.wire()?;
            out.push((ShardId(*k.value()), decode(v.value(), "shard")?));
        }
        Ok(out)
    }

    /// Calls `f(inode, shard)` for every layout entry, in key order. There is no
    /// reverse index (shard -> files); `fsck` is the only user and can afford a scan.
    fn for_each_layout(&self, mut f: impl FnMut(Ino, &ShardId)) -> WireResult<()> {
        for item in self.layout_table().iter().wire()? {
            let (k, v) = item.wire()?;
            f(k.value().0, &ShardId(*v.value().0));
        }
        Ok(())
    }

    fn xattr(&self, ino: Ino, name: &str) -> WireResult<Option<Vec<u8>>> {
        Ok(self
            .xattrs_table()
            .get((ino, name))
            .wire()?
            .map(|g| g.value().to_vec()))
    }

    /// Whether `ino` has any extended attribute (one B-tree probe, no names read).
    fn has_xattrs(&self, ino: Ino) -> WireResult<bool> {
        Ok(self
            .xattrs_table()
            .range(str_group(ino, None))
            .wire()?
            .next()
            .is_some())
    }

    fn xattr_names(&self, ino: Ino) -> WireResult<Vec<String>> {
        let mut out = Vec::new();
        for item in self.xattrs_table().range(str_group(ino, None)).wire()? {
            let (k, _) = item.wire()?;
            out.push(k.value().1.to_string());
        }
        Ok(out)
    }

    fn nodes(&self) -> WireResult<Vec<(u64, String)>> {
        let mut out = Vec::new();
        for item in self.nodes_table().iter().wire()? {
            let (k, v) = item.wire()?;
            out.push((k.value(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Every node with an administrative state.
    fn node_admin(&self) -> WireResult<Vec<(u64, NodeAdmin)>> {
        let mut out = Vec::new();
        for item in self.node_admin_table().iter().wire()? {
            let (k, v) = item.wire()?;
            out.push((k.value(), decode(v.value(), "node state")?));
        }
        Ok(out)
    }

    /// Every inode unlinked while open and not yet released.
    fn orphans(&self) -> WireResult<Vec<Ino>> {
        let mut out = Vec::new();
        for item in self.orphans_table().iter().wire()? {
            out.push(item.wire()?.0.value());
        }
        Ok(out)
    }

    fn meta_get(&self, key: &str) -> WireResult<Option<Vec<u8>>> {
        Ok(self
            .meta_table()
            .get(key)
            .wire()?
            .map(|g| g.value().to_vec()))
    }

    /// LSN of the last log record the store holds (0: none yet), see `wal.rs`.
    fn checkpoint_lsn(&self) -> WireResult<u64> {
        match self.meta_get(META_CHECKPOINT_LSN)? {
            None => Ok(0),
            Some(b) => {
                let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| {
                    WireError::internal("corrupt log checkpoint in the metadata store")
                })?;
                Ok(u64::from_le_bytes(arr))
            }
        }
    }
}

/// The tables of a read transaction: a consistent snapshot, never blocked by writers.
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

impl ReadTables {
    pub(super) fn open(txn: &ReadTransaction) -> WireResult<ReadTables> {
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
}

/// Every entry of every table as text, in key order, for tests that compare whole states
/// (the log's checkpoint marker left out: it is bookkeeping, not content).
#[cfg(test)]
impl ReadTables {
    pub(crate) fn dump(&self) -> WireResult<Vec<String>> {
        fn all<K: redb::Key + 'static, V: redb::Value + 'static>(
            t: &impl ReadableTable<K, V>,
            name: &str,
            out: &mut Vec<String>,
        ) -> WireResult<()>
        where
            for<'a> K::SelfType<'a>: std::fmt::Debug,
            for<'a> V::SelfType<'a>: std::fmt::Debug,
        {
            for item in t.iter().wire()? {
                let (k, v) = item.wire()?;
                out.push(format!("{name} {:?} {:?}", k.value(), v.value()));
            }
            Ok(())
        }
        let mut out = Vec::new();
        all(&self.inodes, "inode", &mut out)?;
        all(&self.dirents, "dirent", &mut out)?;
        all(&self.layout, "layout", &mut out)?;
        all(&self.shards, "shard", &mut out)?;
        all(&self.xattrs, "xattr", &mut out)?;
        all(&self.nodes, "node", &mut out)?;
        all(&self.node_admin, "admin", &mut out)?;
        all(&self.orphans, "orphan", &mut out)?;
        all(&self.meta, "meta", &mut out)?;
        out.retain(|l| !l.contains(META_CHECKPOINT_LSN));
        Ok(out)
    }
}

impl Reader for ReadTables {
    fn inodes_table(&self) -> &impl ReadableTable<u64, &'static [u8]> {
        &self.inodes
    }
    fn dirents_table(&self) -> &impl ReadableTable<(u64, &'static str), &'static [u8]> {
        &self.dirents
    }
    fn layout_table(&self) -> &impl ReadableTable<(u64, u64), (&'static [u8; 32], u32)> {
        &self.layout
    }
    fn shards_table(&self) -> &impl ReadableTable<&'static [u8; 32], &'static [u8]> {
        &self.shards
    }
    fn xattrs_table(&self) -> &impl ReadableTable<(u64, &'static str), &'static [u8]> {
        &self.xattrs
    }
    fn nodes_table(&self) -> &impl ReadableTable<u64, &'static str> {
        &self.nodes
    }
    fn node_admin_table(&self) -> &impl ReadableTable<u64, &'static [u8]> {
        &self.node_admin
    }
    fn orphans_table(&self) -> &impl ReadableTable<u64, ()> {
        &self.orphans
    }
    fn meta_table(&self) -> &impl ReadableTable<&'static str, &'static [u8]> {
        &self.meta
    }
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
    /// Every change made through these tables, in order: the transaction's record in the
    /// write-ahead log (`wal.rs`).
    redo: Vec<Op>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> WireResult<Tables<'t>> {
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
            redo: Vec::new(),
        })
    }

    /// The changes made so far, for the log.
    pub(super) fn take_redo(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.redo)
    }

    /// Repeats one logged change (replay at start). Not recorded again.
    pub(super) fn apply(&mut self, op: Op) -> WireResult<()> {
        match op {
            Op::PutInode(k, v) => drop(self.inodes.insert(k, v.as_slice()).wire()?),
            Op::RemoveInode(k) => drop(self.inodes.remove(k).wire()?),
            Op::PutDirent(d, n, v) => {
                drop(self.dirents.insert((d, n.as_str()), v.as_slice()).wire()?)
            }
            Op::RemoveDirent(d, n) => drop(self.dirents.remove((d, n.as_str())).wire()?),
            Op::PutLayout(i, x, id, len) => drop(self.layout.insert((i, x), (&id, len)).wire()?),
            Op::RemoveLayout(i, x) => drop(self.layout.remove((i, x)).wire()?),
            Op::PutShard(id, v) => drop(self.shards.insert(&id, v.as_slice()).wire()?),
            Op::RemoveShard(id) => drop(self.shards.remove(&id).wire()?),
            Op::PutXattr(i, n, v) => {
                drop(self.xattrs.insert((i, n.as_str()), v.as_slice()).wire()?)
            }
            Op::RemoveXattr(i, n) => drop(self.xattrs.remove((i, n.as_str())).wire()?),
            Op::PutNode(id, a) => drop(self.nodes.insert(id, a.as_str()).wire()?),
            Op::RemoveNode(id) => drop(self.nodes.remove(id).wire()?),
            Op::PutNodeAdmin(id, v) => drop(self.node_admin.insert(id, v.as_slice()).wire()?),
            Op::SetOrphan(i, true) => drop(self.orphans.insert(i, ()).wire()?),
            Op::SetOrphan(i, false) => drop(self.orphans.remove(i).wire()?),
            Op::PutMeta(k, v) => drop(self.meta.insert(k.as_str(), v.as_slice()).wire()?),
        }
        Ok(())
    }

    /// The checkpoint's LSN (see `wal.rs`); not logged itself.
    pub(super) fn put_checkpoint_lsn(&mut self, lsn: u64) -> WireResult<()> {
        self.meta
            .insert(META_CHECKPOINT_LSN, lsn.to_le_bytes().as_slice())
            .wire()?;
        Ok(())
    }

    pub fn put_inode(&mut self, ino: Ino, inode: &Inode) -> WireResult<()> {
        self.log(Op::PutInode(ino, encode(inode)?))
    }

    pub fn remove_inode(&mut self, ino: Ino) -> WireResult<()> {
        self.log(Op::RemoveInode(ino))
    }

    /// Applies a change and records it for the log.
    fn log(&mut self, op: Op) -> WireResult<()> {
        self.apply(op.clone())?;
        self.redo.push(op);
        Ok(())
    }

    /// Hands out a fresh inode number. Numbers are never reused, so a stale number held
    /// by a client can only ever be `NotFound`, never someone else's file.
    pub fn alloc_ino(&mut self) -> WireResult<Ino> {
        let next = self.next_ino()?;
        self.log(Op::PutMeta(
            META_NEXT_INO.into(),
            next.saturating_add(1).to_le_bytes().to_vec(),
        ))?;
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
        self.log(Op::PutDirent(dir, name.into(), encode(&d)?))
    }

    pub fn remove_dirent(&mut self, dir: Ino, name: &str) -> WireResult<()> {
        self.log(Op::RemoveDirent(dir, name.into()))
    }

    pub fn put_layout(&mut self, ino: Ino, index: u64, id: &ShardId, len: u32) -> WireResult<()> {
        self.log(Op::PutLayout(ino, index, id.0, len))
    }

    pub fn remove_layout(&mut self, ino: Ino, index: u64) -> WireResult<()> {
        self.log(Op::RemoveLayout(ino, index))
    }

    pub fn put_shard(&mut self, id: &ShardId, rec: &ShardRec) -> WireResult<()> {
        self.log(Op::PutShard(id.0, encode(rec)?))
    }

    /// Forgets a shard entirely. Only garbage collection calls this, for a shard no
    /// layout references, so no layout entry is left pointing at a missing record.
    pub fn remove_shard(&mut self, id: &ShardId) -> WireResult<()> {
        self.log(Op::RemoveShard(id.0))
    }

    pub fn put_xattr(&mut self, ino: Ino, name: &str, value: &[u8]) -> WireResult<()> {
        self.log(Op::PutXattr(ino, name.into(), value.to_vec()))
    }

    /// Removes one attribute; false if it was not there.
    pub fn remove_xattr(&mut self, ino: Ino, name: &str) -> WireResult<bool> {
        if self.xattr(ino, name)?.is_none() {
            return Ok(false);
        }
        self.log(Op::RemoveXattr(ino, name.into()))?;
        Ok(true)
    }

    pub fn remove_all_xattrs(&mut self, ino: Ino) -> WireResult<()> {
        for name in self.xattr_names(ino)? {
            self.log(Op::RemoveXattr(ino, name))?;
        }
        Ok(())
    }

    pub fn put_node(&mut self, id: u64, addr: &str) -> WireResult<()> {
        self.log(Op::PutNode(id, addr.into()))
    }

    /// Forgets a node's address (see `RemoveNode`).
    pub fn remove_node(&mut self, id: u64) -> WireResult<()> {
        self.log(Op::RemoveNode(id))
    }

    pub fn set_node_admin(&mut self, id: u64, state: NodeAdmin) -> WireResult<()> {
        self.log(Op::PutNodeAdmin(id, encode(&state)?))
    }

    pub fn set_orphan(&mut self, ino: Ino, orphan: bool) -> WireResult<()> {
        self.log(Op::SetOrphan(ino, orphan))
    }

    pub(super) fn settings(&self) -> WireResult<Option<StoredSettings>> {
        match self.meta_get(META_SETTINGS)? {
            Some(b) => Ok(Some(decode(&b, "settings")?)),
            None => Ok(None),
        }
    }

    pub(super) fn put_settings(&mut self, s: &StoredSettings) -> WireResult<()> {
        self.log(Op::PutMeta(META_SETTINGS.into(), encode(s)?))
    }
}

impl Reader for Tables<'_> {
    fn inodes_table(&self) -> &impl ReadableTable<u64, &'static [u8]> {
        &self.inodes
    }
    fn dirents_table(&self) -> &impl ReadableTable<(u64, &'static str), &'static [u8]> {
        &self.dirents
    }
    fn layout_table(&self) -> &impl ReadableTable<(u64, u64), (&'static [u8; 32], u32)> {
        &self.layout
    }
    fn shards_table(&self) -> &impl ReadableTable<&'static [u8; 32], &'static [u8]> {
        &self.shards
    }
    fn xattrs_table(&self) -> &impl ReadableTable<(u64, &'static str), &'static [u8]> {
        &self.xattrs
    }
    fn nodes_table(&self) -> &impl ReadableTable<u64, &'static str> {
        &self.nodes
    }
    fn node_admin_table(&self) -> &impl ReadableTable<u64, &'static [u8]> {
        &self.node_admin
    }
    fn orphans_table(&self) -> &impl ReadableTable<u64, ()> {
        &self.orphans
    }
    fn meta_table(&self) -> &impl ReadableTable<&'static str, &'static [u8]> {
        &self.meta
    }
}
