//! What the node does when it finds one of its copies damaged, whether a read found it or
//! the scrubber did: delete that copy, and tell the coordinator.
//!
//! Why delete rather than keep serving `Corrupt`? A damaged copy that stays on disk still
//! appears in the node's inventory, so the coordinator would go on counting it as one of
//! the shard's copies and never repair it. Once the file is gone (and the coordinator has
//! been told), the shard is simply under-replicated, and the ordinary repair path
//! (`Replicate` from a good holder) restores the copy count, possibly onto this very node.
//!
//! The report is fire and forget: if it is lost (coordinator down), nothing is wrong for
//! long, because the node's next inventory no longer lists the shard.

use crate::blocking::blocking;
use crate::shard_store::{Corruption, ShardStore};
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::rpc::RpcClient;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// How long a report to the coordinator may take; nobody waits for it, this only bounds
/// how long the background task lives.
const REPORT_DEADLINE: Duration = Duration::from_secs(5);

/// Drops damaged copies and reports them. Cheap to clone: the server and the scrubber each
/// hold one.
#[derive(Clone)]
pub struct CorruptionHandler {
    store: Arc<ShardStore>,
    /// A client for the coordinator (its certificate must carry the coordinator role).
    coord_client: Arc<RpcClient>,
    coord: String,
}

impl CorruptionHandler {
    pub fn new(store: Arc<ShardStore>, coord_client: RpcClient, coord: String) -> Self {
        CorruptionHandler {
            store,
            coord_client: Arc::new(coord_client),
            coord,
        }
    }

    /// Deletes the damaged file `c` names and reports it to the coordinator in the
    /// background. Returns once the file is deleted (or found already gone).
    pub async fn handle(&self, c: Corruption) {
        let (id, defect) = (c.id, c.defect.clone());
        let store = self.store.clone();
        match blocking(move || store.discard(&c)).await {
            Ok(true) => {
                warn!(
                    shard = %id,
                    "shard {id} is corrupt on this node ({defect}); deleted the copy and reported it"
                );
                self.report(id);
            }
            // Another reader (or the scrubber) got there first and reported it, or a put
            // has already replaced the copy with good bytes: nothing left to do.
            Ok(false) => debug!(shard = %id, "damaged copy already dropped or replaced"),
            Err(e) => {
                // The bad copy stays, but the coordinator must still stop counting it.
                warn!(
                    shard = %id,
                    "shard {id} is corrupt on this node ({defect}); failed to delete the copy, reporting it: {e}"
                );
                self.report(id);
            }
        }
    }

    /// Sends `ReportCorrupt` on a task of its own: the read that found the damage answers
    /// its caller without waiting for the coordinator.
    fn report(&self, id: dfs_proto::ShardId) {
        let (client, coord) = (self.coord_client.clone(), self.coord.clone());
        let node = self.store.node_id();
        tokio::spawn(async move {
            let req = CoordRequest::ReportCorrupt { node, id };
            match client
                .call::<_, CoordResponse>(&coord, &req, REPORT_DEADLINE)
                .await
            {
                Ok(CoordResponse::Unit) => debug!(shard = %id, "reported corrupt copy"),
                Ok(_) => debug!(shard = %id, "unexpected response to ReportCorrupt"),
                // Not worth a warning: the next inventory tells the coordinator anyway.
                Err(e) => debug!(shard = %id, "failed to report corrupt copy: {e}"),
            }
        });
    }
}
