//! Requests to the coordinator: the namespace (POSIX metadata), file layouts (which shards
//! make up a file and where they live), and the registry of storage nodes.
//!
//! Every request gets exactly one [`CoordResponse`] or a [`crate::WireError`]; the
//! comment on each variant names its response.

use crate::ids::{Ino, NodeId, ShardId};
use crate::node_msg::NodeStats;
use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch.
pub type NanoTime = i64;

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

/// POSIX attributes of an inode, as the coordinator stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits including set-user-ID, set-group-ID and sticky (`mode & 0o7777`).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number, for character and block devices.
    pub rdev: u32,
    pub size: u64,
    pub atime: NanoTime,
    pub mtime: NanoTime,
    pub ctime: NanoTime,
    /// Creation time (not settable).
    pub crtime: NanoTime,
    /// Bumped by every commit of new content; lets a client tell whether its cached pages
    /// are still valid on open (close-to-open consistency).
    pub generation: u64,
}

/// Who is asking, as the kernel told the FUSE client. Used for the rules that depend on
/// the caller (ownership of new inodes, set-group-ID inheritance and clearing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    pub const ROOT: Caller = Caller { uid: 0, gid: 0 };
}

/// A time to set with `SetAttr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTime {
    /// The coordinator's clock at the moment of the change (UTIME_NOW).
    Now,
    At(NanoTime),
}

/// Fields to change; `None` leaves a field as it is (so UTIME_OMIT is simply `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttrs {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend. Bytes beyond the new size are gone; a later extension reads zeros.
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

impl SetTime {
    /// The time this stands for, given the clock of whoever applies it.
    pub fn at(self, now: NanoTime) -> NanoTime {
        match self {
            SetTime::Now => now,
            SetTime::At(v) => v,
        }
    }
}

impl SetAttrs {
    /// True if this changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SetAttrs::default()
    }

    /// Applies every field but `size` to `a`, by the rules the coordinator keeps: the
    /// coordinator's `SetAttr` and a mount that folds a `setattr` into its next commit
    /// both call this, so the attributes the mount shows before the commit are the ones
    /// the coordinator will store. Sets `ctime` to `now`.
    pub fn apply_meta(&self, a: &mut Attr, now: NanoTime) {
        if let Some(perm) = self.perm {
            a.perm = perm & 0o7777;
        }
        if self.uid.is_some() || self.gid.is_some() {
            if let Some(uid) = self.uid {
                a.uid = uid;
            }
            if let Some(gid) = self.gid {
                a.gid = gid;
            }
            // chown of a program must not hand the new owner's privileges to it. An
            // explicit mode in the same request wins (the caller said exactly what it
            // wants).
            if a.kind != FileKind::Dir && self.perm.is_none() {
                a.perm = clear_setid(a.perm);
            }
        }
        if let Some(t) = self.atime {
            a.atime = t.at(now);
        }
        if let Some(t) = self.mtime {
            a.mtime = t.at(now);
        }
        a.ctime = now;
    }

    /// Merges a later change into this one: the later value of each field wins.
    pub fn merge(&mut self, later: &SetAttrs) {
        fn pick<T: Copy>(a: &mut Option<T>, b: Option<T>) {
            if b.is_some() {
                *a = b;
            }
        }
        pick(&mut self.perm, later.perm);
        pick(&mut self.uid, later.uid);
        pick(&mut self.gid, later.gid);
        pick(&mut self.size, later.size);
        pick(&mut self.atime, later.atime);
        pick(&mut self.mtime, later.mtime);
    }
}

/// `perm` without set-user-ID, and without set-group-ID if the group may execute (a
/// set-group-ID bit without group execute means mandatory locking, not privilege).
pub fn clear_setid(perm: u32) -> u32 {
    let mut p = perm & !0o4000;
    if p & 0o010 != 0 {
        p &= !0o2000;
    }
    p
}

/// One entry of a directory listing, with its attributes (readdirplus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
    /// The inode had extended attributes when listed. `ls -l` asks for two of them per
    /// entry (`security.selinux`, `system.posix_acl_access`); when this is false the mount
    /// answers "none" itself for the attribute TTL, instead of two round trips per entry.
    pub xattrs: bool,
}

/// A page of a directory listing, in name order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirPage {
    /// Inode of the directory's parent (the root's parent is the root), for `..`.
    pub parent: Ino,
    pub entries: Vec<DirEntry>,
    /// More entries follow the last one of this page.
    pub more: bool,
}

