//! The node registry: which storage nodes exist, where they listen, how full they are, and
//! whether they are alive.
//!
//! Liveness is inferred from heartbeats: a node that has not been heard from for
//! `node_timeout` is marked Down. Down is a guess (the node may only be cut off), so it
//! changes nothing on disk: its shards keep their recorded locations, it simply gets no
//! new shards and is left out of the holders clients are told to read from. When it
//! heartbeats again it is Up again.
//!
//! The registry is in memory. Only each node's address and administrative state
//! (draining, removed) are persisted; after a coordinator restart every known node is Down
//! until it registers, because nothing proves it alive.
//!
//! Draining is the administrator's way to empty a node before taking it away: a draining
//! node stays readable, but gets no new shards and its copies do not count towards the
//! replication factor, so repair sees its shards as under-replicated and copies them
//! elsewhere (see `decommission.rs`).

use crate::events::{EventKind, Events};
use crate::store::{NodeAdmin, Reader, Tables};
use dfs_proto::coord_msg::{NodeInfo, NodeState};
use dfs_proto::node_msg::NodeStats;
use dfs_proto::{NodeId, ShardId, WireError, WireResult};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long bytes promised to a node by `Place` count against its free space if no
/// heartbeat arrives to report the real figure.
pub(crate) const RESERVATION_TTL: Duration = Duration::from_secs(10);

/// How long after a coordinator starts the nodes it knows from its store, but has not
/// heard from yet, are offered to readers (see [`Registry::unconfirmed`]).
pub(crate) const UNCONFIRMED_READ_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct NodeEntry {
    pub addr: String,
    pub state: NodeState,
    pub stats: NodeStats,
    /// None until the node is heard from after this coordinator started.
    pub last_seen: Option<Instant>,
    /// Bytes placed on this node that its last heartbeat could not yet include.
    pub reserved: u64,
    pub reserved_at: Option<Instant>,
    /// Smooth weighted round-robin state (see `placement`).
    pub cursor: i128,
    /// When the node was last seen going Down (or, for a node known only from the store,
    /// when this coordinator started): repair waits `repair_grace` from here.
    pub down_since: Option<Instant>,
    /// When the node last became Up. The most recent comer is the one whose copies are
    /// surplus when a shard has too many.
    pub up_since: Option<Instant>,
    /// Being drained (see the module comment).
    pub draining: bool,
}

impl NodeEntry {
    fn new(addr: String) -> NodeEntry {
        NodeEntry {
            addr,
            state: NodeState::Down,
            stats: NodeStats::default(),
            last_seen: None,
            reserved: 0,
            reserved_at: None,
            cursor: 0,
            down_since: None,
            up_since: None,
            draining: false,
        }
    }

    /// Free bytes net of recent placements.
    pub fn available(&self, now: Instant) -> u64 {
        let reserved = match self.reserved_at {
            Some(at) if now.saturating_duration_since(at) < RESERVATION_TTL => self.reserved,
            _ => 0,
        };
        self.stats.free.saturating_sub(reserved)
    }

    pub fn reserve(&mut self, bytes: u64, now: Instant) {
        if self.available(now) == self.stats.free {
            // The previous reservation has expired.
            self.reserved = 0;
        }
        self.reserved = self.reserved.saturating_add(bytes);
        self.reserved_at = Some(now);
    }

