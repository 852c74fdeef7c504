//! Background maintenance: the loop that keeps every shard at `replicas` copies and deletes
//! what nothing uses any more, and the pluggable way it talks to storage nodes.
//!
//! Each pass ([`Coordinator::maintain_once`]) scans the shard records once and then:
//! 1. repairs (`repair.rs`): copies shards that lost copies to new nodes, node to node,
//!    and removes surplus copies once a lost node comes back;
//! 2. collects garbage (`gc.rs`): deletes shards no file uses, after a grace period.
//!
//! Passes never overlap: `run` awaits one before starting the next, so the decisions of a
//! pass are never undone by another one running beside it. What a pass has to remember
//! (when a shard became unreferenced, which ids were placed recently, repair progress)
//! lives in memory in [`Maint`]: after a coordinator restart the clocks simply start again,
//! which only ever delays a deletion, never hastens one.

use crate::server::Coordinator;
use crate::store::Reader;
use crate::store::ShardRec;
use dfs_proto::access::Role;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{Ino, NodeId, ShardId, WireError, WireResult};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// Most node requests maintenance has outstanding at once, so repair and deletion never
/// crowd out the clients' own requests to a node.
pub const MAX_IN_FLIGHT: usize = 4;

/// The future a [`NodeSender`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = WireResult<NodeResponse>> + Send + 'a>>;

/// How maintenance sends requests to storage nodes. The coordinator uses
/// [`RpcNodeSender`]; tests plug in a fake that records requests and answers at once.
pub trait NodeSender: Send + Sync + 'static {
    /// Sends `req` to the node listening at `addr` and returns its answer.
    fn send<'a>(&'a self, addr: &'a str, req: NodeRequest) -> SendFuture<'a>;
}

/// The real sender: QUIC with the coordinator's own certificate (role `coord`), which
/// nodes accept for `Replicate` and `Delete`.
pub struct RpcNodeSender {
    client: RpcClient,
}

impl RpcNodeSender {
    pub fn new(tls: &ClusterTls) -> anyhow::Result<RpcNodeSender> {
        Ok(RpcNodeSender {
            client: RpcClient::new(client_endpoint(tls)?, Role::Node),
        })
    }
}

impl NodeSender for RpcNodeSender {
    fn send<'a>(&'a self, addr: &'a str, req: NodeRequest) -> SendFuture<'a> {
        // A Replicate moves a whole shard between two nodes and may queue behind client
        // traffic; a Delete is a file removal.
        let deadline = match req {
            NodeRequest::Replicate { .. } => Duration::from_secs(60),
            _ => Duration::from_secs(10),
        };
        Box::pin(async move { self.client.call(addr, &req, deadline).await })
    }
}

/// Sends every request (`(node, address, request)`), at most [`MAX_IN_FLIGHT`] at a time,
/// and returns the answers in the same order. `gauge` counts the requests under way.
pub(crate) async fn send_all(
    sender: &Arc<dyn NodeSender>,
    reqs: Vec<(NodeId, String, NodeRequest)>,
    gauge: Option<&Arc<AtomicU64>>,
) -> Vec<WireResult<NodeResponse>> {
    let n = reqs.len();
    let mut out: Vec<Option<WireResult<NodeResponse>>> = (0..n).map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut pending = reqs.into_iter().enumerate();
    loop {
        while set.len() < MAX_IN_FLIGHT {
            let Some((i, (_, addr, req))) = pending.next() else {
                break;
            };
            let s = sender.clone();
            let g = gauge.cloned();
            if let Some(g) = &g {
                g.fetch_add(1, Ordering::Relaxed);
            }
            set.spawn(async move {
                let r = s.send(&addr, req).await;
                if let Some(g) = &g {
                    g.fetch_sub(1, Ordering::Relaxed);
                }
                (i, r)
            });
        }
        match set.join_next().await {
            Some(Ok((i, r))) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Some(Err(e)) => warn!("failed to run a node request: {e}"),
            None => break,
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(WireError::internal("node request task failed"))))
        .collect()
}

