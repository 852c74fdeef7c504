//! [`Files`]: the requests that move a file's content, as opposed to its name: where its
//! shards are (`GetLayout`), where new shards go (`Place`), keeping an upload's lease
//! alive (`Touch`) and making a written file's new content the file (`Commit`).
//!
//! The lease protocol in one paragraph: `Place` remembers each shard id it hands out
//! ([`Maint::placed`]) and where it sent it, so garbage collection leaves a shard alone
//! while a write that may reference it is under way (`gc.rs`); a live writer renews that
//! record with `Touch` every second; `Commit` turns the placement into a reference, after
//! which the reference protects the shard. A writer that dies simply stops renewing, and
//! its uploads become garbage after the grace.

use crate::clock::now_ns;
use crate::config::CoordSettings;
use crate::layout;
use crate::maint::Maint;
use crate::meta::Meta;
use crate::placement;
use crate::registry::{Registry, UNCONFIRMED_READ_WINDOW};
use crate::shared::Shared;
use crate::store::Reader;
use dfs_proto::coord_msg::{Attr, Caller, CommitShard, Layout, NanoTime, Placement, SetAttrs};
use dfs_proto::{ErrorCode, Ino, NodeId, ShardId, WireError, WireResult};
use std::time::{Duration, Instant};

pub(crate) struct Files {
    meta: Meta,
    settings: CoordSettings,
    registry: Shared<Registry>,
    maint: Shared<Maint>,
}

impl Files {
    pub fn new(
        meta: Meta,
        settings: CoordSettings,
        registry: Shared<Registry>,
        maint: Shared<Maint>,
    ) -> Files {
        Files {
            meta,
            settings,
            registry,
            maint,
        }
    }

    /// The shards of `ino` from shard `from` on, each with the nodes to read it from,
    /// best first.
    pub async fn get_layout(&self, ino: Ino, from: u64, limit: u32) -> WireResult<Layout> {
        let (mut up, draining, unconfirmed) = {
            let reg = self.registry.lock();
            (
                reg.up(),
                reg.draining(),
                reg.unconfirmed(Instant::now(), UNCONFIRMED_READ_WINDOW),
            )
        };
        // Draining nodes and nodes not heard from since a restart still serve reads, but
        // only after every other holder.
        let last: Vec<NodeId> = draining
            .into_iter()
            .chain(unconfirmed.keys().copied())
            .collect();
        up.extend(unconfirmed);
        let ss = self.settings.shard_size;
        self.meta
            .read(move |r| layout::get_layout(r, ino, from, limit, ss, &up, &last))
            .await
    }

    /// Chooses the nodes each new shard goes to.
    pub async fn place(&self, shards: Vec<(ShardId, u32)>) -> WireResult<Vec<Placement>> {
        let ss = self.settings.shard_size;
        if let Some((id, size)) = shards.iter().find(|(_, size)| *size > ss) {
            return Err(WireError::invalid(format!(
                "shard {id} is {size} bytes, larger than the shard size {ss}"
            )));
        }
        let ids: Vec<_> = shards.iter().map(|(id, _)| *id).collect();
        // Remember what was placed, so garbage collection leaves it alone while the write
        // is under way; and keep the write away from copies being deleted right now (see
        // gc.rs). Both under the maintenance lock, so either GC sees this placement or
        // this placement sees GC's deletion, never neither.
        let now = Instant::now();
        let avoid: Vec<Vec<NodeId>> = {
            let mut m = self.maint.lock();
            ids.iter()
                .map(|id| {
                    m.placed.insert(*id, now);
                    m.collecting.get(id).cloned().unwrap_or_default()
                })
                .collect()
        };
        let locations = self
            .meta
            .read(move |r| {
                ids.iter()
                    .map(|id| Ok(r.shard(id)?.map(|s| s.locations).unwrap_or_default()))
                    .collect::<WireResult<Vec<_>>>()
            })
            .await?;
        // Copies being deleted are not offered as holders.
        let locations: Vec<Vec<u64>> = locations
            .into_iter()
            .zip(&avoid)
            .map(|(l, a)| if a.is_empty() { l } else { Vec::new() })
            .collect();
        let s = self.settings;
        // Right after a restart the registry is empty until the nodes register again
        // (well under a second, see registration.rs). A write arriving in that moment
        // waits for them, for at most the node timeout after the start, rather than being
        // refused for want of live nodes.
        let placements = loop {
            let now = Instant::now();
            let r = placement::place(
                &mut self.registry.lock(),
                &shards,
                &locations,
                &avoid,
                s.replicas,
                s.min_copies,
                now,
            );
            match r {
                Err(e)
                    if e.code == ErrorCode::Unavailable
                        && !self
                            .registry
                            .lock()
                            .unconfirmed(now, s.node_timeout)
                            .is_empty() =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => break r?,
            }
        };
        // Remember where each shard was sent: if no commit ever references it (the writer
        // failed or died), garbage collection deletes it from these nodes after the grace.
        let mut m = self.maint.lock();
        for p in &placements {
            let on = m.placed_on.entry(p.id).or_default();
            for t in &p.targets {
                if !on.contains(&t.id) {
                    on.push(t.id);
                }
            }
        }
        Ok(placements)
    }

    /// A live writer renews its lease on uploads it has not committed yet, and on the
    /// orphans it holds open. Only orphans already known are renewed: the map never grows
    /// with what a client sends.
    pub fn touch(&self, shards: Vec<ShardId>, open: Vec<Ino>) {
        let now = Instant::now();
        let mut m = self.maint.lock();
        for id in shards {
            m.placed.insert(id, now);
        }
        for ino in open {
            if let Some(seen) = m.orphan_seen.get_mut(&ino) {
                *seen = now;
            }
        }
    }

    /// Makes `shards` the content of `ino` from the first shard it names on, durably.
    pub async fn commit(
        &self,
        ino: Ino,
        size: u64,
        mtime: NanoTime,
        shards: Vec<CommitShard>,
        caller: Caller,
        set: SetAttrs,
    ) -> WireResult<Attr> {
        {
            let mut reg = self.registry.lock();
            for s in &shards {
                for n in &s.stored_on {
                    reg.note_stored(*n, s.id);
                }
            }
        }
        let ids: Vec<ShardId> = shards.iter().map(|s| s.id).collect();
        let ss = self.settings.shard_size;
        let attr = self
            .meta
            .write(move |t| {
                layout::commit(t, ino, size, mtime, &shards, caller, &set, ss, now_ns())
            })
            .await?;
        // The placements are used up: from now on the references protect these shards,
        // and when those go, `unref_grace` rather than `gc_grace` applies. (Another writer
        // still holding the same content renews its own placement with `Touch` every
        // second.)
        let mut m = self.maint.lock();
        for id in &ids {
            m.placed.remove(id);
            m.placed_on.remove(id);
        }
        Ok(attr)
    }
}
