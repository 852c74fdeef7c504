//! dfs-fuse: mounts a dfs cluster so ordinary programs can use it.
//!
//! # Layout
//! - [`cli`]: the binary's flags, turned into a [`MountConfig`].
//! - [`mount_helper`]: `mount.fuse.dfs`, what `mount -t fuse.dfs` and fstab lines run.
//! - [`fuse`]: the only file that implements `fuser::Filesystem`; converts each kernel
//!   request and hands it to the core on a tokio task.
//! - [`fs`]: the filesystem core, async and kernel-free: every operation the mount
//!   supports, as a method of [`fs::Fs`]. The files below are its parts, one job each.
//! - [`handles`]: what is open: files by inode (one shared state each), file and
//!   directory handles.
//! - [`file`](mod@file): one open regular file: its committed layout, its writes and the commit that
//!   makes them visible.
//! - [`dirty`]: the bytes written and not yet stored, per shard, whole or as sparse
//!   patches over the stored shard, and which shard to flush first when over budget.
//! - [`upload`]: one file's shards being stored in the background, and those stored but
//!   not committed yet.
//! - [`lease`]: the leases on stored-but-uncommitted shards and open orphans, renewed every
//!   second so the coordinator's garbage collector leaves them alone.
//! - [`read`]: reads: which bytes come from memory, holes or shards, and fetching them.
//! - [`readahead`]: sequential readers get the next shards fetched ahead of them.
//! - [`dir`]: directory snapshots and the readdir paging (behind [`dir::DirReplier`]).
//! - [`shard_io`]: [`shard_io::ShardIo`]: fetch a shard from any holder (verified, with
//!   failover) and store a new shard on the nodes the coordinator picked, in parallel.
//! - [`node_health`]: which nodes just failed this mount, so they are tried last.
//! - [`shard_cache`]: bounded cache of whole verified shards, with fetch de-duplication.
//! - [`lookup_cache`]: lookups answered from a recent listing of the directory, fetched
//!   after a run of misses; [`lookup_cache::Watched`] marks it stale on every change.
//! - [`dir_attrs`]: the `getattr` of a directory this mount just changed, and lookups of
//!   names absent from a directory it just made, answered without the coordinator.
//! - [`removals`]: unlinks answered at once and sent to the coordinator in batches.
//! - [`backend`]: what the core needs from the cluster, as a trait; [`backend::Remote`]
//!   is the QUIC implementation.
//! - [`errno`]: the one mapping from dfs error codes to errno.
//! - [`metrics`]: the `--metrics-listen` endpoint's request metrics, as a [`Backend`]
//!   wrapper.
//!
//! # Following a write (`cp big.iso /mnt/dfs/`)
//! `fuse.rs: write` copies the bytes and calls `Fs::write` (`fs.rs`), which finds the
//! handle's file (`handles.rs`) and calls `FileState::write` (`file.rs`): the bytes go
//! into the shard's buffer (`dirty.rs`). A full shard is handed to `Uploads::start`
//! (`upload.rs`), which runs `ShardIo::store` (`shard_io.rs`) on a task: hash, `Place` at
//! the coordinator, `NodeRequest::Put` to every target through [`Backend::node`]
//! (`backend.rs`). Close (FLUSH) runs `FileState::commit`: the last uploads, then one
//! `Commit` at the coordinator.

pub mod backend;
pub mod cli;
pub mod dir;
pub mod dir_attrs;
pub mod dirty;
pub mod errno;
pub mod file;
pub mod fs;
pub mod fuse;
pub mod handles;
pub mod lease;
pub mod lookup_cache;
pub mod metrics;
pub mod mount_helper;
pub mod node_health;
pub mod prereq;
pub mod read;
pub mod readahead;
pub mod removals;
pub mod shard_cache;
pub mod shard_io;
pub mod upload;

use anyhow::{bail, Context, Result};
use backend::{Backend, Remote};
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use fs::{Fs, FsConfig};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

/// Everything `run` needs to mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub coord: String,
    pub certs: PathBuf,
    pub cert_name: String,
    pub fs: FsConfig,
    /// Attribute and entry cache time in the kernel.
    pub ttl: Duration,
    /// Deadline of one coordinator request.
    pub meta_deadline: Duration,
    /// Let every user use the mount (the kernel then checks POSIX permissions itself).
    pub allow_other: bool,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Set (to 1) by the `mount.fuse.dfs` helper for the daemon it starts. Then (1) its
