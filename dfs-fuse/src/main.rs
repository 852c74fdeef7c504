//! `dfs-fuse`: mount a dfs cluster at a directory.

use clap::Parser;
use dfs_fuse::fs::FsConfig;
use dfs_fuse::MountConfig;
use std::path::PathBuf;
use std::time::Duration;

/// Mount a dfs cluster. Unmount with `umount DIR`, `fusermount3 -u DIR`, or SIGTERM.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory to mount on.
    mountpoint: PathBuf,
    /// Coordinator address, host:port.
    #[arg(long, default_value = "127.0.0.1:7000")]
    coord: String,
    /// Directory holding ca.crt and this client's certificate and key.
    #[arg(long, default_value = "/etc/dfs/certs")]
    certs: PathBuf,
    /// Name of this client's certificate (NAME.crt / NAME.key in --certs).
    #[arg(long, default_value = "client")]
    cert_name: String,
    /// Bytes of whole shards cached in memory for readers.
    #[arg(long, default_value_t = 64 << 20)]
    cache_bytes: usize,
    /// Shard uploads in flight across the mount (each holds one shard in memory).
    #[arg(long, default_value_t = 8)]
    upload_slots: usize,
    /// Dirty bytes buffered per file before uploading ahead of close/fsync.
    #[arg(long, default_value_t = 16 << 20)]
    max_dirty: usize,
    /// Deadline of one request to a storage node, in milliseconds. A node that misses it
    /// is skipped for the next holder, so it bounds how long one read or write can stall
    /// when a node dies or freezes.
    #[arg(long, default_value_t = 1500)]
    node_timeout_ms: u64,
    /// Deadline of one request to the coordinator, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    meta_timeout_ms: u64,
    /// Kernel attribute/entry cache time, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    ttl_ms: u64,
}

fn main() {
    tracing_subscriber::fmt()
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = try_main() {
        eprintln!("dfs-fuse: {e:#}");
        std::process::exit(1);
    }
}

fn try_main() -> anyhow::Result<()> {
    let a = Args::parse();
    // As root, share the mount with every user and let the kernel enforce permissions.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    dfs_fuse::run(MountConfig {
        mountpoint: a.mountpoint,
        coord: a.coord,
        certs: a.certs,
        cert_name: a.cert_name,
        fs: FsConfig {
            cache_bytes: a.cache_bytes,
            upload_slots: a.upload_slots,
            max_dirty: a.max_dirty,
            node_deadline: Duration::from_millis(a.node_timeout_ms),
        },
        ttl: Duration::from_millis(a.ttl_ms),
        meta_deadline: Duration::from_millis(a.meta_timeout_ms),
        allow_other: root,
    })
}
