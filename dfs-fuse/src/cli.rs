//! The flags of the `dfs-fuse` binary and how they become a [`MountConfig`].

use crate::fs::FsConfig;
use crate::MountConfig;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Mount a dfs cluster. Unmount with `umount DIR`, `fusermount3 -u DIR`, or SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "dfs-fuse", version)]
pub struct Args {
    /// Directory to mount on.
    pub mountpoint: PathBuf,
    /// TOML file setting any of the flags below, keys spelt with underscores
    /// (`cert_name = "laptop"`); flags on the command line win [default:
    /// /etc/dfs/fuse.toml, if it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Coordinator address, host:port.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub coord: String,
    /// Directory holding ca.crt and this client's certificate and key.
    #[arg(long, default_value = "/etc/dfs/certs")]
    pub certs: PathBuf,
    /// Name of this client's certificate (NAME.crt / NAME.key in --certs).
    #[arg(long, default_value = "client")]
    pub cert_name: String,
    /// Bytes of whole shards cached in memory for readers (`67108864`, `64M`, `1G`).
    #[arg(long, value_name = "BYTES", value_parser = size, default_value = "64M")]
    pub cache_bytes: usize,
    /// Shard uploads in flight across the mount (each holds one shard in memory).
    #[arg(long, default_value_t = 8)]
    pub upload_slots: usize,
    /// Dirty bytes buffered per file before uploading ahead of close/fsync. Small writes
    /// into stored data are kept as sparse patches (only the bytes written) and flushed,
    /// fullest shard first, once a budget is exceeded.
    #[arg(long, value_name = "BYTES", value_parser = size, default_value_t = crate::fs::DEFAULT_MAX_DIRTY)]
    pub max_dirty: usize,
    /// Dirty bytes buffered by all open files of the mount together; with --cache-bytes
    /// and --upload-slots (each slot up to ~3 shards while it patches and stores one) it
    /// bounds the mount's memory.
    #[arg(long, value_name = "BYTES", value_parser = size, default_value_t = crate::fs::DEFAULT_MAX_DIRTY)]
    pub max_dirty_total: usize,
    /// Deadline of one request to a storage node, in milliseconds. A node that misses it
    /// is skipped for the next holder, so it bounds how long one read or write can stall
    /// when a node dies or freezes.
    #[arg(long, default_value_t = 1500)]
    pub node_timeout_ms: u64,
    /// Deadline of one request to the coordinator, in milliseconds, retries included: a
    /// coordinator that restarts within it is a pause, not an error; one that stays away
    /// longer gives EIO.
    #[arg(long, default_value_t = 10_000)]
    pub meta_timeout_ms: u64,
    /// Kernel attribute/entry cache time, in milliseconds; also how long a directory
    /// listing may answer lookups (0 turns both off).
    #[arg(long, default_value_t = 1000)]
    pub ttl_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain TCP, no TLS), e.g.
    /// 127.0.0.1:9102 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Send each unlink to the coordinator and wait for its answer, instead of answering
    /// at once and sending unlinks in batches within 5 ms (docs/SEMANTICS.md, "Removals").
    #[arg(long)]
    pub sync_removals: bool,
}

/// Where `dfs-fuse` looks for its configuration file when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/dfs/fuse.toml";

impl Args {
    /// Parses the process's command line merged over its configuration file (see
    /// `dfs_ops::config_file`). Exits with clap's message on a bad flag.
    pub fn from_env() -> anyhow::Result<Args> {
        dfs_ops::config_file::parse_with_config(std::path::Path::new(DEFAULT_CONFIG))
    }

    /// The mount configuration these flags describe. `allow_other`: let every user use the
    /// mount (only root may grant that).
    pub fn into_config(self, allow_other: bool) -> MountConfig {
        MountConfig {
            mountpoint: self.mountpoint,
            coord: self.coord,
            certs: self.certs,
            cert_name: self.cert_name,
            fs: FsConfig {
                cache_bytes: self.cache_bytes,
                upload_slots: self.upload_slots,
                max_dirty: self.max_dirty,
                max_dirty_total: self.max_dirty_total,
                node_deadline: Duration::from_millis(self.node_timeout_ms),
                // A read waits for a holder as long as a metadata request waits for the
                // coordinator: both ride out a restart.
                holder_wait: Duration::from_millis(self.meta_timeout_ms),
                lookup_ttl: Duration::from_millis(self.ttl_ms),
                write_behind_removals: !self.sync_removals,
            },
            ttl: Duration::from_millis(self.ttl_ms),
            meta_deadline: Duration::from_millis(self.meta_timeout_ms),
            allow_other,
            metrics_listen: self.metrics_listen,
        }
    }
}

/// A byte count as the coordinator and the nodes take them: plain digits or with a unit
/// (`512K`, `64M`, `1G`; powers of 1024).
fn size(s: &str) -> Result<usize, String> {
    let n = dfs_ops::units::parse_size(s)?;
    usize::try_from(n).map_err(|_| format!("{s:?} is too large for this machine"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn example_config_file_parses() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/fuse.toml");
        let argv = dfs_ops::config_file::merge_config(
            &Args::command(),
            vec!["dfs-fuse".into(), "/mnt/dfs".into()],
            1,
            std::path::Path::new(example),
        )
        .unwrap();
        let a = Args::try_parse_from(argv).unwrap();
        assert_eq!(a.mountpoint, PathBuf::from("/mnt/dfs"));
        assert_eq!(
            (a.coord.as_str(), a.cache_bytes),
            ("10.0.0.1:7000", 64 << 20)
        );
        assert_eq!((a.max_dirty, a.max_dirty_total), (64 << 20, 64 << 20));
    }

    #[test]
    fn sizes_take_units_like_the_other_daemons() {
        let a = Args::try_parse_from([
            "dfs-fuse",
            "/mnt/dfs",
            "--cache-bytes",
            "32M",
            "--max-dirty",
            "1048576",
            "--max-dirty-total",
            "1GiB",
        ])
        .unwrap();
        assert_eq!(
            (a.cache_bytes, a.max_dirty, a.max_dirty_total),
            (32 << 20, 1 << 20, 1 << 30)
        );
        let bad = Args::try_parse_from(["dfs-fuse", "/m", "--cache-bytes", "lots"]);
        assert!(bad.unwrap_err().to_string().contains("not a size"));
    }
}