/// A node's address as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub id: NodeId,
    /// `host:port` of the node's QUIC endpoint.
    pub addr: String,
}

/// One shard of a file's layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutShard {
    /// Shard index in the file: it covers file bytes from `index * shard_size`.
    pub index: u64,
    pub id: ShardId,
    /// Bytes of the shard's content that belong to the file (a truncate may leave this
    /// shorter than the shard itself). File bytes between `len` and the next shard, or the
    /// end of file, read as zeros.
    pub len: u32,
    /// Live nodes believed to hold the shard, best first. Nodes that are down are left out.
    pub holders: Vec<NodeAddr>,
}

/// Which shards make up a file, and where they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    pub attr: Attr,
    pub shard_size: u32,
    /// Shards with index in `[from, from + limit)` of the request, in index order. Missing
    /// indexes are holes (zeros).
    pub shards: Vec<LayoutShard>,
    /// More shards exist beyond this page.
    pub more: bool,
}

/// Where to store a new shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placement {
    pub id: ShardId,
    /// Live nodes that already hold this content (identical shards are stored once).
    pub holders: Vec<NodeAddr>,
    /// Nodes to PUT the shard to. Empty when enough live holders exist already.
    pub targets: Vec<NodeAddr>,
    /// How many copies (holders + successful targets) the write needs to succeed.
    pub min_copies: u32,
}

/// One shard of a commit: the file's shard `index` is now `id`, stored on `stored_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitShard {
    pub index: u64,
    pub id: ShardId,
    /// Bytes of the shard that belong to the file.
    pub len: u32,
    /// Full size of the shard's content.
    pub shard_len: u32,
    /// Nodes that acknowledged storing it in this write (may be empty if it was already held).
    pub stored_on: Vec<NodeId>,
}

/// Cluster capacity, for statfs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FsStats {
    pub capacity: u64,
    pub used: u64,
    pub free: u64,
    pub inodes: u64,
    pub shard_size: u32,
    pub replicas: u32,
}

/// Liveness of a node as the coordinator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    Up,
    /// Missed heartbeats for longer than the configured timeout: gets no new shards.
    Down,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub addr: String,
    pub state: NodeState,
    pub stats: NodeStats,
    /// Milliseconds since the last heartbeat.
    pub last_seen_ms: u64,
    /// An administrator asked to drain the node (`DrainNode`): it gets no new shards and
    /// its copies no longer count towards the replication factor. Persisted.
    pub draining: bool,
    /// Progress of a drain: referenced shards still recorded on this node (0 when not
    /// draining). A copy leaves once the shard has `replicas` copies on other nodes, so
    /// at 0 the node can be removed without losing redundancy.
    pub drain_shards_left: u64,
    /// The bytes of those shards.
    pub drain_bytes_left: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeInfo>,
    pub replicas: u32,
    pub shard_size: u32,
    /// Shards recorded with fewer live copies than the replication factor.
    pub under_replicated: u64,
    pub shards: u64,
    pub inodes: u64,
    pub repair: RepairStatus,
}

/// `Rename` flags (Linux renameat2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameFlags {
    /// RENAME_NOREPLACE: fail with `Exists` if the target exists.
    pub noreplace: bool,
    /// RENAME_EXCHANGE: swap the two entries atomically.
    pub exchange: bool,
}

