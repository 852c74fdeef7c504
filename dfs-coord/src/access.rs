//! Who may send which coordinator request: the coordinator's access table.
//!
//! - Mounts (`dfs-client`) read and change the namespace and file layouts. Administrators
//!   (`dfs-admin`) may too, so an operator can repair a file by hand.
//! - Only storage nodes (`dfs-node`) speak for the registry: which nodes exist and which
//!   shards they hold. A client that could register would be able to send every reader
//!   to a machine of its choosing.
//! - Cluster-wide inspection and operations (`Status`, `Fsck`, `Locate`, draining and
//!   removing nodes) need `dfs-admin`: they reveal every node and shard, or change them.
//! - The coordinator's own certificate (`dfs-coord`) sends nothing to the coordinator.
//!
//! The `match` has no wildcard arm on purpose: a new request does not compile until it
//! has a row here. `Coordinator::handle` checks the row before dispatching.

use dfs_proto::access::Role;
use dfs_proto::access::Rule;
use dfs_proto::coord_msg::CoordRequest;

const MOUNT: &[Role] = &[Role::Client, Role::Admin];
const NODE: &[Role] = &[Role::Node];
const ADMIN: &[Role] = &[Role::Admin];

/// The access rule for `req`.
pub fn rule(req: &CoordRequest) -> Rule {
    use CoordRequest as Q;
    let roles = match req {
        // Namespace.
        Q::Lookup { .. } => MOUNT,
        Q::GetAttr { .. } => MOUNT,
        Q::SetAttr { .. } => MOUNT,
        Q::Create { .. } => MOUNT,
        Q::Symlink { .. } => MOUNT,
        Q::Readlink { .. } => MOUNT,
        Q::Link { .. } => MOUNT,
        Q::Unlink { .. } => MOUNT,
        Q::Rmdir { .. } => MOUNT,
        Q::RemoveBatch { .. } => MOUNT,
        Q::Rename { .. } => MOUNT,
        Q::ReadDir { .. } => MOUNT,
        Q::Release { .. } => MOUNT,
        Q::SetXattr { .. } => MOUNT,
        Q::GetXattr { .. } => MOUNT,
        Q::ListXattr { .. } => MOUNT,
        Q::RemoveXattr { .. } => MOUNT,
        Q::StatFs => MOUNT,
        // Data layout.
        Q::GetLayout { .. } => MOUNT,
        Q::Place { .. } => MOUNT,
        Q::Commit { .. } => MOUNT,
        Q::Touch { .. } => MOUNT,
        Q::Sync => MOUNT,
        // Node registry.
        Q::Register { .. } => NODE,
        Q::Inventory { .. } => NODE,
        Q::Heartbeat { .. } => NODE,
        Q::ReportCorrupt { .. } => NODE,
        // Administration.
        Q::Status => ADMIN,
        Q::Fsck => ADMIN,
        Q::Locate { .. } => ADMIN,
        Q::DrainNode { .. } => ADMIN,
        Q::RemoveNode { .. } => ADMIN,
    };
    Rule::new(req.name(), roles)
}
