//! The on-disk format of one shard file: a header, a checksum per 64 KiB block, then the
//! data.
//!
//! ```text
//! offset  size         field
//! 0       8            magic "DFSSHRD1" (the same in every version)
//! 8       4            format version, u32 little-endian (2; 1 is still read)
//! 12      4            data length in bytes, u32 LE (at most MAX_SHARD_SIZE)
//! 16      4            block size in bytes, u32 LE (= 65536)
//! 20      S * blocks   checksum of each block of the data, in order
//!                      (blocks = ceil(data length / block size); the last may be short)
//!                      version 2: CRC-32 (IEEE), S = 4, u32 LE
//!                      version 1: SHA-256,       S = 32
//! ...     data length  the shard's bytes
//! ```
//!
//! Why per-block checksums when the file name already is the SHA-256 of the whole shard?
//! The name verifies a *whole* read, but a FUSE client reading 128 KiB of a 1 MiB shard
//! would otherwise have to read and hash the whole megabyte to trust those 128 KiB. With a
//! checksum per block, a range read touches only the blocks it covers and still never
//! returns a byte that was not verified.
//!
//! Why CRC-32 (version 2) rather than SHA-256 (version 1)? The block checksums guard
//! against the *disk* (a flipped bit, a torn or misdirected write), not against an
//! attacker: whoever can write the shard file can rewrite its checksums too. A CRC-32
//! detects every burst of up to 32 bits and all but 1 in 2^32 other damage of a block, which
//! is what Ceph BlueStore (CRC-32C) and HDFS (CRC-32C per 512 bytes) rely on. It runs at
//! ~56 GB/s on this CPU against ~1.8 GB/s for SHA-256, and SHA-256 was 37 % of a node's CPU
//! while it hashed every shard twice (once to check the bytes against their ID, once for
//! these checksums). Now a put hashes once: [`encode`] computes the ID's SHA-256 and the
//! block CRCs in the same pass. What the ID hash protects (that no node ever keeps wrong
//! bytes under an ID) is unchanged: a put still checks the whole content against the ID.
//!
//! Every field is checked against the file's real size before anything is allocated: a
//! damaged header is reported as corruption, never trusted to size a buffer.

use dfs_proto::{ShardId, MAX_SHARD_SIZE};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 8] = *b"DFSSHRD1";
/// The version this code writes.
pub const VERSION: u32 = 2;
pub const BLOCK_SIZE: u32 = 64 * 1024;
pub const HEADER_LEN: usize = 20;

/// The checksum a format version keeps per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSum {
    /// Version 1 (the first release): SHA-256, 32 bytes.
    Sha256,
    /// Version 2: CRC-32 (IEEE polynomial, as zlib and Ethernet), 4 bytes little-endian.
    Crc32,
}

impl BlockSum {
    fn for_version(version: u32) -> Option<BlockSum> {
        match version {
            1 => Some(BlockSum::Sha256),
            2 => Some(BlockSum::Crc32),
            _ => None,
        }
    }

    fn version(self) -> u32 {
        match self {
            BlockSum::Sha256 => 1,
            BlockSum::Crc32 => 2,
        }
    }

    /// Bytes of one checksum.
    pub fn size(self) -> usize {
        match self {
            BlockSum::Sha256 => 32,
            BlockSum::Crc32 => 4,
        }
    }

    /// Whether `block` has the checksum `want` (exactly `self.size()` bytes).
    fn matches(self, block: &[u8], want: &[u8]) -> bool {
        match self {
            BlockSum::Sha256 => Sha256::digest(block).as_slice() == want,
            BlockSum::Crc32 => crc32fast::hash(block).to_le_bytes() == want,
        }
    }
}

/// The decoded header of a shard file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub data_len: u32,
    /// Which checksum the file keeps (from its format version).
    pub sum: BlockSum,
}

impl Header {
    /// The header this code writes for `data_len` bytes.
    pub fn new(data_len: u32) -> Header {
        Header {
            data_len,
            sum: BlockSum::Crc32,
        }
    }

    /// Number of checksummed blocks.
    pub fn blocks(&self) -> u64 {
        u64::from(self.data_len).div_ceil(u64::from(BLOCK_SIZE))
    }

    /// Where the checksum of block `b` starts.
    pub fn sum_offset(&self, b: u64) -> u64 {
        HEADER_LEN as u64 + b * self.sum.size() as u64
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
        h[8..12].copy_from_slice(&self.sum.version().to_le_bytes());
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
        let Some(sum) = BlockSum::for_version(version) else {
            return Err(format!("unknown format version {version}"));
        };
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
        let header = Header { data_len, sum };
        if header.file_len() != file_len {
            return Err(format!(
                "file is {file_len} bytes but its header implies {}",
                header.file_len()
            ));
        }
        Ok(header)
    }
}

/// Everything that precedes `data` in its file (header and block checksums, in the current
/// format), and the SHA-256 of `data`, i.e. the ID it deserves, computed in the same pass:
/// each 64 KiB block is hashed and checksummed while it is in the CPU's cache, and the data
/// is read from memory once. The caller has checked `data.len() <= MAX_SHARD_SIZE`.
pub fn encode(data: &[u8]) -> (Vec<u8>, ShardId) {
    let header = Header::new(u32::try_from(data.len()).unwrap_or(u32::MAX));
    let mut prefix = Vec::with_capacity(header.data_offset() as usize);
    prefix.extend_from_slice(&header.encode());
    let mut sha = Sha256::new();
    for block in data.chunks(BLOCK_SIZE as usize) {
        sha.update(block);
        prefix.extend_from_slice(&crc32fast::hash(block).to_le_bytes());
    }
    (prefix, ShardId(sha.finalize().into()))
}