    pub fn unreserve(&mut self, bytes: u64) {
        self.reserved = self.reserved.saturating_sub(bytes);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub nodes: BTreeMap<NodeId, NodeEntry>,
    /// Shards listed so far by each node's inventory in progress.
    inventories: HashMap<NodeId, HashSet<ShardId>>,
    /// Nodes an administrator removed: refused if they register again.
    removed: HashSet<NodeId>,
    /// Where nodes going up and down are recorded for the cluster view; shared with the
    /// [`Coordinator`](crate::Coordinator).
    pub events: Arc<Events>,
}

impl Registry {
    /// Nodes known from the store, all Down (since `now`) until they register, with the
    /// administrative states recorded for them.
    pub fn load(known: Vec<(u64, String)>, admin: &[(u64, NodeAdmin)], now: Instant) -> Registry {
        let mut nodes: BTreeMap<NodeId, NodeEntry> = known
            .into_iter()
            .map(|(id, addr)| {
                let mut e = NodeEntry::new(addr);
                e.down_since = Some(now);
                (NodeId(id), e)
            })
            .collect();
        let mut removed = HashSet::new();
        for (id, state) in admin {
            match state {
                NodeAdmin::Draining => {
                    if let Some(e) = nodes.get_mut(&NodeId(*id)) {
                        e.draining = true;
                    }
                }
                NodeAdmin::Removed => {
                    removed.insert(NodeId(*id));
                }
            }
        }
        Registry {
            nodes,
            inventories: HashMap::new(),
            removed,
            events: Arc::default(),
        }
    }

    /// Whether an administrator removed this node (it may not register again).
    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// Marks a known node draining; `NotFound` if the node is unknown.
    pub fn set_draining(&mut self, id: NodeId) -> WireResult<()> {
        match self.nodes.get_mut(&id) {
            Some(e) => {
                e.draining = true;
                Ok(())
            }
            None => Err(WireError::not_found(format!(
                "no node {id} in this cluster"
            ))),
        }
    }

    /// Forgets a node for good (see `RemoveNode`).
    pub fn remove(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.inventories.remove(&id);
        self.removed.insert(id);
    }

    /// A node (re)starts; it is Up from now on.
    pub fn register(&mut self, id: NodeId, addr: &str, stats: NodeStats, now: Instant) {
        let known = self.nodes.contains_key(&id);
        let e = self
            .nodes
            .entry(id)
            .or_insert_with(|| NodeEntry::new(addr.to_string()));
        let text = if known {
            format!("node {id} is back at {addr}")
        } else {
            format!("node {id} registered at {addr}")
        };
        info!("{text}");
        self.events.record(EventKind::NodeUp, text);
        e.addr = addr.to_string();
        if !known || e.state == NodeState::Down {
            e.up_since = Some(now);
        }
        e.state = NodeState::Up;
        e.stats = stats;
        e.last_seen = Some(now);
        e.reserved = 0;
        e.reserved_at = None;
    }

    pub fn heartbeat(&mut self, id: NodeId, stats: NodeStats, now: Instant) -> WireResult<()> {
        let Some(e) = self.nodes.get_mut(&id) else {
            return Err(WireError::not_found(format!(
                "node {id} is not registered (register first)"
            )));
        };
        if e.last_seen.is_none() {
            // Known from the store but not registered since this coordinator started:
            // its inventory may be stale, so it must register (and send it) first.
            return Err(WireError::not_found(format!(
                "node {id} has not registered with this coordinator yet"
            )));
        }
        if e.state == NodeState::Down {
            let text = format!("node {id} at {} is up again", e.addr);
            info!("{text}");
            self.events.record(EventKind::NodeUp, text);
            e.state = NodeState::Up;
            e.up_since = Some(now);
        }
        e.stats = stats;
        e.last_seen = Some(now);
        // The node's `free` now includes the shards it has stored so far.
        e.reserved = 0;
        e.reserved_at = None;
        Ok(())
    }

    /// Marks Down every Up node silent for longer than `timeout`.
    pub fn tick(&mut self, now: Instant, timeout: Duration) {
        for (id, e) in &mut self.nodes {
            if e.state != NodeState::Up {
                continue;
            }
            let Some(seen) = e.last_seen else { continue };
            let silent = now.saturating_duration_since(seen);
            if silent > timeout {
                e.state = NodeState::Down;
                e.down_since = Some(now);
                let text = format!(
                    "node {id} at {} is down: no heartbeat for {:.1}s",
                    e.addr,
                    silent.as_secs_f64()
                );
                warn!("{text}");
                self.events.record(EventKind::NodeDown, text);
            }
        }
    }

