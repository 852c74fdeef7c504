//! Shard health: `Fsck` (a consistency check of the shard map) and `ReportCorrupt` (a node
//! found a bad copy).
//!
//! Nodes verify every shard they serve against its SHA-256, and scrub their disks in the
//! background. A copy that fails is deleted by the node, which then tells the coordinator;
//! the coordinator only has to forget that location, and repair restores the copy count
//! from a good copy elsewhere.

use crate::config::CoordSettings;
use crate::events::EventKind;
use crate::events::Events;
use crate::maint::Maint;
use crate::meta::Meta;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::store::Reader;
use dfs_proto::coord_msg::{FsckReport, ShardIssue};
use dfs_proto::{Ino, NodeId, ShardId, WireResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::warn;

/// Most entries of each issue list in a report, to keep the response frame small.
pub const MAX_ISSUES: usize = 1000;
/// Most files named per shard in an issue.
const MAX_FILES: usize = 4;

/// Corruption reports from nodes and the consistency check `dfs fsck`.
pub(crate) struct Fsck {
    meta: Meta,
    settings: CoordSettings,
    registry: Shared<Registry>,
    maint: Shared<Maint>,
    events: Arc<Events>,
}

impl Fsck {
    pub fn new(
        meta: Meta,
        settings: CoordSettings,
        registry: Shared<Registry>,
        maint: Shared<Maint>,
        events: Arc<Events>,
    ) -> Fsck {
        Fsck {
            meta,
            settings,
            registry,
            maint,
            events,
        }
    }

    /// `node` deleted its copy of `id` because it was corrupt.
    pub(crate) async fn report_corrupt(&self, node: NodeId, id: ShardId) -> WireResult<()> {
        let locations = self
            .meta
            .write_bg(move |t| {
                let Some(mut rec) = t.shard(&id)? else {
                    return Ok(None);
                };
                rec.locations.retain(|n| *n != node.0);
                t.put_shard(&id, &rec)?;
                Ok(Some(rec.locations))
            })
            .await?;
        {
            let mut m = self.maint.lock();
            m.corrupt += 1;
            let bad = m.bad_copies.entry(id).or_default();
            if !bad.contains(&node) {
                bad.push(node);
            }
        }
        match locations {
            Some(l) => {
                let up = self.registry.lock().up();
                let live = l.iter().filter(|n| up.contains_key(&NodeId(**n))).count();
                let text = format!(
                    "node {node} reported shard {id} corrupt; copy dropped, {live} live copies \
                     remain"
                );
                warn!("{text}");
                self.events.record(EventKind::Corruption, text);
            }
            None => {
                let text =
                    format!("node {node} reported shard {id} corrupt; the shard has no record");
                warn!("{text}");
                self.events.record(EventKind::Corruption, text);
            }
        }
        Ok(())
    }

    /// Scans the shard map: referenced shards with no live copy (missing) or too few
    /// (under-replicated), and garbage awaiting collection.
    pub(crate) async fn fsck(&self) -> WireResult<FsckReport> {
        let (up, counted) = {
            let reg = self.registry.lock();
            (reg.up(), reg.counted())
        };
        let replicas = self.settings.replicas as usize;
        let (unknown, corrupt): (HashSet<ShardId>, u64) = {
            let m = self.maint.lock();
            (
                m.unknown_seen.keys().map(|(_, id)| *id).collect(),
                m.corrupt,
            )
        };
        self.meta
            .read_bg(move |r| {
                let mut report = FsckReport {
                    corrupt,
                    ..Default::default()
                };
                let mut recorded = HashSet::new();
                for (id, rec) in r.all_shards()? {
                    recorded.insert(id);
                    if rec.refs == 0 {
                        report.orphaned += 1;
                        continue;
                    }
                    report.shards += 1;
                    let on = |nodes: &crate::layout::UpNodes| {
                        rec.locations
                            .iter()
                            .filter(|n| nodes.contains_key(&NodeId(**n)))
                            .count()
                    };
                    // Missing = no readable copy at all; under-replicated = fewer copies than
                    // wanted on nodes that stay (a draining node's copy is readable but leaving).
                    let (live, kept) = (on(&up), on(&counted));
                    let issue = ShardIssue {
                        id,
                        live_copies: u32::try_from(kept).unwrap_or(u32::MAX),
                        files: Vec::new(),
                    };
                    if live == 0 {
                        if report.missing.len() < MAX_ISSUES {
                            report.missing.push(issue);
                        }
                    } else if kept < replicas && report.under_replicated.len() < MAX_ISSUES {
                        report.under_replicated.push(issue);
                    }
                }
                report.orphaned += unknown.difference(&recorded).count() as u64;
                // Name a few files per listed shard. There is no reverse index, so this is one
                // scan of the layout table, done only when something is wrong.
                if !report.missing.is_empty() || !report.under_replicated.is_empty() {
                    let mut files: HashMap<ShardId, Vec<Ino>> = report
                        .missing
                        .iter()
                        .chain(&report.under_replicated)
                        .map(|i| (i.id, Vec::new()))
                        .collect();
                    r.for_each_layout(|ino, id| {
                        if let Some(f) = files.get_mut(id) {
                            if f.len() < MAX_FILES && !f.contains(&ino) {
                                f.push(ino);
                            }
                        }
                    })?;
                    for i in report
                        .missing
                        .iter_mut()
                        .chain(report.under_replicated.iter_mut())
                    {
                        i.files = files.remove(&i.id).unwrap_or_default();
                    }
                }
                Ok(report)
            })
            .await
    }
}
