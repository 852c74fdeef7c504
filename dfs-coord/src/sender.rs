//! How the coordinator's background work (repair, garbage collection) talks to storage
//! nodes: the [`NodeSender`] it is given at construction, and [`send_all`], which keeps
//! only a few requests outstanding at once.

use dfs_proto::access::Role;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{NodeId, WireError, WireResult};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
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
