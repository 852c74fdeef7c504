//! The node's request handler: maps each [`NodeRequest`] arriving over QUIC onto the shard
//! store. Transport, TLS and framing are `dfs_proto::rpc`'s job; this file only decides
//! what each request does.

use crate::shard_store::ShardStore;
use dfs_proto::node_msg::{NodeRequest, NodeResponse, NodeStatus};
use dfs_proto::rpc::{Handler, Peer};
use dfs_proto::{WireError, WireResult};
use std::sync::Arc;
use tracing::debug;

/// Serves `NodeRequest`s from one shard store.
pub struct NodeService {
    store: Arc<ShardStore>,
}

impl NodeService {
    pub fn new(store: Arc<ShardStore>) -> NodeService {
        NodeService { store }
    }
}

impl Handler<NodeRequest, NodeResponse> for NodeService {
    async fn handle(&self, peer: &Peer, req: NodeRequest) -> WireResult<NodeResponse> {
        // Any certificate from the cluster CA may use a node: clients read and write
        // shards, other nodes and the coordinator copy and delete them.
        let store = self.store.clone();
        match req {
            NodeRequest::Put { id, data } => {
                debug!(peer = %peer.addr, shard = %id, len = data.len(), "put");
                blocking(move || store.put(id, &data)).await?;
                Ok(NodeResponse::Stored)
            }
            NodeRequest::Get { id, range } => {
                debug!(peer = %peer.addr, shard = %id, ?range, "get");
                let data = blocking(move || store.get(id, range)).await?;
                Ok(NodeResponse::Data(data))
            }
            NodeRequest::Delete { id } => {
                debug!(peer = %peer.addr, shard = %id, "delete");
                blocking(move || store.delete(id)).await?;
                Ok(NodeResponse::Deleted)
            }
            NodeRequest::Replicate { id, .. } => Err(WireError::invalid(format!(
                "replicate of {id}: not implemented by this node yet"
            ))),
            NodeRequest::Status => {
                // stats() may call statvfs, a (short) blocking system call.
                let node = store.node_id();
                let stats = blocking(move || Ok(store.stats())).await?;
                Ok(NodeResponse::Status(NodeStatus { node, stats }))
            }
        }
    }
}

/// Runs blocking file I/O on tokio's blocking pool, so a slow disk stalls only that
/// request and not the QUIC connections sharing the async worker threads.
async fn blocking<T, F>(f: F) -> WireResult<T>
where
    F: FnOnce() -> WireResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WireError::internal(format!("storage task failed: {e}")))?
}
