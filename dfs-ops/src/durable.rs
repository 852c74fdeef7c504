//! Crash-safe file helpers: the few system-call sequences that make a write survive a power
//! cut, kept in one place so every caller gets them right.
//!
//! A `write()` only hands bytes to the kernel's page cache; a crash before the kernel writes
//! them back loses them. `fsync` on a file makes its *contents* durable, but the *name* that
//! points to the file lives in its directory, which is a separate object on disk: after
//! creating or renaming a file, the directory must be fsynced too, or the file can vanish
//! on reboot even though its bytes were safely written.

use anyhow::Context;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) with mode 0700: data directories hold everyone's
/// file contents and metadata, which the mount's permission checks protect only when read
/// through the mount, and certificate directories hold private keys. Directories that
/// already exist keep their mode (an operator may have chosen it).
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Returns `parent/name`, creating the directory if it does not exist yet. When it is
/// created, `parent` is fsynced so the new directory's own entry survives a crash:
/// otherwise a file later written inside it could be lost with it.
pub fn create_dir(parent: &Path, name: &str) -> io::Result<PathBuf> {
    let (dir, created) = ensure_dir(parent, name)?;
    if created {
        fsync_dir(parent)?;
    }
    Ok(dir)
}

/// `parent/name`, created if missing, and whether this call created it. No fsync: for a
/// caller whose new directories are made durable by a later `syncfs` (or that fsyncs
/// `parent` itself only when `created`).
pub fn ensure_dir(parent: &Path, name: &str) -> io::Result<(PathBuf, bool)> {
    let dir = parent.join(name);
    match fs::create_dir(&dir) {
        Ok(()) => Ok((dir, true)),
        // Someone (an earlier run, or a concurrent writer) created it already.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((dir, false)),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `data` so that a reader (or a reboot) sees either the old file or
/// the complete new one, never a partial write: write a temporary file beside it, fsync it,
/// rename it over `path` (rename is atomic within a filesystem), then fsync the directory
/// so the rename itself is durable.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = parent.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(parent)
    })();
    if result.is_err() {
        // Best effort: do not leave the half-written temporary behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn create_dir_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let a = create_dir(d.path(), "a").unwrap();
        assert_eq!(create_dir(d.path(), "a").unwrap(), a);
        assert!(a.is_dir());
    }

    #[test]
    fn ensure_dir_says_whether_it_created() {
        let d = tempfile::tempdir().unwrap();
        let (a, created) = ensure_dir(d.path(), "a").unwrap();
        assert!(created && a.is_dir());
        assert_eq!(ensure_dir(d.path(), "a").unwrap(), (a, false));
    }
}
