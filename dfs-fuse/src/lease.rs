//! The leases this mount holds at the coordinator: on every shard it has stored but not
//! committed yet, and on every file it unlinked while open. Renewed every second.
//!
//! Why a lease: the coordinator's garbage collector deletes shards that no file
//! references once their placement is older than its grace period; a long write (say,
//! hours without an fsync) would otherwise lose its early shards before the commit that
//! references them. Likewise it deletes an orphan inode (unlinked while open) that no
//! mount has named here for that grace: that is how the orphans of a mount that died are
//! reclaimed, so a live mount must keep naming its own.

use crate::backend::Backend;
use crate::fs::Fs;
use dfs_proto::coord_msg::CoordRequest;
use dfs_proto::{Ino, ShardId, WireResult};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the leases are renewed; well within the coordinator's grace.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// The shards each open file has stored on nodes but not committed yet, kept apart from
/// the files so that the task renewing their lease (`Fs::touch_uncommitted`, every
/// second) never waits for a file's lock: a commit holds that lock while it uploads, and
/// under load that can outlast the coordinator's grace for uncommitted shards, which
/// would then be collected under the commit's feet.
#[derive(Default)]
pub struct Leases {
    next: AtomicU64,
    by_file: std::sync::Mutex<BTreeMap<u64, Vec<ShardId>>>,
}

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<ShardId>>> {
        self.by_file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key for one file state (two states of one inode may briefly coexist).
    fn key(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn publish(&self, key: u64, ids: Vec<ShardId>) {
        let mut m = self.map();
        if ids.is_empty() {
            m.remove(&key);
        } else {
            m.insert(key, ids);
        }
    }

    /// Every shard stored but not committed, across the mount.
    pub fn all(&self) -> Vec<ShardId> {
        self.map().values().flatten().copied().collect()
    }
}

/// One file state's entry in the mount's [`Leases`]; dropping it withdraws the entry.
pub struct Lease {
    leases: Arc<Leases>,
    key: u64,
}

impl Lease {
    /// An entry in a registry of its own, that nothing renews: a file state before it is
    /// attached to the mount's (see [`Lease::new`]).
    pub fn detached() -> Lease {
        Lease {
            leases: Arc::new(Leases::default()),
            key: 0,
        }
    }

    /// A new entry in the mount's `leases`.
    pub fn new(leases: Arc<Leases>) -> Lease {
        let key = leases.key();
        Lease { leases, key }
    }

    /// Sets the shards of this entry (called whenever they change).
    pub fn publish(&self, ids: Vec<ShardId>) {
        self.leases.publish(self.key, ids);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leases.publish(self.key, Vec::new());
    }
}

/// Renews the leases on `shards` and on the orphans `open`, in `Touch` messages of at
/// most `MAX_INVENTORY_PART` of each; none if there is nothing to renew.
pub async fn renew<B: Backend>(backend: &B, shards: &[ShardId], open: &[Ino]) -> WireResult<()> {
    let max = dfs_proto::coord_msg::MAX_INVENTORY_PART;
    let (mut ids, mut open) = (shards, open);
    while !ids.is_empty() || !open.is_empty() {
        let (a, b) = (ids.len().min(max), open.len().min(max));
        backend
            .meta(CoordRequest::Touch {
                shards: ids[..a].to_vec(),
                open: open[..b].to_vec(),
            })
            .await?;
        (ids, open) = (&ids[a..], &open[b..]);
    }
    Ok(())
}

/// Renews `fs`'s leases every [`RENEW_EVERY`], for as long as the mount runs. A failed
/// renewal is only logged: the next one, a second later, is well within the grace.
pub async fn keep_renewing<B: Backend>(fs: Arc<Fs<B>>) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = fs.touch_uncommitted().await {
            tracing::debug!("failed to renew the lease on uncommitted shards: {e}");
        }
    }
}