/// Checks `data`, which starts at block `first` of a shard, against `sums` (the checksums
/// of those blocks, consecutive, of kind `sum`). Returns the index of the first bad block.
pub fn verify_blocks(sum: BlockSum, sums: &[u8], data: &[u8], first: u64) -> Result<(), u64> {
    let mut sums = sums.chunks_exact(sum.size());
    for (i, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
        let ok = sums.next().is_some_and(|want| sum.matches(block, want));
        if !ok {
            return Err(first + i as u64);
        }
    }
    Ok(())
}

/// The encoder of format version 1, as the first release wrote it: tests build old files
/// with it, to prove they stay readable and verifiable.
#[cfg(test)]
pub(crate) fn prefix_v1(data: &[u8]) -> Vec<u8> {
    let header = Header {
        data_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        sum: BlockSum::Sha256,
    };
    let mut out = header.encode().to_vec();
    for block in data.chunks(BLOCK_SIZE as usize) {
        out.extend_from_slice(&Sha256::digest(block));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        let h = Header::new(0);
        assert_eq!((h.blocks(), h.file_len()), (0, 20));
        let h = Header::new(65536);
        assert_eq!((h.blocks(), h.data_offset()), (1, 24));
        let h = Header::new(65537);
        assert_eq!((h.blocks(), h.file_len()), (2, 20 + 8 + 65537));
        let v1 = Header {
            data_len: 65537,
            sum: BlockSum::Sha256,
        };
        assert_eq!((v1.blocks(), v1.file_len()), (2, 20 + 64 + 65537));
    }

    #[test]
    fn encode_hashes_the_id_and_writes_version_2() {
        let data = vec![9u8; 3 * 65536 + 1];
        let (p, id) = encode(&data);
        assert_eq!(id, ShardId::of(&data));
        assert_eq!(&p[8..12], &2u32.to_le_bytes());
        assert_eq!(p.len(), 20 + 4 * 4);
        // The stored sums are the CRC-32 of each block.
        let crc = crc32fast::hash(&data[65536..2 * 65536]).to_le_bytes();
        assert_eq!(&p[24..28], &crc);
        // CRC-32 of "123456789" is the standard check value 0xCBF43926 (IEEE).
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    /// CPU per 1 MiB shard of what a put computes before writing: version 1 hashed the
    /// shard for its ID and again block by block; version 2 does one SHA-256 pass with the
    /// CRCs alongside. Not a correctness test: run it by hand, in release, to see the
    /// figures (`cargo test --release -p dfs-node --lib put_hashing_cost -- --ignored
    /// --nocapture`); it measures this thread's CPU time, so other load barely matters.
    #[test]
    #[ignore]
    fn put_hashing_cost() {
        fn cpu_now() -> f64 {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `t` is a valid, writable timespec for the duration of the call.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
            t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
        }
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let n = 512;
        for round in 0..3 {
            let t0 = cpu_now();
            for _ in 0..n {
                std::hint::black_box(ShardId::of(&data));
                std::hint::black_box(prefix_v1(&data));
            }
            let t1 = cpu_now();
            for _ in 0..n {
                std::hint::black_box(encode(&data));
            }
            let t2 = cpu_now();
            let ms = |t: f64| t / f64::from(n) * 1e3;
            eprintln!(
                "round {round}: version 1 (ID + SHA-256 blocks) {:.3} ms/MiB, version 2 (ID + CRC-32 blocks) {:.3} ms/MiB",
                ms(t1 - t0),
                ms(t2 - t1)
            );
        }
    }

    #[test]
    fn parse_round_trip_and_rejections() {
        let data = vec![5u8; 100_000];
        for (p, sum) in [
            (encode(&data).0, BlockSum::Crc32),
            (prefix_v1(&data), BlockSum::Sha256),
        ] {
            let len = p.len() as u64 + 100_000;
            let want = Header {
                data_len: 100_000,
                sum,
            };
            assert_eq!(Header::parse(&p, len), Ok(want));
            assert!(Header::parse(&p, len - 1).is_err(), "truncated file");
            assert!(Header::parse(&p[..10], 10).is_err(), "short header");
            let mut bad = p.clone();
            bad[0] = b'X';
            assert!(Header::parse(&bad, len).is_err(), "magic");
            let mut huge = p.clone();
            huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(Header::parse(&huge, len).is_err(), "oversized claim");
            let mut bs = p.clone();
            bs[16..20].copy_from_slice(&1u32.to_le_bytes());
            assert!(Header::parse(&bs, len).is_err(), "block size");
            let mut v = p;
            v[8..12].copy_from_slice(&3u32.to_le_bytes());
            assert!(Header::parse(&v, len).is_err(), "unknown version");
        }
    }

    #[test]
    fn verify_finds_the_bad_block_in_both_versions() {
        let mut data = vec![1u8; 3 * 65536 + 10];
        for (p, sum) in [
            (encode(&data).0, BlockSum::Crc32),
            (prefix_v1(&data), BlockSum::Sha256),
        ] {
            let n = sum.size();
            let sums = &p[HEADER_LEN..];
            assert_eq!(verify_blocks(sum, sums, &data, 0), Ok(()));
            data[2 * 65536 + 3] ^= 1;
            assert_eq!(verify_blocks(sum, sums, &data, 0), Err(2));
            data[2 * 65536 + 3] ^= 1;
            // A run of blocks starting at block 3 is checked against the matching sums.
            assert_eq!(
                verify_blocks(sum, &sums[3 * n..], &data[3 * 65536..], 3),
                Ok(())
            );
            // Missing checksums are a failure, not a pass.
            assert_eq!(verify_blocks(sum, &sums[..n], &data[..65537], 0), Err(1));
        }
    }
}
