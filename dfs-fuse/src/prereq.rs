//! What a mount needs from the machine before it can start — the `/dev/fuse` device and,
//! for some mounts, the `fusermount3` helper — checked first, so that a missing piece is
//! reported by name with its fix instead of as a bare `No such file or directory` from
//! deep inside the mount call.
//!
//! When is the helper needed? fuser mounts with mount(2) directly when it may (as root),
//! and goes through the setuid `fusermount3` when it may not, and always for
//! `AutoUnmount`, which the mount uses with `allow_other` so the kernel cleans up after a
//! killed mount (`lib.rs`). fuser looks for the helper in `$FUSERMOUNT_PATH`, then on
//! `PATH` as `fusermount3` or `fusermount`, then in `/sbin` and `/bin`: this check looks
//! in the same places.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The device every FUSE mount opens.
pub const DEV_FUSE: &str = "/dev/fuse";

/// Fails with a message naming what is missing and how to get it.
pub fn check(needs_helper: bool) -> Result<()> {
    check_in(Path::new(DEV_FUSE), needs_helper, &search_path())
}

fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/sbin", "/bin"].map(PathBuf::from));
    dirs
}

/// Where the helper is, if anywhere.
pub fn find_helper(dirs: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        let p = PathBuf::from(p);
        return is_executable(&p).then_some(p);
    }
    dirs.iter()
        .flat_map(|d| [d.join("fusermount3"), d.join("fusermount")])
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn check_in(dev: &Path, needs_helper: bool, dirs: &[PathBuf]) -> Result<()> {
    if !dev.exists() {
        bail!(
            "{} not found: load the kernel's fuse module (modprobe fuse), or start this \
             container with the device (docker run --device /dev/fuse)",
            dev.display()
        );
    }
    if needs_helper && find_helper(dirs).is_none() {
        bail!(
            "fusermount3 not found: install the fuse3 package (apt-get install fuse3); the \
             mount needs it to mount as a non-root user and to clean up after itself"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_the_missing_device_and_helper_and_accepts_either_helper_name() {
        let d = tempfile::tempdir().unwrap();
        let dev = d.path().join("fuse");
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let dirs = vec![bin.clone()];
        let e = check_in(&dev, false, &dirs).unwrap_err().to_string();
        assert!(
            e.contains("fuse not found") && e.contains("modprobe fuse"),
            "{e}"
        );
        std::fs::write(&dev, b"").unwrap();
        assert!(check_in(&dev, false, &dirs).is_ok(), "no helper needed");
        let e = check_in(&dev, true, &dirs).unwrap_err().to_string();
        assert!(e.contains("apt-get install fuse3"), "{e}");
        // A file that is not executable does not count.
        let helper = bin.join("fusermount");
        std::fs::write(&helper, b"#!/bin/sh\n").unwrap();
        assert!(check_in(&dev, true, &dirs).is_err());
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_in(&dev, true, &dirs).is_ok());
    }
}
