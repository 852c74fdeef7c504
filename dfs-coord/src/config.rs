//! Settings of a coordinator and of a cluster, and parsing of the human-friendly values
//! (`1M`, `5s`) the command line accepts.

use anyhow::{bail, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Cluster behaviour the coordinator enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordSettings {
    /// Copies of every shard the cluster aims for.
    pub replicas: u32,
    /// Copies a write needs before it may succeed (at most `replicas`). Lower than
    /// `replicas` lets writes go on while a node is down, at the price of a window where
    /// fewer copies exist.
    pub min_copies: u32,
    /// Bytes per shard. Fixed when the cluster is created: file offsets are computed from
    /// it, so the value stored with the metadata wins over this one on later starts.
    pub shard_size: u32,
    /// Silence after which a node is considered down.
    pub node_timeout: Duration,
    /// How long a node may stay Down before its copies stop counting and re-replication
    /// starts. Most outages are restarts that last seconds; copying a whole node's data
    /// for each of them would cost far more than waiting a little.
    pub repair_grace: Duration,
    /// How long a shard must stay unreferenced (or unknown on a node) before its copies
    /// are deleted. Covers writes in progress: a client stores shards first and commits
    /// them afterwards, and in between they are referenced by nothing. Also the lease of
    /// an orphan inode (unlinked while open): deleted once no mount has renewed it for
    /// this long (`gc.rs`, `orphan_pass`).
    pub gc_grace: Duration,
    /// How long a shard whose last reference went away (a file overwritten, truncated or
    /// deleted) is kept before its copies are deleted. Shorter than `gc_grace`: a writer
    /// about to reuse the same content holds a placement or a lease, which protects the
    /// shard anyway, so this only covers readers still working from an older layout.
    /// Rewriting a file over and over would otherwise pile up garbage for `gc_grace`.
    pub unref_grace: Duration,
    /// Acknowledge a change only once it is fsynced (the metadata log's group fsync),
    /// like an NFS `sync` export. Off by default: a change is acknowledged once it is in
    /// the log's page cache (it survives a crash of the coordinator; a power loss can take
    /// the last few milliseconds of changes nobody fsynced), see docs/SEMANTICS.md.
    pub durable_close: bool,
    /// Most bytes per second re-replication may copy, in total, so that repair traffic
    /// leaves room for the clients' own reads and writes.
    pub repair_rate: u64,
    /// How often the background maintenance (repair and garbage collection) runs.
    pub maintenance_interval: Duration,
}

impl Default for CoordSettings {
    fn default() -> Self {
        CoordSettings {
            replicas: 2,
            min_copies: 2,
            shard_size: dfs_proto::DEFAULT_SHARD_SIZE,
            node_timeout: Duration::from_secs(5),
            repair_grace: Duration::from_secs(5 * 60),
            gc_grace: Duration::from_secs(10 * 60),
            unref_grace: Duration::from_secs(60),
            durable_close: false,
            repair_rate: 64 << 20,
            maintenance_interval: Duration::from_secs(2),
        }
    }
}

impl CoordSettings {
    /// `min_copies` clamped to `1..=replicas`, so that `CoordSettings { replicas: 1,
    /// ..Default::default() }` means what it says.
    pub fn normalized(mut self) -> CoordSettings {
        self.min_copies = self.min_copies.clamp(1, self.replicas.max(1));
        self
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        if self.replicas == 0 {
            bail!("replicas must be at least 1");
        }
        if self.shard_size == 0 || self.shard_size > dfs_proto::MAX_SHARD_SIZE {
            bail!(
                "shard size must be between 1 byte and {} bytes, got {}",
                dfs_proto::MAX_SHARD_SIZE,
                self.shard_size
            );
        }
        if self.node_timeout.is_zero() {
            bail!("node timeout must be positive");
        }
        if self.repair_rate == 0 {
            bail!("repair rate must be positive");
        }
        if self.maintenance_interval.is_zero() {
            bail!("maintenance interval must be positive");
        }
        Ok(())
    }
}

/// Everything `run` needs to serve.
#[derive(Debug, Clone)]
pub struct CoordConfig {
    /// Directory holding `meta.redb`.
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// Certificate directory (`ca.crt`, `NAME.crt`, `NAME.key`).
    pub certs: PathBuf,
    /// Which certificate in `certs` to serve with (normally `coord`).
    pub cert_name: String,
    pub settings: CoordSettings,
    /// If set, the bound address is written there once listening (useful with port 0).
    pub addr_file: Option<PathBuf>,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to serve the live cluster view (`view.rs`); `None`: nowhere.
    pub view_listen: Option<SocketAddr>,
    /// The token every view request must carry; required to bind a non-loopback address.
    pub view_token: Option<String>,
}

pub use dfs_ops::units::{parse_duration, parse_size};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation() {
        assert!(CoordSettings::default().validate().is_ok());
        let one = CoordSettings {
            replicas: 1,
            ..CoordSettings::default()
        };
        assert_eq!(one.normalized().min_copies, 1);
        let bad = CoordSettings {
            replicas: 0,
            ..CoordSettings::default()
        };
        assert!(bad.validate().is_err());
    }
}
