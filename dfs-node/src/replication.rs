//! Re-replication, node to node: `Replicate { id, sources }` asks this node to fetch shard
//! `id` from one of `sources` (other nodes) and keep a copy.
//!
//! The coordinator sends it when a shard has fewer copies than it should (a node died, or
//! a copy was found corrupt). The bytes travel directly between the two nodes and never
//! through the coordinator or a client. The fetched bytes are trusted no more than a
//! client's `Put`: they must hash to the shard's id, so a source whose own copy is damaged
//! cannot spread the damage; the next source is tried instead.

use crate::blocking::blocking;
use crate::shard_store::{ReadError, ShardStore};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::RpcClient;
use dfs_proto::{ErrorCode, ShardId, WireError, WireResult};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// How long one source may take to serve a whole shard (at most 8 MiB) before the next
/// one is tried.
pub const SOURCE_DEADLINE: Duration = Duration::from_secs(10);

/// Fetches shards from other nodes into the local store.
pub struct Replicator {
    store: Arc<ShardStore>,
    /// A client for other nodes (their certificates must carry the node role).
    nodes: RpcClient,
    source_deadline: Duration,
}

impl Replicator {
    pub fn new(store: Arc<ShardStore>, nodes: RpcClient) -> Replicator {
        Replicator {
            store,
            nodes,
            source_deadline: SOURCE_DEADLINE,
        }
    }

    /// Replaces [`SOURCE_DEADLINE`] (tests use a short one to try a frozen source quickly).
    pub fn with_source_deadline(mut self, deadline: Duration) -> Replicator {
        self.source_deadline = deadline;
        self
    }

    /// Makes sure this node holds a verified copy of `id`, fetching it from the first of
    /// `sources` that serves bytes matching the id. Logs the outcome.
    pub async fn replicate(&self, id: ShardId, sources: &[String]) -> WireResult<()> {
        let result = self.replicate_inner(id, sources).await;
        if let Err(e) = &result {
            warn!(shard = %id, "failed to replicate shard {id}: {e}");
        }
        result
    }

    async fn replicate_inner(&self, id: ShardId, sources: &[String]) -> WireResult<()> {
        // A repeated Replicate (the coordinator retrying after a lost answer) is cheap:
        // a copy that verifies is all the coordinator asked for.
        let store = self.store.clone();
        match blocking(move || store.read(id, None)).await {
            Ok(_) => {
                debug!(shard = %id, "replicate: already holding a good copy");
                return Ok(());
            }
            // A damaged local copy is not reported here: the coordinator is restoring this
            // very copy, and the put below replaces the damaged file.
            Err(ReadError::Corrupt(c)) => {
                debug!(shard = %id, "replicate: replacing a damaged copy ({})", c.defect);
            }
            Err(ReadError::Failed(_)) => {}
        }
        if sources.is_empty() {
            return Err(WireError::unavailable(format!(
                "shard {id}: no sources to replicate from"
            )));
        }
        let mut failures = Vec::new();
        for src in sources {
            let data = match self.fetch(id, src).await {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{src}: {e}"));
                    continue;
                }
            };
            let len = data.len();
            let store = self.store.clone();
            // The same durable path as a client's Put, so NoSpace (and the space
            // accounting) behave exactly alike. A local failure is not the source's
            // fault: trying the next source would only fail again.
            blocking(move || store.put(id, &data)).await?;
            debug!(shard = %id, source = %src, len, "replicated shard");
            return Ok(());
        }
        Err(WireError::unavailable(format!(
            "shard {id}: no source could serve it ({})",
            failures.join("; ")
        )))
    }

    /// The whole shard from `src`, verified against its id.
    async fn fetch(&self, id: ShardId, src: &str) -> WireResult<Vec<u8>> {
        let req = NodeRequest::Get { id, range: None };
        match self.nodes.call(src, &req, self.source_deadline).await? {
            NodeResponse::Data(d) if id.matches(&d) => Ok(d),
            NodeResponse::Data(d) => Err(WireError::new(
                ErrorCode::Corrupt,
                format!("served {} bytes that do not match the shard's id", d.len()),
            )),
            _ => Err(WireError::unexpected("Get")),
        }
    }
}
