//! The fan-out directories `shards/aa/bb` a shard file goes into, created on first use.
//!
//! A young node has few shards and 65,536 possible directories, so almost every put lands
//! in a directory that does not exist yet. Creating it costs two `mkdir` calls and, when
//! every put must be durable at once, an fsync of the parent (so the new directory's own
//! entry survives a power cut). Measured in a `tar -x` of 8,758 files on a fresh cluster,
//! those fsyncs were a fifth of each node's CPU time and a large part of each put's wait.
//!
//! Two things make that cheap without weakening anything:
//! - The store remembers, in a 65,536-bit set (8 KiB), which `aa/bb` it has created or
//!   found, so a put into a known directory makes no `mkdir` call at all. The store is
//!   the only writer of its data directory (it holds the directory's flock); should a
//!   directory vanish anyway, the caller forgets it ([`FanoutDirs::forget`]) and retries.
//! - Without `--durable-close` a put is not durable until the store's next `syncfs`
//!   (a client's `Sync`, or the node's timer), and `syncfs` writes out new directories
//!   as well as new files. The parent's fsync is then redundant and is skipped: a power
//!   cut before that sync loses the directory and the unsynced shards in it, which is
//!   exactly what the durability contract (docs/SEMANTICS.md) allows for unsynced puts.

use dfs_ops::durable;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Directories per level: two hex digits.
const FANOUT: usize = 256;

/// Which `aa/bb` directories exist, as far as this store knows.
pub(crate) struct FanoutDirs {
    shards_dir: PathBuf,
    /// Bit `aa * 256 + bb` is set once `shards/aa/bb` is known to exist.
    known: Vec<AtomicU64>,
    /// fsync each parent after creating a directory in it (`--durable-close`).
    durable: bool,
}

impl FanoutDirs {
    pub(crate) fn new(shards_dir: &Path, durable: bool) -> FanoutDirs {
        FanoutDirs {
            shards_dir: shards_dir.to_path_buf(),
            known: (0..FANOUT * FANOUT / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            durable,
        }
    }

    pub(crate) fn set_durable(&mut self, on: bool) {
        self.durable = on;
    }

    /// Makes sure `shards/aa/bb` (for a shard whose ID starts with the bytes `aa`, `bb`)
    /// exists. For a directory this store already knows, that is one atomic load: no
    /// path is built, no system call made.
    pub(crate) fn ensure(&self, aa: u8, bb: u8) -> io::Result<()> {
        let (word, bit) = slot(aa, bb);
        if self.known[word].load(Ordering::Acquire) & bit != 0 {
            return Ok(());
        }
        let top = self.make(&self.shards_dir, &format!("{aa:02x}"))?;
        self.make(&top, &format!("{bb:02x}"))?;
        // Set only after the directory (and, when durable, its entry) is in place, so a
        // concurrent put that sees the bit can rely on it.
        self.known[word].fetch_or(bit, Ordering::AcqRel);
        Ok(())
    }

    /// Forgets `aa/bb`: the next put into it checks (and recreates) it.
    pub(crate) fn forget(&self, aa: u8, bb: u8) {
        let (word, bit) = slot(aa, bb);
        self.known[word].fetch_and(!bit, Ordering::AcqRel);
    }

    /// `parent/name`, created if missing; the parent is fsynced only when durable and
    /// this call created the entry.
    fn make(&self, parent: &Path, name: &str) -> io::Result<PathBuf> {
        let (dir, created) = durable::ensure_dir(parent, name)?;
        if self.durable && created {
            durable::fsync_dir(parent)?;
        }
        Ok(dir)
    }
}

fn slot(aa: u8, bb: u8) -> (usize, u64) {
    let i = usize::from(aa) * FANOUT + usize::from(bb);
    (i / 64, 1u64 << (i % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_created_once_and_remembered_until_forgotten() {
        use std::fs;
        let tmp = tempfile::tempdir().unwrap();
        let shards = tmp.path().join("shards");
        fs::create_dir(&shards).unwrap();
        for durable in [false, true] {
            let dirs = FanoutDirs::new(&shards, durable);
            let p = shards.join("ab").join("01");
            dirs.ensure(0xab, 0x01).unwrap();
            assert!(p.is_dir());
            // Known now: even if it vanished behind the store's back, no mkdir is made...
            fs::remove_dir(&p).unwrap();
            dirs.ensure(0xab, 0x01).unwrap();
            assert!(!p.exists(), "a known directory must not be checked again");
            // ...until the caller forgets it, as a put does when its rename finds no
            // directory.
            dirs.forget(0xab, 0x01);
            dirs.ensure(0xab, 0x01).unwrap();
            assert!(p.is_dir());
            // Neighbouring bits are separate directories.
            assert!(!shards.join("ab").join("02").exists());
            dirs.ensure(0xab, 0x02).unwrap();
            dirs.ensure(0xff, 0xff).unwrap();
            assert!(shards.join("ff").join("ff").is_dir());
            fs::remove_dir_all(&shards).unwrap();
            fs::create_dir(&shards).unwrap();
        }
    }
}
