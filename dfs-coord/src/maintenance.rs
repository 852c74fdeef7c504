//! Background maintenance: the pass that keeps every shard at `replicas` copies and
//! deletes what nothing uses any more.
//!
//! Each pass ([`Maintenance::once`]) scans the shard records once and then:
//! 1. repairs (`repair.rs`): copies shards that lost copies to new nodes, node to node,
//!    and removes surplus copies once a lost node comes back;
//! 2. collects garbage (`gc.rs`): deletes shards no file uses, after a grace period, and
//!    orphan inodes whose mount is gone.
//!
//! Passes never overlap: the daemon's loop (`daemon.rs`) awaits one before starting the
//! next, so the decisions of a pass are never undone by another one running beside it.
//! What a pass has to remember between passes lives in memory in `Maint` (`maint.rs`).

use crate::gc::Gc;
use crate::meta::Meta;
use crate::repair::Repair;
use crate::sender::NodeSender;
use crate::store::{Reader, ShardRec};
use dfs_proto::{ShardId, WireResult};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Maintenance {
    meta: Meta,
    repair: Repair,
    gc: Gc,
    /// How passes reach the nodes. Without one (some tests), a pass only updates its
    /// bookkeeping: what it would repair, what has become garbage.
    sender: Option<Arc<dyn NodeSender>>,
}

impl Maintenance {
    pub fn new(
        meta: Meta,
        repair: Repair,
        gc: Gc,
        sender: Option<Arc<dyn NodeSender>>,
    ) -> Maintenance {
        Maintenance {
            meta,
            repair,
            gc,
            sender,
        }
    }

    /// One pass at `now`: repair, surplus removal, garbage collection, and orphan inodes
    /// whose mount is gone.
    pub async fn once(&self, now: Instant) -> WireResult<()> {
        let shards: Vec<(ShardId, ShardRec)> = self.meta.read_bg(|r| r.all_shards()).await?;
        let sender = self.sender.as_ref();
        self.repair.repair_pass(&shards, sender, now).await?;
        self.gc.gc_pass(&shards, sender, now).await?;
        self.gc.orphan_pass(now).await?;
        Ok(())
    }
}
