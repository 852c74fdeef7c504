//! [`Maint`]: what background maintenance remembers between passes, in memory only.
//!
//! After a coordinator restart the clocks here simply start again, which only ever delays
//! a deletion, never hastens one. The request path writes into it too: `Place` and
//! `Touch` record leases (`files.rs`), an inventory records unknown shards (`nodes.rs`),
//! a node's corruption report records the bad copy (`fsck.rs`).

use dfs_proto::{Ino, NodeId, ShardId};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// A repair episode: from the first pass that finds under-replicated shards to the first
/// that finds none, for the start and finish log lines.
#[derive(Debug)]
pub(crate) struct Episode {
    pub started: Instant,
    pub shards: u64,
    pub bytes: u64,
}

/// What maintenance remembers between passes (in memory only, see the module comment).
#[derive(Debug, Default)]
pub(crate) struct Maint {
    /// Repair token bucket: bytes that may still be copied now, refilled at `repair_rate`.
    pub tokens: f64,
    pub refilled_at: Option<Instant>,
    pub episode: Option<Episode>,
    /// Bytes of under-replicated shards still to copy, as of the last pass.
    pub bytes_left: u64,
    pub repaired: u64,
    pub collected: u64,
    /// Corrupt copies reported by nodes since start.
    pub corrupt: u64,
    /// Nodes that reported their copy of a shard corrupt, until the shard is whole again.
    /// Repair prefers other targets: a disk that rotted a shard once is a poor home for
    /// its replacement.
    pub bad_copies: HashMap<ShardId, Vec<NodeId>>,
    /// Shards first seen with no references, and when.
    pub unreferenced_since: HashMap<ShardId, Instant>,
    /// Shards recently handed out by `Place`: a write may be about to reference them.
    pub placed: HashMap<ShardId, Instant>,
    /// The nodes `Place` sent each of those shards to. When the placement expires without
    /// a commit (an aborted write), the copies there are garbage.
    pub placed_on: HashMap<ShardId, Vec<NodeId>>,
    /// Shards a node's inventory listed but the coordinator has no record of, and when
    /// each was first listed.
    pub unknown_seen: HashMap<(NodeId, ShardId), Instant>,
    /// Shards whose copies garbage collection is deleting right now, and on which nodes.
    /// `Place` neither offers those copies as holders nor puts the shard there again.
    pub collecting: HashMap<ShardId, Vec<NodeId>>,
    /// Orphan inodes (unlinked while open), and when a mount last said it still has each
    /// open, or, if none has since this coordinator started, when a pass first saw it.
    pub orphan_seen: HashMap<Ino, Instant>,
}

impl Maint {
    /// Whether `Place` handed out `id` less than `grace` before `now`.
    pub fn recently_placed(&self, id: &ShardId, now: Instant, grace: Duration) -> bool {
        self.placed
            .get(id)
            .is_some_and(|at| now.saturating_duration_since(*at) <= grace)
    }

    /// Records shards a node listed that have no record, starting their grace clock.
    pub fn note_unknown(&mut self, node: NodeId, ids: &[ShardId], now: Instant) {
        for id in ids {
            self.unknown_seen.entry((node, *id)).or_insert(now);
        }
    }

    /// A node's complete inventory no longer lists these: it deleted them itself.
    pub fn forget_unknown(&mut self, node: NodeId, listed: &HashSet<ShardId>) {
        self.unknown_seen
            .retain(|(n, id), _| *n != node || listed.contains(id));
    }
}
