//! Readahead: a reader that reads a file in order will want the next shards soon, so
//! they are fetched (into the shard cache) while the program still consumes this one, and
//! the network works in parallel with the program instead of after it.
//!
//! Each open handle remembers where its previous read ended ([`ReadPattern`]); a read
//! that starts there (or at 0) is sequential. A sequential read also fetches whole shards
//! rather than just its range (see `read.rs`), which the next reads then hit in the cache.

use crate::backend::Backend;
use crate::file::FileState;
use crate::shard_io::ShardIo;
use dfs_proto::coord_msg::NodeAddr;
use dfs_proto::ShardId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shards fetched ahead of a sequential reader: enough to keep the network busy while the
/// program consumes the current one, few enough not to flush the cache.
pub const READAHEAD_SHARDS: u64 = 2;

/// Where one handle's reads have got to.
pub struct ReadPattern {
    /// End of the previous read: a read starting there is sequential.
    last_end: AtomicU64,
}

impl Default for ReadPattern {
    fn default() -> Self {
        ReadPattern {
            last_end: AtomicU64::new(u64::MAX),
        }
    }
}

impl ReadPattern {
    /// Notes a read of `size` bytes at `offset`; true if it continues the previous one
    /// (or starts the file).
    pub fn observe(&self, offset: u64, size: u32) -> bool {
        self.last_end
            .swap(offset + u64::from(size), Ordering::Relaxed)
            == offset
            || offset == 0
    }
}

impl FileState {
    /// The committed shards after the one holding `offset`, up to `count`, for readahead.
    pub fn next_shards(&self, offset: u64, count: u64) -> Vec<(ShardId, Vec<NodeAddr>)> {
        let first = offset / u64::from(self.shard_size) + 1;
        (first..first + count)
            .filter(|&i| !self.dirty.contains(i))
            .filter_map(|i| self.source(i).map(|s| (s.id, s.holders)))
            .collect()
    }
}

/// Starts fetching `shards` into the cache in the background, skipping those already
/// there (the cache also joins a fetch already running for the same shard).
pub fn prefetch<B: Backend>(io: &Arc<ShardIo<B>>, shards: Vec<(ShardId, Vec<NodeAddr>)>) {
    for (id, holders) in shards {
        if !io.is_cached(&id) {
            let io = io.clone();
            tokio::spawn(async move {
                let _ = io.fetch_whole(id, &holders).await;
            });
        }
    }
}
