//! [`Health`]: what the cluster holds and how well — `Status` (nodes, replication,
//! drains, repair progress) and `StatFs` (the space a user can fill) — computed from the
//! registry, the store and the maintenance bookkeeping.

use crate::config::CoordSettings;
use crate::decommission::drain_left;
use crate::layout;
use crate::maint::Maint;
use crate::meta::Meta;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::store::Reader;
use dfs_proto::coord_msg::{ClusterStatus, FsStats, RepairStatus};
use dfs_proto::WireResult;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Health {
    meta: Meta,
    settings: CoordSettings,
    registry: Shared<Registry>,
    maint: Shared<Maint>,
    /// Replicate requests under way (counted by `repair.rs`).
    in_flight: Arc<AtomicU64>,
}

impl Health {
    pub fn new(
        meta: Meta,
        settings: CoordSettings,
        registry: Shared<Registry>,
        maint: Shared<Maint>,
        in_flight: Arc<AtomicU64>,
    ) -> Health {
        Health {
            meta,
            settings,
            registry,
            maint,
            in_flight,
        }
    }

    pub async fn statfs(&self) -> WireResult<FsStats> {
        let (capacity, used, free) = self.registry.lock().up_totals();
        let inodes = self.meta.read(|r| r.inode_count()).await?;
        // Every byte is stored `replicas` times: what a user can fill is the raw space
        // divided by that.
        let r = u64::from(self.settings.replicas.max(1));
        Ok(FsStats {
            capacity: capacity / r,
            used: used / r,
            free: free / r,
            inodes,
            shard_size: self.settings.shard_size,
            replicas: self.settings.replicas,
        })
    }

    pub async fn status(&self) -> WireResult<ClusterStatus> {
        let (mut nodes, counted, draining) = {
            let reg = self.registry.lock();
            (reg.infos(Instant::now()), reg.counted(), reg.draining())
        };
        let replicas = self.settings.replicas;
        let (shards, under, inodes, left) = self
            .meta
            .read_bg(move |r| {
                // Copies on draining nodes do not count: during a drain its shards show
                // as under-replicated until repair has copied them.
                let (used, under) = layout::replication_counts(r, replicas, &counted)?;
                let left = drain_left(r, &draining)?;
                Ok((used, under, r.inode_count()?, left))
            })
            .await?;
        for n in &mut nodes {
            if let Some((s, b)) = left.get(&n.id) {
                n.drain_shards_left = *s;
                n.drain_bytes_left = *b;
            }
        }
        Ok(ClusterStatus {
            nodes,
            replicas,
            shard_size: self.settings.shard_size,
            under_replicated: under,
            shards,
            inodes,
            repair: self.repair_status(),
        })
    }

    /// Repair and garbage-collection progress, for `Status`.
    fn repair_status(&self) -> RepairStatus {
        let m = self.maint.lock();
        RepairStatus {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            bytes_left: m.bytes_left,
            repaired: m.repaired,
            collected: m.collected,
        }
    }
}
