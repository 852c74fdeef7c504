//! Garbage collection: deleting shard copies that no file uses any more.
//!
//! Two kinds of garbage exist:
//! - shard records whose reference count fell to 0 (files overwritten, truncated or
//!   deleted). Their copies are deleted from every Up holder, then the record goes;
//! - shards a node's inventory lists that the coordinator has no record of at all:
//!   leftovers of writes whose client died between storing shards and committing them.
//!
//! Both wait first, because a shard with no references is exactly what a write in
//! progress looks like: the client stores shards on nodes, then commits them. Unknown
//! shards wait `gc_grace` (minutes: a slow writer's uploads look just like this). Records
//! whose count fell to 0 wait only `unref_grace`: a writer that will reference the same
//! content again has been handed the id by `Place` (or renewed it with `Touch`), and a
//! shard id handed out by `Place` within `gc_grace` is never deleted,
//! and while a deletion is under way `Place` neither offers those copies to writers nor
//! puts the shard on those nodes (a `Put` of a shard a node already has is a no-op, so a
//! `Delete` arriving just after it would silently undo the write).
//!
//! The clocks live in memory: after a restart every shard waits a full grace again.

use crate::config::CoordSettings;
use crate::events::EventKind;
use crate::events::Events;
use crate::maint::Maint;
use crate::meta::Meta;
use crate::registry::Holder;
use crate::registry::Registry;
use crate::sender::{send_all, NodeSender};
use crate::shared::Shared;
use crate::status::human_bytes;
use crate::store::Reader;
use crate::store::ShardRec;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::{ErrorCode, Ino, NodeId, ShardId, WireResult};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// One unreferenced shard to collect.
struct Collect {
    id: ShardId,
    size: u32,
    /// Up holders to send `Delete` to.
    delete: Vec<(NodeId, String)>,
    /// Locations on written-off nodes: simply forgotten. If such a node ever returns, its
    /// inventory lists the shard as unknown and the second kind of collection deletes it.
    gone: Vec<NodeId>,
}

/// Whether a node's answer to `Delete` means the copy is gone.
fn deleted(r: &WireResult<NodeResponse>) -> bool {
    match r {
        Ok(NodeResponse::Deleted) => true,
        Err(e) => e.code == ErrorCode::NotFound,
        Ok(_) => false,
    }
}

/// Garbage collection of unreferenced and unknown shards, and of orphan inodes.
pub(crate) struct Gc {
    meta: Meta,
    settings: CoordSettings,
    registry: Shared<Registry>,
    maint: Shared<Maint>,
    events: Arc<Events>,
}

impl Gc {
    pub fn new(
        meta: Meta,
        settings: CoordSettings,
        registry: Shared<Registry>,
        maint: Shared<Maint>,
        events: Arc<Events>,
    ) -> Gc {
        Gc {
            meta,
            settings,
            registry,
            maint,
            events,
        }
    }

