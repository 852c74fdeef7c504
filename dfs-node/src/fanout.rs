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
use std::fs;
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

    /// `shards/aa/bb` for a shard whose id starts with the bytes `aa`, `bb`, created if
    /// this store has not seen it yet.
    pub(crate) fn dir(&self, aa: u8, bb: u8) -> io::Result<PathBuf> {
        let (word, bit) = slot(aa, bb);
        let top = self.shards_dir.join(format!("{aa:02x}"));
        let path = top.join(format!("{bb:02x}"));
        if self.known[word].load(Ordering::Acquire) & bit != 0 {
            return Ok(path);
        }
        self.create(&self.shards_dir, &top)?;
        self.create(&top, &path)?;
        // Set only after the directory (and, when durable, its entry) is in place, so a
        // concurrent put that sees the bit can rely on it.
        self.known[word].fetch_or(bit, Ordering::AcqRel);
        Ok(path)
    }

    /// Forgets `aa/bb`: the next put into it checks (and recreates) it.
    pub(crate) fn forget(&self, aa: u8, bb: u8) {
        let (word, bit) = slot(aa, bb);
        self.known[word].fetch_and(!bit, Ordering::AcqRel);
    }

    fn create(&self, parent: &Path, dir: &Path) -> io::Result<()> {
        if self.durable {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            return durable::create_dir(parent, name).map(|_| ());
        }
        match fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
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
        let tmp = tempfile::tempdir().unwrap();
        let shards = tmp.path().join("shards");
        fs::create_dir(&shards).unwrap();
        for durable in [false, true] {
            let dirs = FanoutDirs::new(&shards, durable);
            let p = dirs.dir(0xab, 0x01).unwrap();
            assert_eq!(p, shards.join("ab").join("01"));
            assert!(p.is_dir());
            // Known now: even if it vanished behind the store's back, no mkdir is made...
            fs::remove_dir(&p).unwrap();
            assert_eq!(dirs.dir(0xab, 0x01).unwrap(), p);
            assert!(!p.exists(), "a known directory must not be checked again");
            // ...until the caller forgets it, as a put does when its rename finds no
            // directory.
            dirs.forget(0xab, 0x01);
            dirs.dir(0xab, 0x01).unwrap();
            assert!(p.is_dir());
            // Neighbouring bits are separate directories.
            assert!(!shards.join("ab").join("02").exists());
            dirs.dir(0xab, 0x02).unwrap();
            dirs.dir(0xff, 0xff).unwrap();
            assert!(shards.join("ff").join("ff").is_dir());
            fs::remove_dir_all(&shards).unwrap();
            fs::create_dir(&shards).unwrap();
        }
    }
}
