//! Identifiers shared by every component.
//!
//! A shard is named by the SHA-256 of its content, so the name doubles as a checksum: any
//! holder's copy can be verified by hashing it, and identical content is stored once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Inode number in the coordinator's namespace.
pub type Ino = u64;

/// The root directory's inode number (FUSE requires 1).
pub const ROOT_INO: Ino = 1;

/// SHA-256 of a shard's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardId(pub [u8; 32]);

impl ShardId {
    /// The ID of `data`: its SHA-256 digest.
    pub fn of(data: &[u8]) -> ShardId {
        ShardId(Sha256::digest(data).into())
    }

    /// True if `data` hashes to this ID.
    pub fn matches(&self, data: &[u8]) -> bool {
        ShardId::of(data) == *self
    }

    /// Lower-case hex, 64 characters: the shard's file name on a node.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// Parses exactly 64 lower-case hex digits. Anything else (upper case, `/`, `..`, wrong
    /// length) is refused, which is what keeps a shard ID from naming a path outside a
    /// node's data directory.
    pub fn from_hex(s: &str) -> Option<ShardId> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(ShardId(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ShardId {
    // Twelve hex digits are plenty to tell shards apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardId({})", &self.to_hex()[..12])
    }
}

/// A storage node's identity, chosen at random on its first start and kept in its data
/// directory, so a node that restarts (even on another address) is recognised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl std::str::FromStr for NodeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(format!("node id must be 16 hex digits, got {s:?}"));
        }
        u64::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|e| format!("bad node id {s:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ShardId::of(b"hello");
        assert_eq!(
            id.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(ShardId::from_hex(&id.to_hex()), Some(id));
        assert!(id.matches(b"hello"));
        assert!(!id.matches(b"hellp"));
    }

    #[test]
    fn hex_rejects_paths_and_case() {
        assert_eq!(ShardId::from_hex("../../etc/passwd"), None);
        let upper = ShardId::of(b"x").to_hex().to_uppercase();
        assert_eq!(ShardId::from_hex(&upper), None);
        let mut bad = ShardId::of(b"x").to_hex();
        bad.replace_range(10..11, "/");
        assert_eq!(ShardId::from_hex(&bad), None);
        assert_eq!(ShardId::from_hex(""), None);
    }

    #[test]
    fn node_id_parse() {
        let n = NodeId(0xdead_beef);
        assert_eq!(n.to_string().parse::<NodeId>(), Ok(n));
        assert!("xyz".parse::<NodeId>().is_err());
    }
}