    /// How each known node counts as a shard holder for maintenance at `now`; nodes
    /// missing from the map are unknown and count as [`Holder::Gone`].
    pub fn holders(&self, now: Instant, repair_grace: Duration) -> HashMap<NodeId, Holder> {
        self.nodes
            .iter()
            .map(|(id, e)| {
                let h = match e.state {
                    NodeState::Up => Holder::Up {
                        addr: e.addr.clone(),
                        since: e.up_since,
                        draining: e.draining,
                    },
                    // A draining node's copies do not count anyway: no grace to wait for.
                    NodeState::Down if e.draining => Holder::Gone,
                    NodeState::Down => {
                        let down_for = e
                            .down_since
                            .map_or(Duration::ZERO, |d| now.saturating_duration_since(d));
                        if down_for > repair_grace {
                            Holder::Gone
                        } else {
                            Holder::Waiting
                        }
                    }
                };
                (*id, h)
            })
            .collect()
    }

    pub fn is_known(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Up nodes and their addresses.
    pub fn up(&self) -> HashMap<NodeId, String> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.state == NodeState::Up)
            .map(|(id, e)| (*id, e.addr.clone()))
            .collect()
    }

    /// Nodes known from the store that have not been heard from since this coordinator
    /// started, during its first `window`. Readers are offered them as holders of the
    /// shards they are recorded with, after the live ones: a coordinator restart loses
    /// only the registry, not the nodes, which are almost always still there and
    /// register again within a second. Without this, every read in that second fails for
    /// want of a live holder. A reader verifies what it gets, and a node that is really
    /// gone costs it one node deadline before the next holder; no writes go there.
    pub fn unconfirmed(&self, now: Instant, window: Duration) -> HashMap<NodeId, String> {
        self.nodes
            .iter()
            .filter(|(id, e)| {
                e.last_seen.is_none()
                    && !self.removed.contains(id)
                    && e.down_since
                        .is_some_and(|t| now.saturating_duration_since(t) < window)
            })
            .map(|(id, e)| (*id, e.addr.clone()))
            .collect()
    }

    /// Up nodes that are not draining: those whose copies count towards the replication
    /// factor.
    pub fn counted(&self) -> HashMap<NodeId, String> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.state == NodeState::Up && !e.draining)
            .map(|(id, e)| (*id, e.addr.clone()))
            .collect()
    }

    /// Draining nodes.
    pub fn draining(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.draining)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Sum of (capacity, used, free) over Up nodes that are not draining: the space new
    /// data can use (a draining node's is about to leave).
    pub fn up_totals(&self) -> (u64, u64, u64) {
        self.nodes
            .values()
            .filter(|e| e.state == NodeState::Up && !e.draining)
            .fold((0u64, 0u64, 0u64), |(c, u, f), e| {
                (
                    c.saturating_add(e.stats.capacity),
                    u.saturating_add(e.stats.used),
                    f.saturating_add(e.stats.free),
                )
            })
    }

    pub fn infos(&self, now: Instant) -> Vec<NodeInfo> {
        self.nodes
            .iter()
            .map(|(id, e)| NodeInfo {
                id: *id,
                addr: e.addr.clone(),
                state: e.state,
                stats: e.stats,
                last_seen_ms: e
                    .last_seen
                    .map(|s| {
                        u64::try_from(now.saturating_duration_since(s).as_millis())
                            .unwrap_or(u64::MAX)
                    })
                    .unwrap_or(u64::MAX),
                draining: e.draining,
                // Filled in by `Status`, which scans the shard records.
                drain_shards_left: 0,
                drain_bytes_left: 0,
            })
            .collect()
    }

    /// A write stored shard `id` on `node`. If the node is in the middle of sending its
    /// inventory, that inventory was listed before this shard arrived: count the shard as
    /// listed, or reconciliation at the last part would forget a location that is real.
    pub fn note_stored(&mut self, node: NodeId, id: ShardId) {
        if let Some(set) = self.inventories.get_mut(&node) {
            set.insert(id);
        }
    }

    /// Adds one inventory part to the node's set. On the `last` part the complete set is
    /// handed back (and forgotten here) so the caller can reconcile locations.
    pub fn inventory_part(
        &mut self,
        id: NodeId,
        shards: &[ShardId],
        first: bool,
        last: bool,
    ) -> Option<HashSet<ShardId>> {
        if first {
            self.inventories.insert(id, HashSet::new());
        }
        let set = self.inventories.entry(id).or_default();
        set.extend(shards.iter().copied());
        if last {
            self.inventories.remove(&id)
        } else {
            None
        }
    }
}

