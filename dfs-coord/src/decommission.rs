//! Taking a node out of service: `DrainNode` (move its data elsewhere), `RemoveNode`
//! (forget it), and `Locate` (where every copy of a shard is recorded), which lets an
//! administrator watch the data move.
//!
//! Draining reuses repair instead of having its own copy machinery. A draining node's
//! copies simply stop counting towards the replication factor (`registry.rs`), so every
//! shard it holds looks under-replicated, and the next maintenance passes copy it to other
//! nodes, node to node, throttled by `repair_rate` like any repair. The draining node's
//! copy stays readable (and a source to copy from) until the shard has its `replicas`
//! copies elsewhere; only then does surplus removal delete it (`repair.rs`). So a drain
//! never lowers a shard's redundancy, even if it is started on the wrong node.
//!
//! A drain is done when the node holds no copy of a shard any file uses. `Status` reports
//! what is left per node ([`drain_left`]), which `dfs node drain` polls.
//!
//! Removal is the point of no return: the node's locations are dropped from every shard
//! record and its id is remembered as removed, so if the machine comes back it is
//! refused instead of quietly rejoining with stale data. To join again it must wipe its
//! data directory, which gives it a new random id (`dfs-node`'s `node.id`).

use crate::events::EventKind;
use crate::events::Events;
use crate::meta::Meta;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::store::Reader;
use crate::store::{NodeAdmin, ReadTables};
use dfs_proto::coord_msg::MAX_LAYOUT_PAGE;
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::{info, warn};

/// What removing a node changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Removal {
    /// Shard locations dropped.
    pub locations: u64,
    /// Referenced shards whose only copy was on the node.
    pub only_copies: u64,
}

/// For each draining node, the referenced shards (count, bytes) still recorded on it:
/// what the drain has yet to move.
pub(crate) fn drain_left(
    r: &ReadTables,
    draining: &[NodeId],
) -> WireResult<HashMap<NodeId, (u64, u64)>> {
    let mut left: HashMap<NodeId, (u64, u64)> = HashMap::new();
    if draining.is_empty() {
        return Ok(left);
    }
    for (_, rec) in r.all_shards()? {
        if rec.refs == 0 {
            // Garbage: nothing depends on it, and garbage collection deletes it anyway.
            continue;
        }
        for d in draining {
            if rec.locations.contains(&d.0) {
                let e = left.entry(*d).or_default();
                e.0 += 1;
                e.1 += u64::from(rec.size);
            }
        }
    }
    Ok(left)
}

/// Draining and removing nodes, and locating shards for `dfs where`.
pub(crate) struct Decommission {
    meta: Meta,
    registry: Shared<Registry>,
    events: Arc<Events>,
}

impl Decommission {
    pub fn new(meta: Meta, registry: Shared<Registry>, events: Arc<Events>) -> Decommission {
        Decommission {
            meta,
            registry,
            events,
        }
    }

    /// `DrainNode`: see the module comment.
    pub(crate) async fn drain_node(&self, node: NodeId) -> WireResult<()> {
        let already = {
            let reg = self.registry.lock();
            match reg.nodes.get(&node) {
                Some(e) => e.draining,
                None => {
                    return Err(WireError::not_found(format!(
                        "no node {node} in this cluster"
                    )))
                }
            }
        };
        if already {
            return Ok(());
        }
        // Persist first: once the administrator is told the drain started, a coordinator
        // restart must not silently cancel it.
        self.meta
            .write_bg(move |t| t.set_node_admin(node.0, NodeAdmin::Draining))
            .await?;
        self.registry.lock().set_draining(node)?;
        let text = format!(
            "node {node} is draining: no new shards; its shards are being copied elsewhere"
        );
        info!("{text}");
        self.events.record(EventKind::Drain, text);
        Ok(())
    }

    /// `RemoveNode`: see the module comment. Refused while some referenced shard has no
    /// copy on any other known node, unless `force`.
    pub(crate) async fn remove_node(&self, node: NodeId, force: bool) -> WireResult<Removal> {
        // Other nodes the coordinator knows: a location on an unknown id is stale.
        let others: HashSet<u64> = {
            let reg = self.registry.lock();
            if !reg.is_known(node) {
                return Err(WireError::not_found(format!(
                    "no node {node} in this cluster"
                )));
            }
            reg.nodes
                .keys()
                .filter(|n| **n != node)
                .map(|n| n.0)
                .collect()
        };
        let removal = self
            .meta
            .write_bg(move |t| {
                let mut out = Removal::default();
                let mut first_only: Option<ShardId> = None;
                let mut changed = Vec::new();
                for (id, mut rec) in t.all_shards()? {
                    if !rec.locations.contains(&node.0) {
                        continue;
                    }
                    let elsewhere = rec.locations.iter().any(|n| others.contains(n));
                    if rec.refs > 0 && !elsewhere {
                        out.only_copies += 1;
                        first_only.get_or_insert(id);
                    }
                    rec.locations.retain(|n| *n != node.0);
                    out.locations += 1;
                    changed.push((id, rec));
                }
                if let (Some(id), false) = (first_only, force) {
                    // Returning an error aborts the transaction: nothing is changed.
                    return Err(WireError::new(
                        ErrorCode::NotPermitted,
                        format!(
                            "node {node} holds the only copy of {} shard(s) (for example \
                             {id}); drain it first (`dfs node drain {node}`), or force the \
                             removal and lose that data",
                            out.only_copies
                        ),
                    ));
                }
                for (id, rec) in &changed {
                    t.put_shard(id, rec)?;
                }
                t.remove_node(node.0)?;
                t.set_node_admin(node.0, NodeAdmin::Removed)?;
                Ok(out)
            })
            .await?;
        self.registry.lock().remove(node);
        if removal.only_copies > 0 {
            warn!(
                "node {node} removed by force: {} shard(s) lost their only copy",
                removal.only_copies
            );
        }
        let text = format!(
            "node {node} removed: {} shard locations forgotten; it is refused if it registers \
             again",
            removal.locations
        );
        info!("{text}");
        self.events.record(EventKind::Drain, text);
        Ok(removal)
    }

    /// `Locate`: every recorded location of each shard.
    pub(crate) async fn locate(&self, shards: Vec<ShardId>) -> WireResult<Vec<Vec<NodeId>>> {
        if shards.len() > MAX_LAYOUT_PAGE as usize {
            return Err(WireError::invalid(format!(
                "{} shards asked for; at most {MAX_LAYOUT_PAGE} per request",
                shards.len()
            )));
        }
        self.meta
            .read_bg(move |r| {
                shards
                    .iter()
                    .map(|id| {
                        Ok(r.shard(id)?
                            .map(|rec| rec.locations.into_iter().map(NodeId).collect())
                            .unwrap_or_default())
                    })
                    .collect()
            })
            .await
    }
}