/// A repair episode: from the first pass that finds under-replicated shards to the first
/// that finds none, for the start and finish log lines.
#[derive(Debug)]
pub(crate) struct Episode {
    pub started: Instant,
    pub shards: u64,
    pub bytes: u64,
}

/// What maintenance remembers between passes (in memory only, see the module comment).
#[derive(Debug, Default)]
pub(crate) struct Maint {
    /// Repair token bucket: bytes that may still be copied now, refilled at `repair_rate`.
    pub tokens: f64,
    pub refilled_at: Option<Instant>,
    pub episode: Option<Episode>,
    /// Bytes of under-replicated shards still to copy, as of the last pass.
    pub bytes_left: u64,
    pub repaired: u64,
    pub collected: u64,
    /// Corrupt copies reported by nodes since start.
    pub corrupt: u64,
    /// Nodes that reported their copy of a shard corrupt, until the shard is whole again.
    /// Repair prefers other targets: a disk that rotted a shard once is a poor home for
    /// its replacement.
    pub bad_copies: HashMap<ShardId, Vec<NodeId>>,
    /// Shards first seen with no references, and when.
    pub unreferenced_since: HashMap<ShardId, Instant>,
    /// Shards recently handed out by `Place`: a write may be about to reference them.
    pub placed: HashMap<ShardId, Instant>,
    /// The nodes `Place` sent each of those shards to. When the placement expires without
    /// a commit (an aborted write), the copies there are garbage.
    pub placed_on: HashMap<ShardId, Vec<NodeId>>,
    /// Shards a node's inventory listed but the coordinator has no record of, and when
    /// each was first listed.
    pub unknown_seen: HashMap<(NodeId, ShardId), Instant>,
    /// Shards whose copies garbage collection is deleting right now, and on which nodes.
    /// `Place` neither offers those copies as holders nor puts the shard there again.
    pub collecting: HashMap<ShardId, Vec<NodeId>>,
    /// Orphan inodes (unlinked while open), and when a mount last said it still has each
    /// open, or, if none has since this coordinator started, when a pass first saw it.
    pub orphan_seen: HashMap<Ino, Instant>,
}

impl Maint {
    /// Whether `Place` handed out `id` less than `grace` before `now`.
    pub fn recently_placed(&self, id: &ShardId, now: Instant, grace: Duration) -> bool {
        self.placed
            .get(id)
            .is_some_and(|at| now.saturating_duration_since(*at) <= grace)
    }
}

impl Coordinator {
    /// Plugs in how maintenance reaches the nodes. `run` installs an [`RpcNodeSender`];
    /// without a sender, [`Coordinator::maintain_once`] only updates its bookkeeping.
    pub fn set_node_sender(&self, sender: Arc<dyn NodeSender>) {
        *self.sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
    }

    fn node_sender(&self) -> Option<Arc<dyn NodeSender>> {
        self.sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One maintenance pass at `now`: repair, surplus removal, garbage collection, and
    /// orphan inodes whose mount is gone.
    /// `run` calls it every `maintenance_interval`; tests call it with chosen instants.
    pub async fn maintain_once(&self, now: Instant) -> WireResult<()> {
        let shards: Vec<(ShardId, ShardRec)> = self.read(|r| r.all_shards()).await?;
        let sender = self.node_sender();
        self.repair_pass(&shards, sender.as_ref(), now).await?;
        self.gc_pass(&shards, sender.as_ref(), now).await?;
        self.orphan_pass(now).await?;
        Ok(())
    }
}

/// Runs [`Coordinator::maintain_once`] every `maintenance_interval` until aborted.
pub(crate) async fn maintenance_loop(coord: Arc<Coordinator>) {
    let mut iv = tokio::time::interval(coord.settings().maintenance_interval);
    // A slow pass (a big repair) should not be followed by a burst of catch-up passes.
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        if let Err(e) = coord.maintain_once(Instant::now()).await {
            warn!("failed to run maintenance: {e}");
        }
    }
}
