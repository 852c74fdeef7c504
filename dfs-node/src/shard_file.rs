//! The on-disk format of one shard file: a header, a checksum per 64 KiB block, then the
//! data.
//!
//! ```text
//! offset  size         field
//! 0       8            magic "DFSSHRD1"
//! 8       4            format version, u32 little-endian (= 1)
//! 12      4            data length in bytes, u32 LE (at most MAX_SHARD_SIZE)
//! 16      4            block size in bytes, u32 LE (= 65536)
//! 20      32 * blocks  SHA-256 of each block of the data, in order
//!                      (blocks = ceil(data length / block size); the last may be short)
//! ...     data length  the shard's bytes
//! ```
//!
//! Why per-block checksums when the file name already is the SHA-256 of the whole shard?
//! The name verifies a *whole* read, but a FUSE client reading 128 KiB of a 1 MiB shard
//! would otherwise have to read and hash the whole megabyte to trust those 128 KiB. With a
//! checksum per block, a range read touches only the blocks it covers and still never
//! returns a byte that was not verified.
//!
//! Every field is checked against the file's real size before anything is allocated: a
//! damaged header is reported as corruption, never trusted to size a buffer.

use dfs_proto::MAX_SHARD_SIZE;
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 8] = *b"DFSSHRD1";
pub const VERSION: u32 = 1;
pub const BLOCK_SIZE: u32 = 64 * 1024;
pub const HEADER_LEN: usize = 20;
/// Bytes of one block checksum (a SHA-256 digest).
pub const SUM_LEN: usize = 32;

/// The decoded header of a shard file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub data_len: u32,
}

impl Header {
    /// Number of checksummed blocks.
    pub fn blocks(&self) -> u64 {
        u64::from(self.data_len).div_ceil(u64::from(BLOCK_SIZE))
    }

    /// Where the checksum of block `b` starts.
    pub fn sum_offset(&self, b: u64) -> u64 {
        HEADER_LEN as u64 + b * SUM_LEN as u64
    }

    /// Where the data starts (just after the last checksum).
    pub fn data_offset(&self) -> u64 {
        self.sum_offset(self.blocks())
    }

    /// Total size of a well-formed file with this header.
    pub fn file_len(&self) -> u64 {
        self.data_offset() + u64::from(self.data_len)
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.data_len.to_le_bytes());
        h[16..20].copy_from_slice(&BLOCK_SIZE.to_le_bytes());
        h
    }

    /// Parses the first bytes of a file whose real size is `file_len`. The error says what
    /// is wrong, for the corruption report.
    pub fn parse(buf: &[u8], file_len: u64) -> Result<Header, String> {
        let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(format!(
                "file of {file_len} bytes is too short for a header"
            ));
        };
        if h[0..8] != MAGIC {
            return Err("bad magic (not a dfs shard file)".into());
        }
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let version = word(8);
        if version != VERSION {
            return Err(format!("unknown format version {version}"));
        }
        let data_len = word(12);
        if data_len > MAX_SHARD_SIZE {
            return Err(format!(
                "header claims {data_len} bytes, above the shard limit"
            ));
        }
        let block_size = word(16);
        if block_size != BLOCK_SIZE {
            return Err(format!("unsupported block size {block_size}"));
        }
        let header = Header { data_len };
        if header.file_len() != file_len {
            return Err(format!(
                "file is {file_len} bytes but its header implies {}",
                header.file_len()
            ));
        }
        Ok(header)
    }
}

/// Header and block checksums for `data`: everything that precedes the data in the file.
/// The caller has checked `data.len() <= MAX_SHARD_SIZE`.
pub fn prefix(data: &[u8]) -> Vec<u8> {
    let header = Header {
        data_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
    };
    let mut out = Vec::with_capacity(header.data_offset() as usize);
    out.extend_from_slice(&header.encode());
    for block in data.chunks(BLOCK_SIZE as usize) {
        out.extend_from_slice(&Sha256::digest(block));
    }
    out
}

/// Checks `data`, which starts at block `first` of a shard, against `sums` (the checksums
/// of those blocks, consecutive). Returns the index of the first bad block.
pub fn verify_blocks(sums: &[u8], data: &[u8], first: u64) -> Result<(), u64> {
    let mut sums = sums.chunks_exact(SUM_LEN);
    for (i, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
        let ok = sums
            .next()
            .is_some_and(|want| Sha256::digest(block).as_slice() == want);
        if !ok {
            return Err(first + i as u64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        let h = Header { data_len: 0 };
        assert_eq!((h.blocks(), h.file_len()), (0, 20));
        let h = Header { data_len: 65536 };
        assert_eq!((h.blocks(), h.data_offset()), (1, 52));
        let h = Header { data_len: 65537 };
        assert_eq!((h.blocks(), h.file_len()), (2, 20 + 64 + 65537));
    }

    #[test]
    fn parse_round_trip_and_rejections() {
        let data = vec![5u8; 100_000];
        let p = prefix(&data);
        let len = p.len() as u64 + 100_000;
        assert_eq!(Header::parse(&p, len), Ok(Header { data_len: 100_000 }));
        assert!(Header::parse(&p, len - 1).is_err(), "truncated file");
        assert!(Header::parse(&p[..10], 10).is_err(), "short header");
        let mut bad = p.clone();
        bad[0] = b'X';
        assert!(Header::parse(&bad, len).is_err(), "magic");
        let mut huge = p.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Header::parse(&huge, len).is_err(), "oversized claim");
        let mut bs = p;
        bs[16..20].copy_from_slice(&1u32.to_le_bytes());
        assert!(Header::parse(&bs, len).is_err(), "block size");
    }

    #[test]
    fn verify_finds_the_bad_block() {
        let mut data = vec![1u8; 3 * 65536 + 10];
        let p = prefix(&data);
        let sums = &p[HEADER_LEN..];
        assert_eq!(verify_blocks(sums, &data, 0), Ok(()));
        data[2 * 65536 + 3] ^= 1;
        assert_eq!(verify_blocks(sums, &data, 0), Err(2));
        // A run of blocks starting at block 3 is checked against the matching sums.
        assert_eq!(
            verify_blocks(&sums[3 * 32..], &data[3 * 65536..], 3),
            Ok(())
        );
        // Missing checksums are a failure, not a pass.
        assert_eq!(verify_blocks(&sums[..32], &data[..65537], 0), Err(1));
    }
}