    /// One garbage-collection pass over `shards` (see the module comment).
    pub(crate) async fn gc_pass(
        &self,
        shards: &[(ShardId, ShardRec)],
        sender: Option<&Arc<dyn NodeSender>>,
        now: Instant,
    ) -> WireResult<()> {
        let grace = self.settings.gc_grace;
        let unref_grace = self.settings.unref_grace;
        let view = self
            .registry
            .lock()
            .holders(now, self.settings.repair_grace);
        let mut plans = Vec::new();
        let mut unknown = Vec::new();
        {
            let mut m = self.maint.lock();
            // Placements older than the grace: a write that has not committed by now never
            // will (it failed, or its client died). If no record exists for the shard,
            // its copies on the placement's targets are unknown garbage, handled below
            // like unknown shards from an inventory.
            let recorded: HashSet<ShardId> = shards.iter().map(|(id, _)| *id).collect();
            let expired: Vec<(ShardId, Instant)> = m
                .placed
                .iter()
                .filter(|(_, at)| now.saturating_duration_since(**at) > grace)
                .map(|(id, at)| (*id, *at))
                .collect();
            for (id, at) in expired {
                m.placed.remove(&id);
                let targets = m.placed_on.remove(&id).unwrap_or_default();
                if !recorded.contains(&id) {
                    for node in targets {
                        m.unknown_seen.entry((node, id)).or_insert(at);
                    }
                }
            }
            let st = &mut *m;
            st.placed_on.retain(|id, _| st.placed.contains_key(id));
            let zero: HashSet<ShardId> = shards
                .iter()
                .filter(|(_, r)| r.refs == 0)
                .map(|(id, _)| *id)
                .collect();
            // A shard referenced again (or removed) starts from scratch next time.
            m.unreferenced_since.retain(|id, _| zero.contains(id));
            for (id, rec) in shards.iter().filter(|(_, r)| r.refs == 0) {
                let since = *m.unreferenced_since.entry(*id).or_insert(now);
                if sender.is_none()
                    || now.saturating_duration_since(since) <= unref_grace
                    || m.recently_placed(id, now, grace)
                    || m.collecting.contains_key(id)
                {
                    continue;
                }
                let mut c = Collect {
                    id: *id,
                    size: rec.size,
                    delete: Vec::new(),
                    gone: Vec::new(),
                };
                for &n in &rec.locations {
                    match view.get(&NodeId(n)) {
                        Some(Holder::Up { addr, .. }) => c.delete.push((NodeId(n), addr.clone())),
                        // Probably restarting: wait for it rather than leave its copy behind.
                        Some(Holder::Waiting) => {}
                        Some(Holder::Gone) | None => c.gone.push(NodeId(n)),
                    }
                }
                m.collecting
                    .insert(*id, rec.locations.iter().map(|n| NodeId(*n)).collect());
                plans.push(c);
            }
            if sender.is_some() {
                let due: Vec<(NodeId, ShardId)> = m
                    .unknown_seen
                    .iter()
                    .filter(|(_, seen)| now.saturating_duration_since(**seen) > grace)
                    .map(|(k, _)| *k)
                    .collect();
                for (node, id) in due {
                    if m.recently_placed(&id, now, grace) {
                        continue;
                    }
                    match view.get(&node) {
                        Some(Holder::Up { addr, .. }) => {
                            m.collecting.entry(id).or_default().push(node);
                            unknown.push((node, addr.clone(), id));
                        }
                        Some(Holder::Waiting) => {}
                        // Its next inventory reports the shard again if it still has it.
                        Some(Holder::Gone) | None => {
                            m.unknown_seen.remove(&(node, id));
                        }
                    }
                }
            }
        }
        let Some(sender) = sender else {
            return Ok(());
        };
        self.collect_records(plans, sender).await?;
        self.collect_unknown(unknown, sender).await
    }

    /// Deletes the copies of unreferenced shards, then their records.
    async fn collect_records(
        &self,
        plans: Vec<Collect>,
        sender: &Arc<dyn NodeSender>,
    ) -> WireResult<()> {
        let sends: Vec<(NodeId, String, NodeRequest)> = plans
            .iter()
            .flat_map(|c| {
                c.delete
                    .iter()
                    .map(|(n, a)| (*n, a.clone(), NodeRequest::Delete { id: c.id }))
            })
            .collect();
        let mut results = send_all(sender, sends, None).await.into_iter();
        let (mut shards, mut bytes) = (0u64, 0u64);
        let mut nodes = BTreeSet::new();
        for c in plans {
            let mut forget: Vec<u64> = c.gone.iter().map(|n| n.0).collect();
            for (n, _) in &c.delete {
                match results.next() {
                    Some(r) if deleted(&r) => {
                        forget.push(n.0);
                        nodes.insert(*n);
                    }
                    Some(Err(e)) => warn!("failed to delete shard {} on node {n}: {e}", c.id),
                    Some(Ok(other)) => warn!(
                        "failed to delete shard {} on node {n}: unexpected answer {other:?}",
                        c.id
                    ),
                    None => {}
                }
            }
            let id = c.id;
            // One transaction per shard. The reference count is checked again inside it:
            // the record goes only if nothing references it and no copy is left.
            let outcome = self
                .meta
                .write_bg(move |t| {
                    let Some(mut rec) = t.shard(&id)? else {
                        return Ok(None);
                    };
                    rec.locations.retain(|n| !forget.contains(n));
                    if rec.refs == 0 && rec.locations.is_empty() {
                        t.remove_shard(&id)?;
                        Ok(Some(rec))
                    } else {
                        t.put_shard(&id, &rec)?;
                        Ok(Some(rec))
                    }
                })
                .await;
            let mut m = self.maint.lock();
            m.collecting.remove(&id);
            match outcome? {
                Some(rec) if rec.refs == 0 && rec.locations.is_empty() => {
                    m.unreferenced_since.remove(&id);
                    m.collected += 1;
                    shards += 1;
                    bytes += u64::from(c.size);
                }
                Some(rec) if rec.refs > 0 => warn!(
                    "shard {id} was referenced again while its copies were being deleted \
                     (a commit without a recent Place); {} copies remain",
                    rec.locations.len()
                ),
                _ => {}
            }
        }
        if shards > 0 {
            let text = format!(
                "gc: removed {shards} shards ({}) from {} nodes",
                human_bytes(bytes),
                nodes.len()
            );
            info!("{text}");
            self.events.record(EventKind::Gc, text);
        }
        Ok(())
    }