/// `NOTIFY_SOCKET` wants READY=1 only (the helper exits on it), so STOPPING=1 is not sent
/// (see `stopping`); (2) the mount's source in the kernel's table is the mount source as
/// given (`10.0.0.1:7000`), not `dfs@10.0.0.1:7000`: libmount pairs a mount with its
/// entry in /run/mount/utab, where mount(8) keeps options such as `_netdev`, by source
/// and mount point, and systemd learns from that entry that a mounted fstab line or
/// .mount unit is a network mount. Without the match it orders it as a local file
/// system, unmounted at shutdown only after the dfs nodes on the same host have stopped
/// (found by tests/systemd.sh).
pub const HELPER_ENV: &str = "DFS_MOUNT_HELPER";

fn started_by_helper() -> bool {
    std::env::var_os(HELPER_ENV).is_some()
}

/// Tells the service manager we are stopping, unless our `NOTIFY_SOCKET` is the mount
/// helper's, which no longer exists by then.
fn stopping() {
    if !started_by_helper() {
        dfs_ops::sd_notify::notify_or_log(dfs_ops::sd_notify::STOPPING);
    }
}

/// Mounts and serves until unmounted (umount, fusermount3 -u) or until the future that
/// `shutdown` returns resolves, after which buffered writes are flushed and the mount is
/// removed. `main.rs` passes [`dfs_ops::daemon::shutdown_signal`] (SIGTERM/SIGINT).
///
/// Unlike the coordinator's and the node's, this `run` is not async: fuser's session loop
/// reads `/dev/fuse` on the calling thread, blocking, so `run` builds the tokio runtime the
/// filesystem core runs on itself. `shutdown` is therefore a function called inside that
/// runtime (a signal handler can only be installed in one), first thing, so that a
/// signal arriving while the mount starts is not lost.
pub fn run<S>(cfg: MountConfig, shutdown: impl FnOnce() -> Result<S>) -> Result<()>
where
    S: Future<Output = ()> + Send + 'static,
{
    // Before anything else: a machine without FUSE should hear so in one line.
    // AutoUnmount (with allow_other) always goes through the helper, as does any mount by
    // a user who may not call mount(2).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    prereq::check(cfg.allow_other || !root)?;
    let rt = dfs_ops::daemon::runtime("dfs-fuse")?;
    let shutdown = {
        let _g = rt.enter();
        shutdown()?
    };
    let tls = dfs_ops::daemon::load_tls(&cfg.certs, &cfg.cert_name)?;
    let registry = dfs_ops::metrics::Registry::new();
    let (backend, close_connections) = {
        let _g = rt.enter();
        let remote = Remote::new(&tls, cfg.coord.clone(), cfg.meta_deadline)?;
        let closer = remote.closer();
        (
            Arc::new(metrics::MeteredBackend::new(remote, &registry)),
            closer,
        )
    };
    if let Some(addr) = cfg.metrics_listen {
        // Bound before mounting: a bad address fails the mount, not just the metrics.
        let listener = rt.block_on(dfs_ops::metrics::http::bind(addr))?;
        info!("metrics at http://{addr}/metrics");
        rt.spawn(dfs_ops::metrics::http::serve(
            listener,
            registry,
            || async {},
            std::future::pending(),
        ));
    }
    // Fail now, with a clear message, rather than mount something that answers EIO.
    rt.block_on(async {
        match backend.meta(CoordRequest::StatFs).await {
            Ok(CoordResponse::FsStats(_)) => Ok(()),
            Ok(_) => bail!("coordinator at {} answered StatFs oddly", cfg.coord),
            Err(e) => bail!("cannot reach the coordinator at {}: {e}", cfg.coord),
        }
    })?;
    let fs = Arc::new(Fs::new(backend, cfg.fs.clone()));
    let notifier = Arc::new(std::sync::OnceLock::new());
    let adapter =
        fuse::FuseAdapter::new(fs.clone(), rt.handle().clone(), cfg.ttl, notifier.clone());

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(if started_by_helper() {
            cfg.coord.clone()
        } else {
            format!("dfs@{}", cfg.coord)
        }),
        fuser::MountOption::Subtype("dfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
    ];
    if cfg.allow_other {
        config.acl = fuser::SessionACL::All;
        // With allow_other the kernel can also clean up the mount if we are killed.
        config.mount_options.push(fuser::MountOption::AutoUnmount);
    }
    config.n_threads = Some(2);
    config.clone_fd = true;
    let mut session = fuser::Session::new(adapter, &cfg.mountpoint, &config)
        .with_context(|| format!("mount at {}", cfg.mountpoint.display()))?;
    info!(mountpoint = %cfg.mountpoint.display(), coord = %cfg.coord, "mounted");
    // The mount exists from here (the kernel queues requests until `run` below serves
    // them): tell systemd, or the `mount.fuse.dfs` helper waiting for us, that we are up.
    dfs_ops::sd_notify::notify_or_log(dfs_ops::sd_notify::READY);

    let _ = notifier.set(session.notifier());
    // The lease on uploaded-but-uncommitted shards and on open orphans (see `lease.rs`).
    rt.spawn(lease::keep_renewing(fs.clone()));
    raise_readahead(&cfg.mountpoint, 4096);
    let unmounter = Arc::new(std::sync::Mutex::new(session.unmount_callable()));
    {
        let fs = fs.clone();
        let unmounter = unmounter.clone();
        let mountpoint = cfg.mountpoint.clone();
        // Graceful shutdown: once `shutdown` resolves, commit every open file's buffered
        // writes while the cluster is still reachable, then take the mount away. The
        // session loop in `run` below then ends by itself.
        rt.spawn(async move {
            shutdown.await;
            info!("flushing and unmounting");
            stopping();
            if let Err(e) = fs.flush_all().await {
                error!("failed to flush before unmount: {e}");
            }
            // Detach lazily: the mount leaves the namespace now even if programs still
            // have files open (they keep working until they close them; then the kernel
            // ends the session and `run` returns). A plain unmount would fail with EBUSY
            // and leave the mount in place.
            if let Err(e) = detach(&mountpoint) {
                error!("failed to detach the mount: {e:#}");
            }
            // Then release fuser's own unmount machinery (with auto_unmount, a helper
            // process): the path is already empty, so it has nothing left to do.
            let r = unmounter.lock().map(|mut u| u.unmount());
            if let Ok(Err(e)) = r {
                error!("failed to unmount: {e}");
            }
        });
    }
    let r = session.run();
    info!("unmounted");
    // Everything is committed (or reported as lost) by now: tell the servers we are gone.
    rt.block_on(close_connections);
    // Unmounted from outside (umount) rather than by a signal: say so too, so that
    // systemd takes the exit that follows as a stop, not a crash.
    stopping();
    rt.shutdown_timeout(Duration::from_secs(2));
    r.context("FUSE session")
}