/// `SetXattr` mode (XATTR_CREATE / XATTR_REPLACE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum XattrMode {
    #[default]
    Any,
    /// Fail with `Exists` if the attribute exists.
    Create,
    /// Fail with `NoAttr` if it does not.
    Replace,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CoordRequest {
    // ---- namespace -------------------------------------------------------------------
    /// -> `Attr` of the entry `name` in directory `parent`.
    Lookup { parent: Ino, name: String },
    /// -> `Attr`.
    GetAttr { ino: Ino },
    /// -> `Attr` after the change. ctime changes with every successful change.
    SetAttr {
        ino: Ino,
        caller: Caller,
        set: SetAttrs,
    },
    /// Creates a regular file, directory, FIFO, socket or device node. `perm` already has
    /// the umask applied. -> `Attr` of the new inode; `Exists` if the name is taken.
    Create {
        parent: Ino,
        name: String,
        kind: FileKind,
        perm: u32,
        rdev: u32,
        caller: Caller,
    },
    /// -> `Attr` of the new symlink.
    Symlink {
        parent: Ino,
        name: String,
        target: String,
        caller: Caller,
    },
    /// -> `Target`.
    Readlink { ino: Ino },
    /// New name for an existing non-directory inode. -> `Attr` (with the new link count).
    Link {
        ino: Ino,
        new_parent: Ino,
        new_name: String,
    },
    /// Removes a non-directory entry. If `keep` and the last link goes, the inode (and its
    /// shards) stay until `Release` because this client still has it open. -> `Unit`.
    Unlink {
        parent: Ino,
        name: String,
        keep: bool,
    },
    /// Removes an empty directory. -> `Unit`; `NotEmpty`, `NotDir`.
    Rmdir { parent: Ino, name: String },
    /// Several removals in one round trip, applied in order, each as a change of its own
    /// (one failing does not stop the others): the unlinks a mount acknowledged without
    /// waiting (`dfs-fuse/src/removals.rs`), and possibly an `rmdir` that waits for its
    /// answer, last. An unlink here never keeps the inode (the sender has it open
    /// nowhere). At most [`MAX_REMOVE_BATCH`] removals. -> `Results`, one per removal, in
    /// order.
    RemoveBatch { ops: Vec<Removal> },
    /// -> `Unit`. Replaces an existing target atomically unless `flags.noreplace`.
    Rename {
        parent: Ino,
        name: String,
        new_parent: Ino,
        new_name: String,
        flags: RenameFlags,
    },
    /// Entries after `after` (exclusive) in name order, at most `limit`. -> `Dir`.
    ReadDir {
        ino: Ino,
        after: Option<String>,
        limit: u32,
    },
    /// The last open handle of an unlinked file is closed: drop it if no name is left.
    /// -> `Unit`.
    Release { ino: Ino },
    /// -> `Unit`.
    SetXattr {
        ino: Ino,
        name: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        mode: XattrMode,
    },
    /// -> `Bytes`; `NoAttr` if absent.
    GetXattr { ino: Ino, name: String },
    /// -> `Names`.
    ListXattr { ino: Ino },
    /// -> `Unit`; `NoAttr` if absent.
    RemoveXattr { ino: Ino, name: String },
    /// -> `FsStats`.
    StatFs,

    // ---- data layout -----------------------------------------------------------------
    /// Shards of a regular file with index in `[from, from + limit)`. -> `Layout`.
    GetLayout { ino: Ino, from: u64, limit: u32 },
    /// Choose nodes for new shards (`(id, size)` each). -> `Placements`, in request order.
    Place { shards: Vec<(ShardId, u32)> },
    /// Atomically set the file's size and replace the listed shards (indexes not listed
    /// keep their shard; shards past the new size are dropped, the last one clamped).
    /// Clears set-user-ID (and set-group-ID if group-executable) unless `caller` is root,
    /// as a write does on Linux. -> `Attr`.
    ///
    /// `set` (no `size`) is then applied as a `SetAttr` would, in the same transaction:
    /// the `chmod`, `chown` and `utimes` that `tar` and `cp -p` make right after writing
    /// a file, folded into its commit by the mount instead of costing a round trip each.
    Commit {
        ino: Ino,
        size: u64,
        mtime: NanoTime,
        shards: Vec<CommitShard>,
        caller: Caller,
        set: SetAttrs,
    },

    // ---- node registry ---------------------------------------------------------------
    /// A node (re)starts. -> `Registered`.
    Register {
        node: NodeId,
        addr: String,
        stats: NodeStats,
    },
    /// Part of a node's inventory after `Register`; `last` on the final part, after which
    /// the coordinator forgets locations on this node that the inventory did not list.
    /// -> `Unit`.
    Inventory {
        node: NodeId,
        shards: Vec<ShardId>,
        first: bool,
        last: bool,
    },
    /// -> `Unit`; `NotFound` if the coordinator does not know the node (it must register).
    Heartbeat { node: NodeId, stats: NodeStats },
    /// -> `Status`.
    Status,
    /// A node found its copy of `id` corrupt (on read or by its scrubber) and deleted it.
    /// The coordinator forgets that location; repair restores the copy count. -> `Unit`.
    ReportCorrupt { node: NodeId, id: ShardId },
    /// Consistency check of the shard map. -> `Fsck`.
    Fsck,
    /// A live mount renews its leases, every second. `shards`: stored but not yet
    /// committed; garbage collection treats a touched shard like one placed just now, so a
    /// live writer's uploads are never collected however long its write takes. `open`:
    /// files this mount still has open (at least every one it unlinked while open); an
    /// orphan inode (unlinked while open) is deleted once no mount has named it here for
    /// the grace period, so a mount that dies with an unlinked file open does not leak
    /// it. A dead mount's leases expire one grace period (`--gc-grace`) after its last
    /// touch. -> `Unit`.
    Touch {
        shards: Vec<ShardId>,
        open: Vec<Ino>,
    },

    // ---- administration (admin certificate only) -------------------------------------
    /// Every recorded location of each shard, whatever the state of the node (Up, Down,
    /// draining), in request order; an unknown shard has none. At most
    /// [`MAX_LAYOUT_PAGE`] ids. -> `Locations`.
    Locate { shards: Vec<ShardId> },
    /// Starts draining `node`: persisted, so it survives a coordinator restart. Placement
    /// skips the node and its copies stop counting, so repair copies its shards elsewhere
    /// (from it or other holders); each of its copies stays readable until the shard has
    /// its copies elsewhere, and is then deleted. Draining a draining node is a no-op.
    /// -> `Unit`; `NotFound` for an unknown node.
    DrainNode { node: NodeId },
    /// Forgets `node`: its locations are dropped, it leaves the status, and if it
    /// registers again it is refused (`NotPermitted`): a node must wipe its data
    /// directory, and so get a new id, to join again. Refused with `NotPermitted` while
    /// some referenced shard has no copy on any other node, unless `force`.
    /// -> `Removed`; `NotFound` for an unknown node.
    RemoveNode { node: NodeId, force: bool },

    // ---- durability ------------------------------------------------------------------
    /// Make every change acknowledged so far durable: the coordinator waits for its log's
    /// next fsync (a mount's `fsync`/`fsyncdir`). Changes are otherwise made durable by
    /// the log's group fsync within a few milliseconds (at once under `--durable-close`).
    /// -> `Unit`.
    Sync,
}

