//! [`Nodes`]: the requests storage nodes send about themselves — registering, heartbeats
//! and their inventory — and the failure detector that marks silent nodes Down.
//!
//! The registry (`registry.rs`) is the in-memory view of which nodes are alive; the
//! store keeps only what must survive a restart (each node's address and admin state).
//! A restarted coordinator therefore starts with every known node "unconfirmed" until it
//! registers again, which nodes do at once when their connection breaks.

use crate::config::CoordSettings;
use crate::maint::Maint;
use crate::meta::Meta;
use crate::registry::{apply_inventory, Registry};
use crate::shared::Shared;
use dfs_proto::node_msg::NodeStats;
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult};
use std::time::Instant;
use tracing::info;

pub(crate) struct Nodes {
    meta: Meta,
    settings: CoordSettings,
    registry: Shared<Registry>,
    maint: Shared<Maint>,
}

impl Nodes {
    pub fn new(
        meta: Meta,
        settings: CoordSettings,
        registry: Shared<Registry>,
        maint: Shared<Maint>,
    ) -> Nodes {
        Nodes {
            meta,
            settings,
            registry,
            maint,
        }
    }

    /// Admits node `node` at `addr` (again) and returns the heartbeat period it should
    /// keep, in milliseconds.
    pub async fn register(&self, node: NodeId, addr: String, stats: NodeStats) -> WireResult<u64> {
        if self.registry.lock().is_removed(node) {
            // Its locations were forgotten; letting it back in would resurrect stale
            // copies. See decommission.rs.
            return Err(WireError::new(
                ErrorCode::NotPermitted,
                format!(
                    "node {node} was removed from this cluster; wipe its data directory (it \
                     then gets a new id) to join again"
                ),
            ));
        }
        let a = addr.clone();
        self.meta.write(move |t| t.put_node(node.0, &a)).await?;
        self.registry
            .lock()
            .register(node, &addr, stats, Instant::now());
        // Heartbeat well inside the timeout, so one lost heartbeat is not fatal.
        let timeout_ms = self.settings.node_timeout.as_millis();
        Ok(u64::try_from((timeout_ms / 3).clamp(50, 1000)).unwrap_or(1000))
    }

    pub fn heartbeat(&self, node: NodeId, stats: NodeStats) -> WireResult<()> {
        self.registry.lock().heartbeat(node, stats, Instant::now())
    }

    /// Marks Down the nodes that have been silent longer than the node timeout.
    pub fn tick(&self, now: Instant) {
        self.registry.lock().tick(now, self.settings.node_timeout);
    }

    /// One part of a node's inventory: the shards it holds. Locations the coordinator
    /// did not know are recorded, and once the last part arrives, locations the node no
    /// longer lists are forgotten (`registry::apply_inventory`).
    pub async fn inventory(
        &self,
        node: NodeId,
        shards: Vec<ShardId>,
        first: bool,
        last: bool,
    ) -> WireResult<()> {
        let complete = {
            let mut reg = self.registry.lock();
            if !reg.is_known(node) {
                return Err(WireError::not_found(format!(
                    "node {node} is not registered (register first)"
                )));
            }
            reg.inventory_part(node, &shards, first, last)
        };
        if let Some(all) = &complete {
            self.maint.lock().forget_unknown(node, all);
        }
        let c = self
            .meta
            .write_bg(move |t| apply_inventory(t, node, &shards, complete.as_ref()))
            .await?;
        self.maint
            .lock()
            .note_unknown(node, &c.unknown, Instant::now());
        if c.orphans > 0 {
            info!(
                "node {node} holds {} shards no file uses (orphans, left for garbage collection)",
                c.orphans
            );
        }
        if last {
            info!(
                "inventory of node {node} complete: {} known shards in the last part, {} \
                 locations forgotten",
                c.known, c.forgotten
            );
        }
        Ok(())
    }
}
