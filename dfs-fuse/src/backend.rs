//! What the filesystem core needs from the cluster, as a trait: send a request to the
//! coordinator, send a request to a storage node.
//!
//! The real implementation ([`Remote`]) speaks QUIC; tests use an in-process coordinator
//! and in-memory nodes, so the whole filesystem logic runs without a kernel or a network.

use dfs_proto::access::Role;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::WireResult;
use std::future::Future;
use std::time::Duration;

pub trait Backend: Send + Sync + 'static {
    /// One request to the coordinator.
    fn meta(&self, req: CoordRequest) -> impl Future<Output = WireResult<CoordResponse>> + Send;
    /// One request to the storage node at `addr`, answered within `deadline`.
    fn node(
        &self,
        addr: &str,
        req: &NodeRequest,
        deadline: Duration,
    ) -> impl Future<Output = WireResult<NodeResponse>> + Send;
}

/// The cluster over QUIC: one warm connection to the coordinator and one per node.
pub struct Remote {
    coord_addr: String,
    coord: RpcClient,
    nodes: RpcClient,
    meta_deadline: Duration,
}

impl Remote {
    pub fn new(
        tls: &ClusterTls,
        coord_addr: String,
        meta_deadline: Duration,
    ) -> anyhow::Result<Remote> {
        // One UDP socket serves both: QUIC multiplexes connections on it.
        let ep = client_endpoint(tls)?;
        Ok(Remote {
            coord_addr,
            coord: RpcClient::new(ep.clone(), Role::Coord),
            nodes: RpcClient::new(ep, Role::Node),
            meta_deadline,
        })
    }

    /// What closes this backend's connections (coordinator and nodes alike: they share
    /// one endpoint) when the mount ends, so that servers learn at once that this client
    /// is gone instead of keeping its connections until their idle timeout. A future of
    /// its own, so it can be kept after the backend itself is handed to the filesystem.
    pub fn closer(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let client = RpcClient::new(self.coord.endpoint().clone(), Role::Coord);
        async move { client.close().await }
    }
}

impl Backend for Remote {
    /// Within the deadline, a request whose transport fails (the coordinator restarting:
    /// its old connection reset, the new process not listening yet) is tried again on a
    /// fresh connection, so a restart shows as a pause rather than EIO. Only requests
    /// that are safe to repeat are repeated once they may have been sent.
    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        let r = self
            .coord
            .call_patiently(
                &self.coord_addr,
                &req,
                self.meta_deadline,
                self.meta_deadline,
                req.is_idempotent(),
            )
            .await;
        // A program on the mount sees only EIO: the log says which request and why.
        if let Err(e) = &r {
            if e.code == dfs_proto::ErrorCode::Unavailable {
                tracing::warn!(request = req.name(), "coordinator request failed: {e}");
            }
        }
        r
    }

    async fn node(
        &self,
        addr: &str,
        req: &NodeRequest,
        deadline: Duration,
    ) -> WireResult<NodeResponse> {
        match req {
            // The shard's bytes go to quinn as they are, not copied into a frame per node.
            NodeRequest::Put { id, data } => {
                let frame = NodeRequest::put_frame(*id, data.clone())?;
                self.nodes.call_frame(addr, &frame, deadline).await
            }
            _ => self.nodes.call(addr, req, deadline).await,
        }
    }
}