impl crate::frame::FromFrame for CoordRequest {}

impl crate::frame::ToFrame for CoordResponse {}

impl CoordRequest {
    /// The request's name, in snake case: the `op` label of the RPC metrics and the name
    /// in "may not send" errors.
    ///
    /// This `match` and the one in [`CoordRequest::changes_namespace`] have no wildcard
    /// arm on purpose: a new request does not compile until it is named and classified.
    pub fn name(&self) -> &'static str {
        use CoordRequest as Q;
        match self {
            Q::Lookup { .. } => "lookup",
            Q::GetAttr { .. } => "get_attr",
            Q::SetAttr { .. } => "set_attr",
            Q::Create { .. } => "create",
            Q::Symlink { .. } => "symlink",
            Q::Readlink { .. } => "readlink",
            Q::Link { .. } => "link",
            Q::Unlink { .. } => "unlink",
            Q::Rmdir { .. } => "rmdir",
            Q::RemoveBatch { .. } => "remove_batch",
            Q::Rename { .. } => "rename",
            Q::ReadDir { .. } => "read_dir",
            Q::Release { .. } => "release",
            Q::SetXattr { .. } => "set_xattr",
            Q::GetXattr { .. } => "get_xattr",
            Q::ListXattr { .. } => "list_xattr",
            Q::RemoveXattr { .. } => "remove_xattr",
            Q::StatFs => "stat_fs",
            Q::GetLayout { .. } => "get_layout",
            Q::Place { .. } => "place",
            Q::Commit { .. } => "commit",
            Q::Register { .. } => "register",
            Q::Inventory { .. } => "inventory",
            Q::Heartbeat { .. } => "heartbeat",
            Q::Status => "status",
            Q::ReportCorrupt { .. } => "report_corrupt",
            Q::Fsck => "fsck",
            Q::Touch { .. } => "touch",
            Q::Sync => "sync",
            Q::Locate { .. } => "locate",
            Q::DrainNode { .. } => "drain_node",
            Q::RemoveNode { .. } => "remove_node",
        }
    }

    /// True if sending the request twice has the effect of sending it once, so that a
    /// client may repeat it when the first answer was lost (a coordinator restarting):
    /// every read, and the writes that set state to a value rather than change it by a
    /// step. A repeated `Commit` names the same shards for the same indexes and size (the
    /// second swap replaces each shard by itself); a repeated `SetAttr` sets the same
    /// values. `Create`, `Unlink`, `Rename` and the like are not: the second would fail
    /// with "exists" or "not found" after the first succeeded.
    pub fn is_idempotent(&self) -> bool {
        use CoordRequest as Q;
        !self.changes_namespace()
            || matches!(
                self,
                Q::SetAttr { .. } | Q::Commit { .. } | Q::Release { .. } | Q::Register { .. }
            )
    }

    /// Whether the request may change what a lookup, a listing or an attribute read
    /// answers: names, attributes, extended attributes, sizes (a commit), or the set of
    /// nodes. A client that caches answers (the mount's lookup cache) must drop them when
    /// it sends one of these. `Touch` (lease renewal) and `Place` (choosing nodes for
    /// shards not yet committed) change nothing a reader can see.
    pub fn changes_namespace(&self) -> bool {
        use CoordRequest as Q;
        match self {
            Q::Lookup { .. }
            | Q::GetAttr { .. }
            | Q::Readlink { .. }
            | Q::ReadDir { .. }
            | Q::GetXattr { .. }
            | Q::ListXattr { .. }
            | Q::StatFs
            | Q::GetLayout { .. }
            | Q::Place { .. }
            | Q::Touch { .. }
            | Q::Sync
            | Q::Status
            | Q::Fsck
            | Q::Locate { .. }
            | Q::Heartbeat { .. }
            | Q::Inventory { .. } => false,
            Q::SetAttr { .. }
            | Q::Create { .. }
            | Q::Symlink { .. }
            | Q::Link { .. }
            | Q::Unlink { .. }
            | Q::Rmdir { .. }
            | Q::RemoveBatch { .. }
            | Q::Rename { .. }
            | Q::Release { .. }
            | Q::SetXattr { .. }
            | Q::RemoveXattr { .. }
            | Q::Commit { .. }
            | Q::Register { .. }
            | Q::ReportCorrupt { .. }
            | Q::DrainNode { .. }
            | Q::RemoveNode { .. } => true,
        }
    }
}