/// Lazily unmounts `mountpoint` (MNT_DETACH): directly as root, else via `fusermount3 -u -z`.
fn detach(mountpoint: &std::path::Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
            .context("mount point contains a NUL byte")?;
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(std::io::Error::last_os_error()).context("umount2(MNT_DETACH)");
        }
        return Ok(());
    }
    let st = std::process::Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(mountpoint)
        .status()
        .context("run fusermount3")?;
    if !st.success() {
        bail!("fusermount3 -u -z exited with {st}");
    }
    Ok(())
}

/// Lets the kernel read ahead `kib` KiB on this mount instead of its 128 KiB default, so a
/// sequential reader's requests arrive in larger, concurrent pieces. The knob is per
/// backing device (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`) and only root may turn it;
/// without it reads still work, just with smaller requests.
fn raise_readahead(mountpoint: &std::path::Path, kib: u32) {
    // Find our device number in /proc/self/mountinfo rather than stat() the mount point:
    // a stat would be a FUSE request, and the session does not serve requests yet.
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mp = mountpoint.to_string_lossy();
    let dev = info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && f[4] == mp).then(|| f[2].to_string())
    });
    if let Some(dev) = dev {
        let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
        if let Err(e) = std::fs::write(&knob, kib.to_string()) {
            tracing::debug!("cannot raise readahead via {knob}: {e}");
        }
    }
}
