//! Re-replication: bringing every referenced shard back to `replicas` copies after a node
//! is lost or a copy turns out corrupt, and removing the surplus once a lost node returns.
//!
//! A node that stops heartbeating is Down, but most Down nodes are restarting and come
//! back within seconds with all their data. Copying everything they held each time would
//! flood the network for nothing, so a Down node's copies keep counting for
//! `repair_grace`; after that they are written off and repair starts.
//!
//! Repair never moves bytes itself: it asks a target node (chosen like a new write's,
//! by free space) to `Replicate` the shard from the surviving holders. Only once the
//! target answers `Stored` (the copy is durable) is it added to the shard's locations.
//! Copies are throttled by a token bucket (refilled at `repair_rate` bytes per second,
//! holding at most one maintenance interval's worth, and at least one second's) and at most
//! [`MAX_IN_FLIGHT`](crate::sender::MAX_IN_FLIGHT) at a time, so clients keep most
//! of the bandwidth while a big node is being re-replicated.

use crate::config::CoordSettings;
use crate::events::EventKind;
use crate::events::Events;
use crate::maint::{Episode, Maint};
use crate::meta::Meta;
use crate::placement;
use crate::registry::Holder;
use crate::registry::Registry;
use crate::sender::{send_all, NodeSender};
use crate::shared::Shared;
use crate::status::human_bytes;
use crate::store::Reader;
use crate::store::ShardRec;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::{ErrorCode, NodeId, ShardId, WireResult};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// A referenced shard with too few counted copies but at least one readable one.
struct Job {
    id: ShardId,
    size: u32,
    /// Addresses of its Up holders, to copy from.
    sources: Vec<String>,
    /// Copies missing.
    need: usize,
    /// Every recorded location: never a target, whatever its state.
    exclude: Vec<NodeId>,
}

/// A shard with more Up copies than `replicas`, or with copies on draining nodes once
/// enough others exist: the listed holders should drop theirs.
struct Surplus {
    id: ShardId,
    drop: Vec<(NodeId, String)>,
}

/// What a scan of the shard records found.
#[derive(Default)]
struct Plan {
    jobs: Vec<Job>,
    surplus: Vec<Surplus>,
    /// Written-off nodes that held a copy of a shard needing repair, for the log.
    lost: BTreeSet<NodeId>,
    /// Locations on draining nodes that are down, of shards whose copies are complete
    /// elsewhere: forgotten without a request (the node cannot be reached; if it returns,
    /// its inventory reports the copy again and it is deleted as surplus).
    forget: Vec<(ShardId, NodeId)>,
}

fn plan(
    shards: &[(ShardId, ShardRec)],
    view: &HashMap<NodeId, Holder>,
    draining_nodes: &HashSet<NodeId>,
    replicas: usize,
) -> Plan {
    let mut p = Plan::default();
    for (id, rec) in shards {
        if rec.refs == 0 {
            // Garbage: repairing it would be wasted work (see gc.rs).
            continue;
        }
        let mut live: Vec<(NodeId, String, Option<Instant>)> = Vec::new();
        // Copies on draining nodes that are up: readable, so a source to copy from, but
        // they do not count; once the shard has its copies elsewhere they are deleted,
        // which is what moves the data off the node.
        let mut draining: Vec<(NodeId, String)> = Vec::new();
        // Copies on draining nodes that are down: neither a source nor counted.
        let mut draining_down: Vec<NodeId> = Vec::new();
        let mut counted = 0usize;
        let mut lost = Vec::new();
        for &n in &rec.locations {
            let node = NodeId(n);
            match view.get(&node) {
                Some(Holder::Up {
                    addr,
                    draining: true,
                    ..
                }) => draining.push((node, addr.clone())),
                Some(Holder::Up { addr, since, .. }) => {
                    live.push((node, addr.clone(), *since));
                    counted += 1;
                }
                Some(Holder::Waiting) => counted += 1,
                Some(Holder::Gone) | None if draining_nodes.contains(&node) => {
                    draining_down.push(node)
                }
                Some(Holder::Gone) | None => lost.push(node),
            }
        }
        if counted < replicas {
            if !(live.is_empty() && draining.is_empty()) {
                p.lost.extend(lost);
                p.jobs.push(Job {
                    id: *id,
                    size: rec.size,
                    sources: live
                        .iter()
                        .map(|(_, a, _)| a.clone())
                        .chain(draining.into_iter().map(|(_, a)| a))
                        .collect(),
                    need: replicas - counted,
                    exclude: rec.locations.iter().map(|n| NodeId(*n)).collect(),
                });
            }
            continue;
        }
        // A draining node's copy goes only once enough copies are readable right now:
        // a copy on a node that is down but "probably restarting" counts for repair, but
        // is no reason to delete a copy that can be read.
        let moved = live.len() >= replicas;
        let mut drop = if moved { draining } else { Vec::new() };
        if live.len() > replicas {
            // Keep the copies that were there all along and drop those of the node(s)
            // that came back most recently: their copies were already replaced by repair.
            live.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            let extra = live.len() - replicas;
            drop.extend(live.into_iter().take(extra).map(|(n, a, _)| (n, a)));
        }
        if !drop.is_empty() {
            p.surplus.push(Surplus { id: *id, drop });
        }
        if moved {
            p.forget.extend(draining_down.into_iter().map(|n| (*id, n)));
        }
    }
    p
}

