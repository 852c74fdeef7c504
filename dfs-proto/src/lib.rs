//! The dfs wire contract, shared by the coordinator, the storage nodes and the FUSE client.
//!
//! # Layout
//! - [`ids`]: the identifiers every component agrees on (shard IDs are SHA-256 digests,
//!   node IDs, inode numbers).
//! - [`error`]: the small, stable set of error codes that cross the wire.
//! - [`node_msg`]: requests a client (or the coordinator) sends to a storage node.
//! - [`coord_msg`]: requests sent to the coordinator (namespace, layout, node registry).
//! - [`frame`]: how one message is put on a QUIC stream: a length prefix, checked against a
//!   cap *before* anything is allocated, then a protocol version, then postcard bytes.
//! - [`revocation`]: the deny list of revoked certificates, re-read while serving.
//! - [`tls`]: loading the cluster's certificates (issued by the `dfs-pki` crate) into
//!   mutually-authenticated QUIC configs.
//! - [`access`]: certificate roles and the per-request role check servers run before any
//!   work (authorization).
//! - [`rpc`]: one bidirectional QUIC stream per request, with deadlines, for clients and
//!   servers alike.
//!
//! Keep this crate small: it is what every component must agree on, nothing more.

pub mod access;
pub mod coord_msg;
pub mod error;
pub mod frame;
pub mod ids;
pub mod node_msg;
pub mod reset_key;
pub mod revocation;
pub mod rpc;
pub mod tls;

pub use error::{ErrorCode, WireError, WireResult};
pub use ids::{Ino, NodeId, ShardId, ROOT_INO};

/// Version of the message formats in this crate. A peer speaking another version gets a
/// clear `Invalid` error for that stream instead of undecodable garbage. Bump it whenever a
/// message changes shape (postcard is not self-describing: reordering fields breaks peers).
pub const PROTOCOL_VERSION: u16 = 9;

/// ALPN protocol name negotiated in the TLS handshake. A peer that does not speak dfs at
/// all fails the handshake instead of sending frames we cannot parse.
pub const ALPN: &[u8] = b"dfs";

/// Largest shard size a cluster may be configured with. Frames are capped just above it.
pub const MAX_SHARD_SIZE: u32 = 8 << 20;

/// Default shard size: 1 MiB, a cluster setting.
pub const DEFAULT_SHARD_SIZE: u32 = 1 << 20;

/// Longest name of one directory entry, as on Linux filesystems (`ENAMETOOLONG` beyond).
pub const MAX_NAME_LEN: usize = 255;

/// Longest symlink target we store (Linux PATH_MAX).
pub const MAX_SYMLINK_LEN: usize = 4096;

/// Largest extended-attribute value (Linux XATTR_SIZE_MAX).
pub const MAX_XATTR_VALUE: usize = 64 * 1024;
