//! dfs storage node: keeps content-addressed shards on local disk.
//!
//! # Layout
//! - [`shard_store`]: the data directory: durable writes, verified reads, deletes, listing,
//!   space accounting against capacity, and the node's identity file.
//! - [`shard_file`]: the byte layout of one shard file (header, per-block checksums, data).
//! - [`durable`]: the crash-safe file-writing sequences, in one place.

pub mod durable;
pub mod shard_file;
pub mod shard_store;