    /// Deletes shards that nodes hold but the coordinator has no record of.
    async fn collect_unknown(
        &self,
        unknown: Vec<(NodeId, String, ShardId)>,
        sender: &Arc<dyn NodeSender>,
    ) -> WireResult<()> {
        if unknown.is_empty() {
            return Ok(());
        }
        // A commit may have created a record since the node listed the shard: then it is
        // no longer unknown (the location is recorded by the commit or the next inventory),
        // and ordinary collection takes care of it if it becomes garbage.
        let ids: Vec<ShardId> = unknown.iter().map(|(_, _, id)| *id).collect();
        let known: Vec<bool> = self
            .meta
            .read_bg(move |r| {
                ids.iter()
                    .map(|id| Ok(r.shard(id)?.is_some()))
                    .collect::<WireResult<Vec<_>>>()
            })
            .await?;
        let mut sends = Vec::new();
        let mut which = Vec::new();
        {
            let mut m = self.maint.lock();
            for ((node, addr, id), k) in unknown.into_iter().zip(known) {
                if k {
                    m.unknown_seen.remove(&(node, id));
                    m.collecting.remove(&id);
                } else {
                    sends.push((node, addr, NodeRequest::Delete { id }));
                    which.push((node, id));
                }
            }
        }
        let results = send_all(sender, sends, None).await;
        let mut count = 0u64;
        let mut nodes = BTreeSet::new();
        let mut m = self.maint.lock();
        for ((node, id), r) in which.into_iter().zip(results) {
            m.collecting.remove(&id);
            if deleted(&r) {
                m.unknown_seen.remove(&(node, id));
                count += 1;
                nodes.insert(node);
            } else if let Err(e) = r {
                warn!("failed to delete unknown shard {id} on node {node}: {e}");
            }
        }
        if count > 0 {
            let text = format!(
                "gc: removed {count} shards no file ever used (unknown to the coordinator) \
                 from {} nodes",
                nodes.len()
            );
            info!("{text}");
            self.events.record(EventKind::Gc, text);
        }
        Ok(())
    }

    /// Deletes orphan inodes (unlinked while open) that no mount has named in a `Touch`
    /// for `gc_grace`: the mount that had them open is gone (killed, or cut off for
    /// longer than the grace), so its `Release` will never come. Without this, every
    /// mount crash with an unlinked file open would leak that file's space for good. Its
    /// shards then lose their references and go the usual way (`unref_grace`).
    pub(crate) async fn orphan_pass(&self, now: Instant) -> WireResult<()> {
        let grace = self.settings.gc_grace;
        let orphans = self.meta.read_bg(|r| r.orphans()).await?;
        let due: Vec<Ino> = {
            let mut m = self.maint.lock();
            let current: HashSet<Ino> = orphans.iter().copied().collect();
            // Released (or reclaimed) since the last pass: forget them.
            m.orphan_seen.retain(|ino, _| current.contains(ino));
            orphans
                .into_iter()
                .filter(|ino| {
                    // First sight (new orphan, or a restarted coordinator) starts a full
                    // grace: its mount has that long to say it still has the file open.
                    let seen = *m.orphan_seen.entry(*ino).or_insert(now);
                    now.saturating_duration_since(seen) > grace
                })
                .collect()
        };
        for ino in due {
            let deleted = self
                .meta
                .write_bg(move |t| crate::namespace::reclaim_orphan(t, ino))
                .await?;
            self.maint.lock().orphan_seen.remove(&ino);
            if !deleted {
                continue;
            }
            let text = format!(
                "gc: deleted orphan inode {ino} (unlinked while open; no mount has held it open for {} s)",
                grace.as_secs()
            );
            info!("{text}");
            self.events.record(EventKind::Gc, text);
        }
        Ok(())
    }
}
