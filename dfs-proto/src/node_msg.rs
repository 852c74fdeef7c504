//! Requests to a storage node. Each request travels on its own QUIC stream and gets exactly
//! one [`NodeResponse`] (or a [`crate::WireError`]).
//!
//! | request            | success response          | distinct errors                      |
//! |--------------------|---------------------------|--------------------------------------|
//! | `Put`              | `Stored`                  | `Corrupt` (hash mismatch), `NoSpace` |
//! | `Get`              | `Data`                    | `NotFound`, `Corrupt`, `Invalid`     |
//! | `Delete`           | `Deleted`                 | `NotFound`                           |
//! | `Status`           | `Status`                  |                                      |
//! | `Replicate`        | `Stored`                  | `Unavailable`, `NoSpace`             |
//! | `Sync`             | `Synced`                  | `Invalid` (too many IDs)             |

use crate::ids::{NodeId, ShardId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeRequest {
    /// Store `data` as shard `id`. The node hashes the bytes and refuses them with
    /// `Corrupt` if they do not match `id`; it answers once the shard is in place and
    /// readable, durable only after a `Sync` (or the node's own periodic sync, or at once
    /// on a node run with `--durable-close`). Storing a shard it already has is a no-op.
    Put {
        id: ShardId,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Read a whole shard (`range: None`) or `len` bytes at `offset`. The node verifies
    /// every 64 KiB block it reads against the checksum kept for it with the shard; for a
    /// whole shard the caller checks the SHA-256 against `id` itself. A range past the end
    /// is `Invalid`.
    Get {
        id: ShardId,
        range: Option<ByteRange>,
    },
    /// Remove a shard.
    Delete { id: ShardId },
    /// Re-replication: fetch shard `id` from the first of `sources` (node addresses) that
    /// serves bytes matching the ID, and store it like a `Put`. Answers `Stored` once the
    /// copy is durable; `Unavailable` if no source could serve it. Sent by the
    /// coordinator, so repair traffic goes node to node and never through a client.
    Replicate { id: ShardId, sources: Vec<String> },
    /// Capacity, usage and shard count.
    Status,
    /// Make these shards durable (a client's `fsync`, like NFS's COMMIT): when the node
    /// answers `Synced`, every one of them it holds survives a power loss. At most
    /// [`MAX_SYNC_IDS`] per request.
    Sync { ids: Vec<ShardId> },
}

/// Most shard IDs in one `Sync` (32 bytes each: 256 KiB of IDs).
pub const MAX_SYNC_IDS: usize = 8192;

impl NodeRequest {
    /// The request's name, in snake case: the `op` label of the RPC metrics and the name
    /// in "may not send" errors.
    pub fn name(&self) -> &'static str {
        match self {
            NodeRequest::Put { .. } => "put",
            NodeRequest::Get { .. } => "get",
            NodeRequest::Delete { .. } => "delete",
            NodeRequest::Replicate { .. } => "replicate",
            NodeRequest::Status => "status",
            NodeRequest::Sync { .. } => "sync",
        }
    }
}

/// A byte range inside one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeResponse {
    Stored,
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    Deleted,
    Status(NodeStatus),
    /// The answer to `Sync`: the requested shards this node does not hold (all the others
    /// are durable).
    Synced {
        missing: Vec<ShardId>,
    },
}

/// A node's view of its own disk, as reported to the coordinator and to `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeStats {
    /// Bytes this node may use for shards (configured limit, or free disk minus reserve).
    pub capacity: u64,
    /// Bytes its shard files take.
    pub used: u64,
    /// `capacity - used`, never negative.
    pub free: u64,
    /// Number of shards stored.
    pub shards: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub stats: NodeStats,
}
