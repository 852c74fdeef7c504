//! The data directory's housekeeping at start: its lock, the leftovers of crashed writes,
//! the node's identity file, and the free space of the filesystem under it.

use anyhow::{anyhow, bail, Context};
use dfs_ops::durable;
use dfs_proto::NodeId;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use tracing::info;

/// Refuses to share a data directory with another running node: two processes keeping
/// separate space counters over the same files would both be wrong.
pub(super) fn lock_dir(root: &Path) -> anyhow::Result<File> {
    let path = root.join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock only reads the descriptor number, which `f` keeps open.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!("{} is in use by another dfs-node process", root.display());
        }
        return Err(e).with_context(|| format!("lock {}", path.display()));
    }
    Ok(f)
}

/// Removes what crashed writes left in `tmp/`: nothing there was ever acknowledged.
pub(super) fn clean_tmp(tmp: &Path) -> io::Result<()> {
    let mut removed = 0;
    for e in fs::read_dir(tmp)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            fs::remove_dir_all(e.path())?;
        } else {
            fs::remove_file(e.path())?;
        }
        removed += 1;
    }
    if removed > 0 {
        info!("removed {removed} unfinished writes from {}", tmp.display());
    }
    Ok(())
}

/// Reads `DATA/node.id`, or creates it with a random ID on first start. A malformed file is
/// an error, not a reason to pick a new identity: the coordinator knows this node (and the
/// shards it holds) by that ID.
pub(super) fn load_or_create_node_id(root: &Path) -> anyhow::Result<NodeId> {
    let path = root.join("node.id");
    match fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<NodeId>()
            .map_err(|e| anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut b = [0u8; 8];
            File::open("/dev/urandom")
                .and_then(|mut r| r.read_exact(&mut b))
                .context("read /dev/urandom")?;
            let id = NodeId(u64::from_le_bytes(b));
            // Atomic write: a crash leaves either no node.id or a complete one.
            durable::write_atomic(&path, format!("{id}\n").as_bytes())
                .with_context(|| format!("write {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Bytes an unprivileged process may still allocate on the filesystem holding `path`.
pub(super) fn fs_available(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain old data, for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string and `st` a writable statvfs, both live for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
