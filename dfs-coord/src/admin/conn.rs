//! The `dfs` command's connection to the coordinator, and what its failures mean for the
//! exit code.
//!
//! The coordinator answers a request it will not carry out with a [`WireError`] whose code
//! says why. `dfs` tells two kinds of failure apart, because a script reacts differently:
//! the cluster could not be asked at all (no answer, a broken configuration: exit 3, as
//! `fsck` has always used) or it answered "no" (no such file or node, removal refused,
//! not an admin: exit 4).

use super::cluster_dir::{ClusterDir, CERT_NAME};
use anyhow::{Context, Result};
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{ClusterStatus, CoordRequest, CoordResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::{ErrorCode, WireError};
use std::time::Duration;

/// Exit code: the command could not run (configuration, connection, coordinator failure).
pub const EXIT_COULD_NOT_RUN: u8 = 3;
/// Exit code: the coordinator refused (not found, not permitted, not authorized, invalid).
pub const EXIT_REFUSED: u8 = 4;

/// The exit code for a failed command.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<WireError>().map(|w| w.code) {
        // The cluster itself is in trouble, or nothing answered.
        Some(ErrorCode::Unavailable | ErrorCode::Internal) | None => EXIT_COULD_NOT_RUN,
        // The cluster answered, and the answer is no.
        Some(_) => EXIT_REFUSED,
    }
}

/// A connection to one coordinator with the admin certificate.
pub struct Admin {
    client: RpcClient,
    pub coord: String,
}

/// Deadline of ordinary requests.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Deadline of requests that scan the whole shard map (fsck, node removal).
pub const SCAN_DEADLINE: Duration = Duration::from_secs(120);

impl Admin {
    /// Prepares a client for the cluster (nothing is sent yet). Needs a tokio runtime.
    pub fn new(cluster: &ClusterDir) -> Result<Admin> {
        let tls = dfs_ops::daemon::load_tls(&cluster.certs, CERT_NAME)?;
        Ok(Admin {
            client: RpcClient::new(client_endpoint(&tls)?, Role::Coord),
            coord: cluster.coord.clone(),
        })
    }

    /// Sends one request. A [`WireError`] stays the root cause of the error, so that
    /// [`exit_code`] can see its code.
    pub async fn ask(&self, req: CoordRequest, deadline: Duration) -> Result<CoordResponse> {
        self.client
            .call(&self.coord, &req, deadline)
            .await
            .map_err(anyhow::Error::new)
            .with_context(|| {
                // Named only on failure: formatting a request can be long (4096 shard IDs).
                format!(
                    "coordinator {} refused or failed {}",
                    self.coord,
                    request_name(&req)
                )
            })
    }

    pub async fn status(&self) -> Result<ClusterStatus> {
        match self.ask(CoordRequest::Status, DEADLINE).await? {
            CoordResponse::Status(s) => Ok(s),
            other => Err(unexpected("Status", &other)),
        }
    }

    /// Closes the connection, for a command that is done.
    pub async fn close(&self) {
        self.client.close().await;
    }
}

/// Something that sends one request to a coordinator and returns its answer: [`Admin`]
/// over QUIC, or the cluster view inside the coordinator itself (`view.rs`), so that both
/// show a file's shards with the same code ([`super::locate::file_map`]).
// `async fn` in a public trait hides whether the future is `Send`; callers here use
// concrete types, for which the compiler knows, so the plain form is enough.
#[allow(async_fn_in_trait)]
pub trait Ask {
    async fn ask(&self, req: CoordRequest, deadline: Duration) -> Result<CoordResponse>;

    async fn status(&self) -> Result<ClusterStatus> {
        match self.ask(CoordRequest::Status, DEADLINE).await? {
            CoordResponse::Status(s) => Ok(s),
            other => Err(unexpected("Status", &other)),
        }
    }
}

impl Ask for Admin {
    async fn ask(&self, req: CoordRequest, deadline: Duration) -> Result<CoordResponse> {
        Admin::ask(self, req, deadline).await
    }

    async fn status(&self) -> Result<ClusterStatus> {
        Admin::status(self).await
    }
}

/// The variant name of a request, for messages (its fields can be long).
fn request_name(req: &CoordRequest) -> String {
    let dbg = format!("{req:?}");
    dbg.split([' ', '{', '('])
        .next()
        .unwrap_or("a request")
        .to_string()
}

/// An error for a response of the wrong kind (a coordinator of another build).
pub fn unexpected(what: &str, got: &CoordResponse) -> anyhow::Error {
    let dbg = format!("{got:?}");
    let name = dbg.split([' ', '{', '(']).next().unwrap_or("?");
    anyhow::anyhow!("unexpected answer {name} to {what} from the coordinator")
}
