//! The scrubber: a background task that reads every shard on this node through the same
//! verified path as a client's `Get`, so damage is found (and repaired, see
//! [`crate::corruption`]) before a client needs those bytes, not after all copies rotted.
//!
//! Disks lose bits silently ("bit rot", a bad sector, a bug in a filesystem), and a shard
//! that nobody reads is never checked on the read path. Without a scrubber, a rarely read
//! shard could lose every copy one at a time without anyone noticing.
//!
//! The scrubber competes with clients for the disk, so it is throttled: it sleeps as
//! needed to keep its average below `rate` bytes per second. After each full pass it logs
//! a summary and pauses before starting over.

use crate::blocking::blocking;
use crate::corruption::CorruptionHandler;
use crate::shard_store::{ReadError, ShardStore};
use dfs_proto::{ErrorCode, WireError, WireResult};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Shortest pause between passes: with `--scrub-interval 0` and an empty store, passes
/// would otherwise follow each other in a busy loop.
const MIN_PAUSE: Duration = Duration::from_millis(100);

/// Walks the store, verifying every shard.
pub struct Scrubber {
    store: Arc<ShardStore>,
    corruption: CorruptionHandler,
    /// Bytes per second, on average; 0 disables the scrubber.
    rate: u64,
    /// Pause between the end of one pass and the start of the next.
    interval: Duration,
}

/// What one pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassReport {
    /// Shards read (good and corrupt; not those deleted while the pass ran).
    pub shards: u64,
    /// Bytes of shard data that passed verification.
    pub bytes: u64,
    /// Damaged copies found (and dropped).
    pub corrupt: u64,
    pub elapsed: Duration,
}

impl Scrubber {
    pub fn new(
        store: Arc<ShardStore>,
        corruption: CorruptionHandler,
        rate: u64,
        interval: Duration,
    ) -> Scrubber {
        Scrubber {
            store,
            corruption,
            rate,
            interval,
        }
    }

    /// Scrubs forever (unless disabled); stop it by aborting the task.
    pub async fn run(self) {
        if self.rate == 0 {
            info!("scrubber disabled (--scrub-rate 0)");
            return;
        }
        loop {
            match self.pass().await {
                Ok(r) => info!(
                    "scrub pass complete: {} shards, {} bytes verified, {} corrupt, in {:.1} s",
                    r.shards,
                    r.bytes,
                    r.corrupt,
                    r.elapsed.as_secs_f64()
                ),
                Err(e) => warn!("failed to scrub the shard store: {e}"),
            }
            tokio::time::sleep(self.interval.max(MIN_PAUSE)).await;
        }
    }

    /// One full pass over the shards present when it starts. Fails only if the shards
    /// cannot be listed; a shard that cannot be read is logged and skipped.
    pub async fn pass(&self) -> WireResult<PassReport> {
        let start = Instant::now();
        let store = self.store.clone();
        let ids = blocking(move || {
            store
                .list()
                .map_err(|e| WireError::internal(format!("failed to list shards: {e}")))
        })
        .await?;
        let mut report = PassReport::default();
        for id in ids {
            let store = self.store.clone();
            match blocking(move || store.read(id, None)).await {
                Ok(data) => {
                    report.shards += 1;
                    report.bytes += data.len() as u64;
                }
                Err(ReadError::Corrupt(c)) => {
                    report.shards += 1;
                    report.corrupt += 1;
                    self.corruption.handle(c).await;
                }
                // Deleted since the listing (by the coordinator, or a reader that found it
                // damaged): nothing to check.
                Err(ReadError::Failed(e)) if e.code == ErrorCode::NotFound => {}
                Err(ReadError::Failed(e)) => warn!(shard = %id, "failed to scrub shard: {e}"),
            }
            self.throttle(start, report.bytes).await;
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }

    /// Sleeps until `bytes` verified since `start` is within the rate: at `rate` bytes per
    /// second, `bytes` should take `bytes / rate` seconds, so wait out whatever part of
    /// that has not elapsed yet.
    async fn throttle(&self, start: Instant, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

#[cfg(test)]
mod tests;