/// One removal of a `RemoveBatch`: `unlink` of a non-directory, or `rmdir` if `dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub parent: Ino,
    pub name: String,
    pub dir: bool,
}

/// One shard with a problem, for `Fsck`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardIssue {
    pub id: ShardId,
    /// Copies on live nodes that are not draining (those that count).
    pub live_copies: u32,
    /// Inodes of files that use the shard (at most a few, for the report).
    pub files: Vec<Ino>,
}

/// The result of `Fsck`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FsckReport {
    /// Shards referenced by at least one file.
    pub shards: u64,
    /// Referenced shards with no copy on a live node: data currently unreadable.
    pub missing: Vec<ShardIssue>,
    /// Referenced shards with fewer live copies than the replication factor.
    pub under_replicated: Vec<ShardIssue>,
    /// Shards no file references (awaiting garbage collection), recorded or reported by
    /// nodes.
    pub orphaned: u64,
    /// Corrupt copies reported by nodes since the coordinator started.
    pub corrupt: u64,
}

/// Progress of re-replication, for `Status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RepairStatus {
    /// Shards being copied right now.
    pub in_flight: u64,
    /// Bytes of under-replicated shards still to copy.
    pub bytes_left: u64,
    /// Shards copied since the coordinator started.
    pub repaired: u64,
    /// Shards removed by garbage collection since the coordinator started.
    pub collected: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CoordResponse {
    Unit,
    Attr(Attr),
    Target(String),
    Dir(DirPage),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Names(Vec<String>),
    FsStats(FsStats),
    Layout(Layout),
    Placements(Vec<Placement>),
    Registered {
        /// How often the node should heartbeat.
        heartbeat_ms: u64,
    },
    Status(ClusterStatus),
    Fsck(FsckReport),
    /// For `Locate`: node ids per requested shard.
    Locations(Vec<Vec<NodeId>>),
    /// For `RemoveBatch`: the outcome of each removal, in order.
    Results(Vec<Result<(), crate::WireError>>),
    /// For `RemoveNode`.
    Removed {
        /// Shard locations dropped with the node.
        locations: u64,
        /// Referenced shards whose only copy was on the node (non-zero only with `force`):
        /// their data is now missing.
        only_copies: u64,
    },
}

/// Most removals in one `RemoveBatch`.
pub const MAX_REMOVE_BATCH: usize = 512;
/// Most entries one `ReadDir` page may carry (keeps frames far below the cap).
pub const MAX_DIR_PAGE: u32 = 1024;
/// Most shards one `GetLayout` page may carry.
pub const MAX_LAYOUT_PAGE: u32 = 4096;
/// Most shard IDs in one `Inventory` part.
pub const MAX_INVENTORY_PART: usize = 16384;
