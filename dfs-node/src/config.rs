//! Command-line flags of the `dfs-node` binary, and the byte-size (`10G`) and duration
//! (`30s`) syntax they accept.

use crate::NodeConfig;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `--reserve` default: 256 MiB.
pub const DEFAULT_RESERVE: u64 = 256 << 20;
/// `--scrub-rate` default: 16 MiB/s, a small share of any disk, yet a full pass over 1 TB
/// takes under a day.
pub const DEFAULT_SCRUB_RATE: u64 = 16 << 20;
/// `--scrub-interval` default: one hour between passes.
pub const DEFAULT_SCRUB_INTERVAL: Duration = Duration::from_secs(3600);

/// `--sync-interval` default: the longest a stored shard waits for the node's own sync,
/// and so what a power loss can cost of files closed but not fsynced.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Where `dfs-node` looks for its configuration file when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/dfs/node.toml";

/// dfs storage node: keeps content-addressed shards on local disk and serves them over QUIC.
#[derive(Debug, Parser)]
#[command(name = "dfs-node", version)]
pub struct Args {
    /// TOML file setting any of the flags below, keys spelt with underscores
    /// (`scrub_rate = "16M"`); flags on the command line win [default: /etc/dfs/node.toml,
    /// if it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory for shards and the node's identity (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Coordinator address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub coord: String,
    /// Directory holding ca.crt and this node's certificate and key.
    #[arg(long, value_name = "DIR")]
    pub certs: PathBuf,
    /// Name of this node's certificate in --certs (NAME.crt, NAME.key), e.g. node-1.
    #[arg(long, value_name = "NAME")]
    pub cert_name: String,
    /// Address to listen on for QUIC (UDP); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Address clients should dial, as told to the coordinator [default: the bound address].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Bytes shards may use, e.g. 10G or 512M [default: free disk space minus --reserve].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub capacity: Option<u64>,
    /// Disk space to leave free when no --capacity is given (e.g. 256M).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "268435456")]
    pub reserve: u64,
    /// Write the advertised address to this file once listening (for scripts and tests).
    #[arg(long, value_name = "PATH")]
    pub addr_file: Option<PathBuf>,
    /// Bytes per second the background scrubber may read to verify shards, e.g. 16M; 0
    /// disables scrubbing.
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = parse_size, default_value = "16M")]
    pub scrub_rate: u64,
    /// Pause between two full scrub passes, e.g. 30s, 10m, 1h, 2d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    pub scrub_interval: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain TCP, no TLS: pick an address
    /// only your monitoring reaches), e.g. 127.0.0.1:9101 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// fsync every shard (file and directory) before acknowledging its put, like an NFS
    /// `sync` export. Without it a put is acknowledged once the shard is in place; a
    /// client's fsync makes it durable (`Sync`), and so does the node every
    /// --sync-interval (docs/SEMANTICS.md).
    #[arg(long)]
    pub durable_close: bool,
    /// How often the node makes the shards stored since the last time durable (one
    /// syncfs), e.g. 1s, 500ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub sync_interval: Duration,
}

impl Args {
    /// Parses the process's command line merged over its configuration file (see
    /// `dfs_ops::config_file`). Exits with clap's message on a bad flag.
    pub fn from_env() -> anyhow::Result<Args> {
        dfs_ops::config_file::parse_with_config(std::path::Path::new(DEFAULT_CONFIG))
    }

    pub fn into_config(self) -> NodeConfig {
        NodeConfig {
            data: self.data,
            listen: self.listen,
            advertise: self.advertise,
            coord: self.coord,
            certs: self.certs,
            cert_name: self.cert_name,
            capacity: self.capacity,
            reserve: self.reserve,
            addr_file: self.addr_file,
            scrub_rate: self.scrub_rate,
            scrub_interval: self.scrub_interval,
            metrics_listen: self.metrics_listen,
            durable_close: self.durable_close,
            sync_interval: self.sync_interval,
        }
    }
}

pub use dfs_ops::units::{parse_duration, parse_size};

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn example_config_file_parses() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/node.toml");
        let argv = dfs_ops::config_file::merge_config(
            &Args::command(),
            vec!["dfs-node".into()],
            1,
            std::path::Path::new(example),
        )
        .unwrap();
        let a = Args::try_parse_from(argv).unwrap();
        assert_eq!(a.cert_name, "node-1");
        assert_eq!(a.advertise.as_deref(), Some("10.0.0.2:7001"));
        assert_eq!(a.scrub_interval, DEFAULT_SCRUB_INTERVAL);
    }

    #[test]
    fn flags_parse_with_defaults() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "dfs-node",
            "--data",
            "/d",
            "--coord",
            "c:1",
            "--certs",
            "/c",
            "--cert-name",
            "node-1",
        ])
        .unwrap();
        let c = a.into_config();
        assert_eq!(c.reserve, 256 << 20);
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!((c.capacity, c.advertise, c.addr_file), (None, None, None));
        // The flags' defaults are the ones NodeConfig::new uses.
        assert_eq!(c.reserve, DEFAULT_RESERVE);
        assert_eq!(
            (c.scrub_rate, c.scrub_interval),
            (DEFAULT_SCRUB_RATE, DEFAULT_SCRUB_INTERVAL)
        );
        let n = NodeConfig::new("/d", "c:1", "/c", "node-1");
        assert_eq!(
            (n.reserve, n.scrub_rate, n.scrub_interval, n.listen),
            (c.reserve, c.scrub_rate, c.scrub_interval, c.listen)
        );
        let a = Args::try_parse_from([
            "dfs-node",
            "--data",
            "/d",
            "--coord",
            "c:1",
            "--certs",
            "/c",
            "--cert-name",
            "n",
            "--capacity",
            "10G",
            "--reserve",
            "1M",
            "--scrub-rate",
            "0",
            "--scrub-interval",
            "30s",
        ])
        .unwrap();
        assert_eq!((a.capacity, a.reserve), (Some(10 << 30), 1 << 20));
        assert_eq!(
            (a.scrub_rate, a.scrub_interval),
            (0, Duration::from_secs(30))
        );
        assert!(Args::try_parse_from(["dfs-node", "--data", "/d"]).is_err());
    }
}
