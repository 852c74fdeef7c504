//! [`Observed`]: all that the daemon's HTTP endpoints (metrics, the cluster view) need of
//! the coordinator — to ask it what a local administrator may ask, and to read its recent
//! events. Keeping them behind this trait means they see the coordinator exactly as the
//! `dfs` command line does (the same requests, the same access rules) and never its
//! internals; and that they can be tested against any implementation.

use crate::events::Events;
use dfs_proto::coord_msg::{ClusterStatus, CoordRequest, CoordResponse};
use dfs_proto::{WireError, WireResult};
use std::future::Future;
use std::sync::Arc;

pub trait Observed: Send + Sync + 'static {
    /// Serves `req` as if an administrator on this machine had sent it.
    fn ask(&self, req: CoordRequest) -> impl Future<Output = WireResult<CoordResponse>> + Send;

    /// Recent state changes (nodes down and up, repairs, corruption, garbage collection).
    fn events(&self) -> &Events;
}

impl<T: Observed> Observed for Arc<T> {
    fn ask(&self, req: CoordRequest) -> impl Future<Output = WireResult<CoordResponse>> + Send {
        (**self).ask(req)
    }

    fn events(&self) -> &Events {
        (**self).events()
    }
}

/// The cluster status, as `dfs status` asks for it.
pub(crate) async fn status(o: &impl Observed) -> WireResult<ClusterStatus> {
    match o.ask(CoordRequest::Status).await? {
        CoordResponse::Status(st) => Ok(st),
        other => Err(WireError::internal(format!(
            "unexpected answer to Status: {other:?}"
        ))),
    }
}
