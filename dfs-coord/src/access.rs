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

use dfs_proto::access::Rule;
use dfs_proto::coord_msg::CoordRequest;
use dfs_proto::pki::Role;

const MOUNT: &[Role] = &[Role::Client, Role::Admin];
const NODE: &[Role] = &[Role::Node];
const ADMIN: &[Role] = &[Role::Admin];

/// The access rule for `req`.
pub fn rule(req: &CoordRequest) -> Rule {
    use CoordRequest as Q;
    match req {
        // Namespace.
        Q::Lookup { .. } => Rule::new("Lookup", MOUNT),
        Q::GetAttr { .. } => Rule::new("GetAttr", MOUNT),
        Q::SetAttr { .. } => Rule::new("SetAttr", MOUNT),
        Q::Create { .. } => Rule::new("Create", MOUNT),
        Q::Symlink { .. } => Rule::new("Symlink", MOUNT),
        Q::Readlink { .. } => Rule::new("Readlink", MOUNT),
        Q::Link { .. } => Rule::new("Link", MOUNT),
        Q::Unlink { .. } => Rule::new("Unlink", MOUNT),
        Q::Rmdir { .. } => Rule::new("Rmdir", MOUNT),
        Q::Rename { .. } => Rule::new("Rename", MOUNT),
        Q::ReadDir { .. } => Rule::new("ReadDir", MOUNT),
        Q::Release { .. } => Rule::new("Release", MOUNT),
        Q::SetXattr { .. } => Rule::new("SetXattr", MOUNT),
        Q::GetXattr { .. } => Rule::new("GetXattr", MOUNT),
        Q::ListXattr { .. } => Rule::new("ListXattr", MOUNT),
        Q::RemoveXattr { .. } => Rule::new("RemoveXattr", MOUNT),
        Q::StatFs => Rule::new("StatFs", MOUNT),
        // Data layout.
        Q::GetLayout { .. } => Rule::new("GetLayout", MOUNT),
        Q::Place { .. } => Rule::new("Place", MOUNT),
        Q::Commit { .. } => Rule::new("Commit", MOUNT),
        Q::Touch { .. } => Rule::new("Touch", MOUNT),
        Q::Sync => Rule::new("Sync", MOUNT),
        // Node registry.
        Q::Register { .. } => Rule::new("Register", NODE),
        Q::Inventory { .. } => Rule::new("Inventory", NODE),
        Q::Heartbeat { .. } => Rule::new("Heartbeat", NODE),
        Q::ReportCorrupt { .. } => Rule::new("ReportCorrupt", NODE),
        // Administration.
        Q::Status => Rule::new("Status", ADMIN),
        Q::Fsck => Rule::new("Fsck", ADMIN),
        Q::Locate { .. } => Rule::new("Locate", ADMIN),
        Q::DrainNode { .. } => Rule::new("DrainNode", ADMIN),
        Q::RemoveNode { .. } => Rule::new("RemoveNode", ADMIN),
    }
}
