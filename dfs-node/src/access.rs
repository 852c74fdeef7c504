//! Who may send which node request: the storage node's access table.
//!
//! - Mounts (`dfs-client`) store shards (`Put`), make them durable (`Sync`, for a
//!   program's fsync) and read them (`Get`).
//! - Other storage nodes (`dfs-node`) read shards too: during repair a node fetches the
//!   copy it was told to make from a node that has one (`replication.rs`).
//! - Only the coordinator (`dfs-coord`) deletes shards (garbage collection, surplus
//!   copies) and orders copies (`Replicate`): it is the one that knows whether a shard is
//!   still referenced. A client able to delete shards directly could destroy other users'
//!   data without going through the namespace's permission checks.
//! - `Status` is for the coordinator and administrators.
//!
//! The `match` has no wildcard arm on purpose: a new request does not compile until it
//! has a row here. `NodeService::handle` checks the row before doing anything.

use dfs_proto::access::Role;
use dfs_proto::access::Rule;
use dfs_proto::node_msg::NodeRequest;

/// The access rule for `req`.
pub fn rule(req: &NodeRequest) -> Rule {
    let roles: &'static [Role] = match req {
        NodeRequest::Put { .. } => &[Role::Client],
        NodeRequest::Get { .. } => &[Role::Client, Role::Node],
        NodeRequest::Delete { .. } => &[Role::Coord],
        NodeRequest::Replicate { .. } => &[Role::Coord],
        NodeRequest::Status => &[Role::Coord, Role::Admin],
        NodeRequest::Sync { .. } => &[Role::Client, Role::Coord],
    };
    Rule::new(req.name(), roles)
}
