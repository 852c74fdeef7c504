//! What a verified read reports when a copy on disk is damaged: the [`Defect`], the
//! [`Corruption`] that ties it to one file, and [`ReadError`], which keeps it apart from
//! ordinary failures so the node can report and discard the copy.

use dfs_proto::{ShardId, WireError};
use std::fmt;

/// What is wrong with a damaged shard file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// The block with this index does not match its checksum.
    Block(u64),
    /// Every block matched its checksum, yet the whole content does not hash to the shard's
    /// name: the checksums were damaged along with the data they cover.
    Content,
    /// The header or the file's size is wrong (truncated, extended, overwritten...).
    Layout(String),
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::Block(b) => write!(f, "block {b} failed verification"),
            Defect::Content => f.write_str("content does not match its id"),
            Defect::Layout(m) => write!(f, "bad file layout: {m}"),
        }
    }
}

/// A damaged copy found by a read: which shard, what is wrong, and which file it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub id: ShardId,
    pub defect: Defect,
    /// Device and inode number of the damaged file, so [`ShardStore::discard`] removes
    /// exactly that file and never a good copy renamed over it since.
    pub(super) file_key: (u64, u64),
}

/// Why a verified read returned no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The copy on disk is damaged.
    Corrupt(Corruption),
    /// Anything else: not found, a range past the end, an I/O error.
    Failed(WireError),
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        ReadError::Failed(e)
    }
}

impl From<ReadError> for WireError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Corrupt(c) => WireError::corrupt(format!(
                "shard {} is corrupt on this node: {}",
                c.id, c.defect
            )),
            ReadError::Failed(e) => e,
        }
    }
}