/// Repair: copies under-replicated shards node to node and removes surplus copies.
pub(crate) struct Repair {
    meta: Meta,
    settings: CoordSettings,
    registry: Shared<Registry>,
    maint: Shared<Maint>,
    events: Arc<Events>,
    in_flight: Arc<AtomicU64>,
}

impl Repair {
    pub fn new(
        meta: Meta,
        settings: CoordSettings,
        registry: Shared<Registry>,
        maint: Shared<Maint>,
        events: Arc<Events>,
        in_flight: Arc<AtomicU64>,
    ) -> Repair {
        Repair {
            meta,
            settings,
            registry,
            maint,
            events,
            in_flight,
        }
    }

    /// Bytes the repair token bucket holds when full: what one pass may send. A pass
    /// every `maintenance_interval` that may send `rate * interval` keeps the average at
    /// `rate`; a smaller bucket would cap repair below the configured rate.
    fn bucket_size(&self) -> f64 {
        let s = self.settings;
        s.repair_rate as f64 * s.maintenance_interval.as_secs_f64().max(1.0)
    }

    /// Refills the repair token bucket up to `now` and returns the tokens available.
    fn refill(&self, now: Instant) -> f64 {
        let rate = self.settings.repair_rate as f64;
        let cap = self.bucket_size();
        let mut m = self.maint.lock();
        let tokens = match m.refilled_at {
            // The first pass starts with a full bucket.
            None => cap,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                (m.tokens + rate * dt).min(cap)
            }
        };
        m.tokens = tokens;
        if m.refilled_at.is_none_or(|at| now > at) {
            m.refilled_at = Some(now);
        }
        tokens
    }

    /// One repair pass over `shards` (see the module comment).
    pub(crate) async fn repair_pass(
        &self,
        shards: &[(ShardId, ShardRec)],
        sender: Option<&Arc<dyn NodeSender>>,
        now: Instant,
    ) -> WireResult<()> {
        let s = self.settings;
        let (view, draining) = {
            let reg = self.registry.lock();
            let draining: HashSet<NodeId> = reg.draining().into_iter().collect();
            (reg.holders(now, s.repair_grace), draining)
        };
        let p = plan(shards, &view, &draining, s.replicas as usize);
        self.forget_drained(&p.forget).await?;
        let total_bytes: u64 = p
            .jobs
            .iter()
            .map(|j| u64::from(j.size) * j.need as u64)
            .sum();
        self.log_episode(&p, total_bytes);
        let Some(sender) = sender else {
            self.maint.lock().bytes_left = total_bytes;
            return Ok(());
        };

        // Choose targets while the bucket allows. A shard larger than the whole bucket
        // may go when the bucket is full, or it could never go at all.
        let bad_copies = {
            let mut m = self.maint.lock();
            // A shard that is whole again no longer needs to avoid anyone.
            m.bad_copies
                .retain(|id, _| p.jobs.iter().any(|j| j.id == *id));
            m.bad_copies.clone()
        };
        let cap = self.bucket_size();
        let mut tokens = self.refill(now);
        let mut sends: Vec<(NodeId, String, NodeRequest)> = Vec::new();
        let mut sent_jobs: Vec<(ShardId, u32, NodeId)> = Vec::new();
        {
            let mut reg = self.registry.lock();
            for job in &p.jobs {
                let size = f64::from(job.size);
                let mut k = 0;
                while k < job.need && (tokens >= size || tokens >= cap) {
                    tokens -= size;
                    k += 1;
                }
                if k == 0 {
                    break;
                }
                let size_u64 = u64::from(job.size);
                let mut exclude = job.exclude.clone();
                exclude.extend(bad_copies.get(&job.id).into_iter().flatten().copied());
                let mut targets = placement::choose(&mut reg, &exclude, k, size_u64, now);
                if targets.len() < k {
                    // Better a copy on the node that reported corruption than no copy.
                    let mut exclude = job.exclude.clone();
                    exclude.extend(&targets);
                    let more = k - targets.len();
                    targets.extend(placement::choose(&mut reg, &exclude, more, size_u64, now));
                }
                // Targets that could not be found give their tokens back.
                tokens += size * (k - targets.len()) as f64;
                for t in targets {
                    let Some(Holder::Up { addr, .. }) = view.get(&t) else {
                        continue;
                    };
                    sends.push((
                        t,
                        addr.clone(),
                        NodeRequest::Replicate {
                            id: job.id,
                            sources: job.sources.clone(),
                        },
                    ));
                    sent_jobs.push((job.id, job.size, t));
                }
            }
        }
        self.maint.lock().tokens = tokens;

        let results = send_all(sender, sends, Some(&self.in_flight)).await;
        let mut copied = 0u64;
        for ((id, size, target), r) in sent_jobs.into_iter().zip(results) {
            match r {
                Ok(NodeResponse::Stored) => {
                    // One transaction per new copy: a crash loses at most the record of
                    // copies made since, which the nodes' inventories report again.
                    self.meta
                        .write_bg(move |t| {
                            if let Some(mut rec) = t.shard(&id)? {
                                if !rec.locations.contains(&target.0) {
                                    rec.locations.push(target.0);
                                    t.put_shard(&id, &rec)?;
                                }
                            }
                            Ok(())
                        })
                        .await?;
                    copied += u64::from(size);
                    let mut m = self.maint.lock();
                    m.repaired += 1;
                    if let Some(e) = &mut m.episode {
                        e.shards += 1;
                        e.bytes += u64::from(size);
                    }
                }
                Ok(other) => warn!(
                    "failed to replicate shard {id} to node {target}: unexpected answer {other:?}"
                ),
                Err(e) => warn!("failed to replicate shard {id} to node {target}: {e}"),
            }
        }
        self.maint.lock().bytes_left = total_bytes.saturating_sub(copied);
        self.remove_surplus(&p.surplus, sender).await
    }

    /// Logs the start of a repair episode when work first appears, and its end (with the
    /// achieved rate) when a pass finds nothing left to do.
    fn log_episode(&self, p: &Plan, total_bytes: u64) {
        let mut m = self.maint.lock();
        match (&m.episode, p.jobs.is_empty()) {
            (None, false) => {
                let cause = match p.lost.len() {
                    0 => "copies were lost or written short".to_string(),
                    1 => format!(
                        "node {} went down",
                        p.lost.iter().map(|n| n.to_string()).collect::<String>()
                    ),
                    _ => format!(
                        "nodes {} went down",
                        p.lost
                            .iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let text = format!(
                    "repair: {} shards ({}) under-replicated after {cause}",
                    p.jobs.len(),
                    human_bytes(total_bytes)
                );
                info!("{text}");
                self.events.record(EventKind::RepairStarted, text);
                m.episode = Some(Episode {
                    started: Instant::now(),
                    shards: 0,
                    bytes: 0,
                });
            }
            (Some(e), true) => {
                let secs = e.started.elapsed().as_secs_f64();
                let mbps = if secs > 0.0 {
                    e.bytes as f64 / secs / 1e6
                } else {
                    0.0
                };
                let text = format!(
                    "repair finished: {} shards, {} in {secs:.1} s ({mbps:.1} MB/s)",
                    e.shards,
                    human_bytes(e.bytes)
                );
                info!("{text}");
                self.events.record(EventKind::RepairFinished, text);
                m.episode = None;
            }
            _ => {}
        }
    }

    /// Forgets locations on unreachable draining nodes whose shards are complete
    /// elsewhere (see [`Plan::forget`]).
    async fn forget_drained(&self, forget: &[(ShardId, NodeId)]) -> WireResult<()> {
        if forget.is_empty() {
            return Ok(());
        }
        let list = forget.to_vec();
        self.meta
            .write_bg(move |t| {
                for (id, node) in &list {
                    if let Some(mut rec) = t.shard(id)? {
                        rec.locations.retain(|n| *n != node.0);
                        t.put_shard(id, &rec)?;
                    }
                }
                Ok(())
            })
            .await?;
        info!(
            "forgot {} copies on draining node(s) that are down: their shards have their \
             copies elsewhere",
            forget.len()
        );
        Ok(())
    }

    /// Deletes surplus copies and forgets their locations.
    async fn remove_surplus(
        &self,
        surplus: &[Surplus],
        sender: &Arc<dyn NodeSender>,
    ) -> WireResult<()> {
        let mut sends = Vec::new();
        let mut which = Vec::new();
        for s in surplus {
            for (n, addr) in &s.drop {
                sends.push((*n, addr.clone(), NodeRequest::Delete { id: s.id }));
                which.push((s.id, *n));
            }
        }
        if sends.is_empty() {
            return Ok(());
        }
        let results = send_all(sender, sends, None).await;
        let mut removed = 0u64;
        let mut nodes = BTreeSet::new();
        for ((id, node), r) in which.into_iter().zip(results) {
            let gone = match r {
                Ok(NodeResponse::Deleted) => true,
                Err(e) if e.code == ErrorCode::NotFound => true,
                Ok(other) => {
                    warn!("failed to delete surplus copy of {id} on node {node}: unexpected answer {other:?}");
                    false
                }
                Err(e) => {
                    warn!("failed to delete surplus copy of {id} on node {node}: {e}");
                    false
                }
            };
            if gone {
                self.meta
                    .write_bg(move |t| {
                        if let Some(mut rec) = t.shard(&id)? {
                            rec.locations.retain(|n| *n != node.0);
                            t.put_shard(&id, &rec)?;
                        }
                        Ok(())
                    })
                    .await?;
                removed += 1;
                nodes.insert(node);
            }
        }
        if removed > 0 {
            let names: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
            let text = format!(
                "removed {removed} surplus copies from node(s) {} (a draining node's copies \
                 moved elsewhere, or a returning node's copies already replaced by repair)",
                names.join(", ")
            );
            info!("{text}");
            self.events.record(EventKind::Surplus, text);
        }
        Ok(())
    }
}
