//! The redb tables of the metadata store and the typed accessors every other module uses
//! instead of touching redb directly: [`Reader`] for reads (on a snapshot or inside a write),
//! [`Tables`] for the writes of one transaction.
//!
//! Keys are chosen so that the scans we need are range scans on a B-tree:
//! a directory is the key range `(dir, "")..(dir + 1, "")` of `dirents`, already in name
//! order; a file's layout is `(ino, 0)..(ino + 1, 0)` of `layout`, in shard-index order.

use super::records::{decode, encode, Dirent, Inode, NodeAdmin, ShardRec, StoredSettings, Wire};
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
        })
    }

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

    pub(super) fn settings(&self) -> WireResult<Option<StoredSettings>> {
        match self.meta_get(META_SETTINGS)? {
            Some(b) => Ok(Some(decode(&b, "settings")?)),
            None => Ok(None),
        }
    }

    pub(super) fn put_settings(&mut self, s: &StoredSettings) -> WireResult<()> {
        self.meta
            .insert(META_SETTINGS, encode(s)?.as_slice())
            .wire()?;
        Ok(())
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
