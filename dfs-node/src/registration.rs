//! The node's conversation with the coordinator: register, send the inventory of stored
//! shards, then heartbeat, for as long as the node runs.
//!
//! ```text
//!  Register{node, addr, stats} -> Registered{heartbeat_ms}
//!  Inventory{shards, first, last} ... (parts of at most MAX_INVENTORY_PART ids)
//!  Heartbeat{node, stats} every heartbeat_ms -> Unit
//!                                            -> NotFound: the coordinator lost us
//!                                               (restarted?): register again
//! ```
//!
//! The coordinator keeps its node registry only in memory, so a node must be able to
//! re-introduce itself at any time. The node never gives up: an unreachable coordinator
//! is retried with a short backoff, and it keeps serving reads and writes meanwhile.
//! Log lines mark state changes (reachable / unreachable), not every failed attempt.

use crate::shard_store::ShardStore;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, MAX_INVENTORY_PART};
use dfs_proto::node_msg::NodeStats;
use dfs_proto::rpc::RpcClient;
use dfs_proto::{ErrorCode, ShardId, WireError, WireResult};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How long one call to the coordinator may take before it counts as unreachable.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// First and longest pause between registration attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bounds on the heartbeat interval the coordinator asks for (a zero would spin).
const MIN_HEARTBEAT: Duration = Duration::from_millis(50);
const MAX_HEARTBEAT: Duration = Duration::from_secs(60);

/// Everything the node needs to introduce itself to the coordinator.
pub struct Registration {
    store: Arc<ShardStore>,
    client: RpcClient,
    coord: String,
    /// The address clients should dial, as the coordinator will hand it out.
    addr: String,
}

/// What the last log line said, so the next one is written only when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Starting,
    Registered,
    Unreachable,
}

impl Registration {
    pub fn new(store: Arc<ShardStore>, client: RpcClient, coord: String, addr: String) -> Self {
        Registration {
            store,
            client,
            coord,
            addr,
        }
    }

    /// Registers and heartbeats forever; stop it by dropping (aborting) the task.
    pub async fn run(self) {
        let mut link = Link::Starting;
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.register().await {
                Ok((interval, shards)) => {
                    info!(
                        coord = %self.coord,
                        shards,
                        "registered with the coordinator, heartbeat every {interval:?}"
                    );
                    link = Link::Registered;
                    backoff = MIN_BACKOFF;
                    self.heartbeat_until_forgotten(interval, &mut link).await;
                    info!(coord = %self.coord, "coordinator does not know this node; registering again");
                }
                Err(e) => {
                    if link != Link::Unreachable {
                        warn!(coord = %self.coord, "failed to register with the coordinator, will keep trying: {e}");
                        link = Link::Unreachable;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// `Register`, then the whole inventory. Returns the heartbeat interval and the number
    /// of shards announced.
    async fn register(&self) -> WireResult<(Duration, usize)> {
        let stats = self.stats().await?;
        let req = CoordRequest::Register {
            node: self.store.node_id(),
            addr: self.addr.clone(),
            stats,
        };
        let heartbeat_ms = match self.call(&req).await? {
            CoordResponse::Registered { heartbeat_ms } => heartbeat_ms,
            _ => return Err(WireError::unexpected("Register")),
        };
        let store = self.store.clone();
        let shards = tokio::task::spawn_blocking(move || store.list())
            .await
            .map_err(|e| WireError::internal(format!("inventory task failed: {e}")))?
            .map_err(|e| WireError::internal(format!("failed to list shards: {e}")))?;
        for req in inventory_parts(self.store.node_id(), &shards) {
            match self.call(&req).await? {
                CoordResponse::Unit => {}
                _ => return Err(WireError::unexpected("Inventory")),
            }
        }
        let interval = Duration::from_millis(heartbeat_ms).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
        Ok((interval, shards.len()))
    }

    /// Heartbeats until the coordinator says it does not know us. Other failures (timeouts,
    /// a coordinator that is down) just mean trying again at the next beat: when it comes
    /// back having lost its memory, the answer is `NotFound` and we register again.
    ///
    /// A heartbeat that failed in transport is repeated at once, not a beat later: when
    /// the coordinator restarts, the first heartbeat on the old connection fails as soon
    /// as the new process answers it with a stateless reset (`reset_key.rs`), and the
    /// immediate retry on a fresh connection gets `NotFound`, so the node registers
    /// again within milliseconds of the restart.
    async fn heartbeat_until_forgotten(&self, interval: Duration, link: &mut Link) {
        let mut retry_now = false;
        loop {
            if !retry_now {
                tokio::time::sleep(interval).await;
            }
            let retried = std::mem::take(&mut retry_now);
            let result = match self.stats().await {
                Ok(stats) => {
                    let req = CoordRequest::Heartbeat {
                        node: self.store.node_id(),
                        stats,
                    };
                    // No longer than a beat: a heartbeat lost on the connection to a
                    // coordinator that died is given up (and redone on a fresh
                    // connection) by the time the next one is due.
                    let deadline = interval.clamp(Duration::from_millis(500), CALL_DEADLINE);
                    self.client.call(&self.coord, &req, deadline).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(CoordResponse::Unit) => {
                    if *link != Link::Registered {
                        info!(coord = %self.coord, "coordinator reachable again");
                        *link = Link::Registered;
                    }
                }
                Ok(_) => {
                    if *link != Link::Unreachable {
                        warn!(coord = %self.coord, "unexpected response to Heartbeat");
                        *link = Link::Unreachable;
                    }
                }
                Err(e) if e.code == ErrorCode::NotFound => return,
                Err(e) if e.code == ErrorCode::Unavailable && !retried => {
                    retry_now = true;
                    continue;
                }
                Err(e) => {
                    if *link != Link::Unreachable {
                        warn!(coord = %self.coord, "failed to heartbeat, will keep trying: {e}");
                        *link = Link::Unreachable;
                    }
                }
            }
        }
    }

    async fn call(&self, req: &CoordRequest) -> WireResult<CoordResponse> {
        self.client.call(&self.coord, req, CALL_DEADLINE).await
    }

    async fn stats(&self) -> WireResult<NodeStats> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.stats())
            .await
            .map_err(|e| WireError::internal(format!("stats task failed: {e}")))
    }
}

/// Splits an inventory into `Inventory` requests of at most `MAX_INVENTORY_PART` ids. An
/// empty inventory is still one part (first and last), so the coordinator learns that the
/// node holds nothing.
fn inventory_parts(node: dfs_proto::NodeId, shards: &[ShardId]) -> Vec<CoordRequest> {
    let chunks: Vec<&[ShardId]> = if shards.is_empty() {
        vec![&[]]
    } else {
        shards.chunks(MAX_INVENTORY_PART).collect()
    };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| CoordRequest::Inventory {
            node,
            shards: c.to_vec(),
            first: i == 0,
            last: i + 1 == n,
        })
        .collect()
}

#[cfg(test)]
mod tests;