/// A recorded location as maintenance sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Up: its copy can be read, copied from or deleted. A draining node's copy does not
    /// count towards the replication factor, but is still a source to copy from.
    Up {
        addr: String,
        since: Option<Instant>,
        draining: bool,
    },
    /// Down for less than the repair grace: probably restarting, so its copy still counts
    /// and nothing is done about it yet.
    Waiting,
    /// Down for longer than the repair grace, or unknown: its copy no longer counts.
    Gone,
}

/// What one inventory part changed, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct InventoryCounts {
    /// Listed shards the coordinator knows.
    pub known: u64,
    /// Listed shards no layout has ever referenced: leftovers of failed writes, or data
    /// from another cluster. Not recorded; garbage collection deletes them after a grace.
    pub orphans: u64,
    /// The orphans' ids, for garbage collection.
    pub unknown: Vec<ShardId>,
    /// Locations on this node forgotten because the complete inventory did not list them.
    pub forgotten: u64,
}

/// Applies one inventory part: the node holds the listed shards. With `complete` (the
/// whole inventory, given on the last part), every shard NOT in it loses this node as a
/// location: the node lost it (disk replaced, file deleted) and readers must not be sent
/// there.
pub(crate) fn apply_inventory(
    t: &mut Tables<'_>,
    node: NodeId,
    shards: &[ShardId],
    complete: Option<&HashSet<ShardId>>,
) -> WireResult<InventoryCounts> {
    let mut c = InventoryCounts::default();
    for id in shards {
        match t.shard(id)? {
            Some(mut rec) => {
                c.known += 1;
                if !rec.locations.contains(&node.0) {
                    rec.locations.push(node.0);
                    t.put_shard(id, &rec)?;
                }
            }
            None => {
                c.orphans += 1;
                c.unknown.push(*id);
            }
        }
    }
    if let Some(all) = complete {
        for (id, mut rec) in t.all_shards()? {
            if rec.locations.contains(&node.0) && !all.contains(&id) {
                rec.locations.retain(|n| *n != node.0);
                t.put_shard(&id, &rec)?;
                c.forgotten += 1;
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(free: u64) -> NodeStats {
        NodeStats {
            capacity: free,
            used: 0,
            free,
            shards: 0,
        }
    }

    #[test]
    fn down_after_timeout_and_back() {
        let mut r = Registry::default();
        let t0 = Instant::now();
        r.register(NodeId(1), "a:1", stats(10), t0);
        r.tick(t0 + Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(r.up().len(), 1);
        r.tick(t0 + Duration::from_secs(6), Duration::from_secs(5));
        assert!(r.up().is_empty());
        r.heartbeat(NodeId(1), stats(10), t0 + Duration::from_secs(7))
            .unwrap();
        assert_eq!(r.up().len(), 1);
        assert!(r.heartbeat(NodeId(2), stats(1), t0).is_err());
    }

    #[test]
    fn loaded_nodes_are_down_until_registered() {
        let mut r = Registry::load(vec![(7, "x:1".into())], &[], Instant::now());
        assert!(r.up().is_empty());
        assert!(r.heartbeat(NodeId(7), stats(1), Instant::now()).is_err());
        r.register(NodeId(7), "x:2", stats(1), Instant::now());
        assert_eq!(r.up()[&NodeId(7)], "x:2");
    }

    #[test]
    fn reservations_expire_and_clear_on_heartbeat() {
        let t0 = Instant::now();
        let mut e = NodeEntry::new("a".into());
        e.stats = stats(100);
        e.reserve(30, t0);
        assert_eq!(e.available(t0), 70);
        assert_eq!(e.available(t0 + RESERVATION_TTL), 100);
        e.reserve(10, t0 + RESERVATION_TTL);
        assert_eq!(e.available(t0 + RESERVATION_TTL), 90);
    }
}
