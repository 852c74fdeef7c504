//! The records the metadata store keeps, postcard-encoded, and the conversion of store
//! errors into wire errors.

use dfs_proto::coord_msg::{Attr, FileKind, NanoTime, SetAttrs};
use dfs_proto::{ErrorCode, Ino, WireError, WireResult};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

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

/// The set-user-ID bit of a mode.
pub(crate) const S_ISUID: u32 = 0o4000;
/// The set-group-ID bit; on a directory, new entries inherit its group.
pub(crate) const S_ISGID: u32 = 0o2000;
/// Group execute: without it, set-group-ID on a file means mandatory locking, not a
/// privilege, and Linux leaves it alone.
pub(crate) const S_IXGRP: u32 = 0o010;

impl Inode {
    /// Clears set-user-ID, and set-group-ID if the group may execute, as Linux does when a
    /// file's owner changes or an unprivileged process writes to it. (Set-group-ID without
    /// group-execute means mandatory locking, not privilege, so it stays.)
    pub fn clear_setid(&mut self) {
        self.perm &= !S_ISUID;
        if self.perm & S_IXGRP != 0 {
            self.perm &= !S_ISGID;
        }
    }

    /// Applies mode, owner and times of `set` (and sets ctime), by the rules in
    /// [`SetAttrs::apply_meta`], which a mount also uses to show a change it folded into
    /// a commit before the commit is made.
    pub fn apply_meta(&mut self, ino: Ino, set: &SetAttrs, now: NanoTime) {
        let mut a = self.attr(ino);
        set.apply_meta(&mut a, now);
        self.perm = a.perm;
        self.uid = a.uid;
        self.gid = a.gid;
        self.atime = a.atime;
        self.mtime = a.mtime;
        self.ctime = a.ctime;
    }

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

pub(super) fn encode<T: Serialize>(v: &T) -> WireResult<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| WireError::internal(format!("encode record: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(b: &[u8], what: &str) -> WireResult<T> {
    postcard::from_bytes(b).map_err(|e| WireError::internal(format!("corrupt {what} record: {e}")))
}

/// Shorthand for an error with a code and a message.
pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
}
