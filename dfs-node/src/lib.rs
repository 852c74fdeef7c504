//! dfs storage node: keeps content-addressed shards on local disk and serves them to
//! clients, other nodes and the coordinator over mutually-authenticated QUIC.
//!
//! A node knows nothing about files or directories: it stores opaque shards, each named by
//! the SHA-256 of its bytes, and checks that name on the way in and on the way out. Which
//! shards make up which file, and which nodes hold them, is the coordinator's business;
//! the node only tells the coordinator that it exists, what it holds and how full it is.
//!
//! # Layout
//! - [`config`]: command-line flags of the `dfs-node` binary (and the `10G` size syntax).
//! - [`shard_store`]: the data directory: crash-safe writes (tmp, rename; fsynced on
//!   `Sync`, every `--sync-interval`, or before each answer with `--durable-close`),
//!   verified reads, deletes, listing, space accounting against capacity, and the node's
//!   identity file.
//! - `fanout`: the `shards/aa/bb` directories, created on first use and remembered, so a
//!   put makes no `mkdir` into a directory it has seen.
//! - [`shard_file`]: the byte layout of one shard file (header, per-block checksums, data).
//! - [`access`]: the access table, which certificate roles may send which request.
//! - [`metrics`]: the `--metrics-listen` endpoint and the node's storage gauges.
//! - [`server`]: the request handler mapping `NodeRequest`s onto the shard store.
//! - [`replication`]: `Replicate`, fetching a shard from another node (repair).
//! - [`corruption`]: what happens to a copy found damaged: deleted, and reported to the
//!   coordinator.
//! - [`scrubber`]: the background task that verifies every shard, slowly, over and over.
//! - [`registration`]: register with the coordinator, send the inventory, heartbeat, and
//!   start over when the coordinator has forgotten us.
//! - [`run`] (here): wires them together for one node process.

pub mod access;
mod blocking;
pub mod config;
pub mod corruption;
mod fanout;
pub mod metrics;
pub mod registration;
pub mod replication;
pub mod scrubber;
pub mod server;
pub mod shard_file;
pub mod shard_store;

use anyhow::{Context, Result};
use corruption::CorruptionHandler;
use dfs_ops::metrics::Registry;
use dfs_ops::rpc_metrics::{Metered, RpcMetrics};
use dfs_ops::sd_notify;
use dfs_proto::access::Role;
use dfs_proto::rpc::{
    client_endpoint, serve_with, server_endpoint_keeping_resets, RpcClient, ServerOptions,
};
use registration::Registration;
use replication::Replicator;
use scrubber::Scrubber;
use server::NodeService;
use shard_store::ShardStore;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Everything a node process needs to know at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory (shards, `node.id`).
    pub data: PathBuf,
    /// Address to bind the QUIC endpoint to; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Address to tell the coordinator (and through it, clients); the bound address if
    /// `None`.
    pub advertise: Option<String>,
    /// Coordinator address, `host:port`.
    pub coord: String,
    /// Certificate directory (`ca.crt`, `NAME.crt`, `NAME.key`).
    pub certs: PathBuf,
    /// This node's certificate name in `certs`.
    pub cert_name: String,
    /// Bytes shards may use; `None`: free disk space minus `reserve`.
    pub capacity: Option<u64>,
    /// Disk space left for others when `capacity` is `None`.
    pub reserve: u64,
    /// File to write the advertised address to once listening.
    pub addr_file: Option<PathBuf>,
    /// Average bytes per second the scrubber may read; 0 disables it.
    pub scrub_rate: u64,
    /// Pause between two scrub passes.
    pub scrub_interval: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// fsync each shard before acknowledging its put (`--durable-close`).
    pub durable_close: bool,
    /// How often stored shards are made durable without being asked (`--sync-interval`).
    pub sync_interval: Duration,
}

impl NodeConfig {
    /// A configuration with the required settings and the same defaults as the binary's
    /// flags for everything else. Change fields afterwards, or with
    /// `NodeConfig { capacity: Some(1 << 30), ..NodeConfig::new(..) }`, so that callers keep
    /// compiling when new settings are added.
    pub fn new(
        data: impl Into<PathBuf>,
        coord: impl Into<String>,
        certs: impl Into<PathBuf>,
        cert_name: impl Into<String>,
    ) -> NodeConfig {
        NodeConfig {
            data: data.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            coord: coord.into(),
            certs: certs.into(),
            cert_name: cert_name.into(),
            capacity: None,
            reserve: config::DEFAULT_RESERVE,
            addr_file: None,
            scrub_rate: config::DEFAULT_SCRUB_RATE,
            scrub_interval: config::DEFAULT_SCRUB_INTERVAL,
            metrics_listen: None,
            durable_close: false,
            sync_interval: config::DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// Makes the shards stored since the last sync durable every `every`: the bound on what a
/// power loss can take of files that were closed but never fsynced.
async fn sync_loop(store: Arc<ShardStore>, every: Duration) {
    let mut iv = tokio::time::interval(every.max(Duration::from_millis(10)));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("periodic sync of the shards failed: {e}"),
            Err(e) => warn!("periodic sync of the shards failed: {e}"),
        }
    }
}

/// Runs a storage node until `shutdown` resolves.
pub async fn run(cfg: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let store = {
        let (data, capacity, reserve) = (cfg.data.clone(), cfg.capacity, cfg.reserve);
        tokio::task::spawn_blocking(move || ShardStore::open(&data, capacity, reserve))
            .await
            .context("open shard store")?
            .with_context(|| format!("open data directory {}", cfg.data.display()))?
    };
    let store = Arc::new(store.with_durable_puts(cfg.durable_close));

    let tls = dfs_ops::daemon::load_tls(&cfg.certs, &cfg.cert_name)?;
    // Kept across restarts: a mount's request on a connection to this node's previous
    // process fails at once instead of after its deadline.
    let reset_key = dfs_proto::reset_key::load_or_create(&cfg.data)?;
    let endpoint = server_endpoint_keeping_resets(&tls, cfg.listen, &reset_key)?;
    // With port 0 the kernel chose the port: ask what we actually got.
    let bound = endpoint.local_addr().context("read bound address")?;
    let advertised = match &cfg.advertise {
        Some(a) => a.clone(),
        None => {
            if bound.ip().is_unspecified() {
                warn!("listening on {bound}, which no one can dial: pass --advertise HOST:PORT");
            }
            bound.to_string()
        }
    };
    let stats = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.stats())
            .await
            .context("read node stats")?
    };
    info!(
        node = %store.node_id(),
        addr = %advertised,
        data = %cfg.data.display(),
        capacity = stats.capacity,
        used = stats.used,
        shards = stats.shards,
        "dfs-node started"
    );

    // Request metrics are always counted (a few atomic adds per request); they are only
    // served when --metrics-listen is given. Bound before any background task starts and
    // before READY: a bad address fails the start cleanly instead of going unnoticed.
    let registry = Registry::new();
    let rpc_metrics = RpcMetrics::new(&registry);
    let metrics_server = match cfg.metrics_listen {
        Some(addr) => Some(metrics::start(addr, registry, store.clone()).await?),
        None => None,
    };
    // The address file tells scripts and tests that the node is up: written only once
    // everything it serves, metrics included, is bound.
    if let Some(path) = &cfg.addr_file {
        // Atomic replace: a script polling for the file never reads half an address.
        let (p, text) = (path.clone(), format!("{advertised}\n"));
        tokio::task::spawn_blocking(move || dfs_ops::durable::write_atomic(&p, text.as_bytes()))
            .await
            .context("write address file")?
            .with_context(|| format!("write {}", path.display()))?;
    }

    // The node dials the coordinator with its own certificate, whose role (node) is what
    // lets the coordinator accept its registration; it insists the other side is a
    // coordinator. One client endpoint (one UDP socket) serves every outgoing call; each
    // RpcClient on it checks the role of the servers it dials.
    let dialer = client_endpoint(&tls)?;
    // Kept to close every outgoing connection when the node stops.
    let outgoing = RpcClient::new(dialer.clone(), Role::Coord);
    let coord_client = RpcClient::new(dialer.clone(), Role::Coord);
    let registration = tokio::spawn(
        Registration::new(store.clone(), coord_client, cfg.coord.clone(), advertised).run(),
    );
    let corruption = CorruptionHandler::new(
        store.clone(),
        RpcClient::new(dialer.clone(), Role::Coord),
        cfg.coord.clone(),
    );
    // Repair fetches shards from other nodes, which must present node certificates.
    let replicator = Replicator::new(store.clone(), RpcClient::new(dialer, Role::Node));
    let scrubber = tokio::spawn(
        Scrubber::new(
            store.clone(),
            corruption.clone(),
            cfg.scrub_rate,
            cfg.scrub_interval,
        )
        .run(),
    );

    let syncer = tokio::spawn(sync_loop(store.clone(), cfg.sync_interval));

    let service = Metered::new(
        Arc::new(NodeService::new(store.clone(), replicator, corruption)),
        rpc_metrics,
    );
    // Listening, address written, registration under way: tell a service manager we
    // serve (see `dfs_ops::sd_notify`), and that we stop when asked to.
    sd_notify::notify_or_log(sd_notify::READY);
    let shutdown = async {
        shutdown.await;
        sd_notify::notify_or_log(sd_notify::STOPPING);
    };
    serve_with(
        endpoint,
        Arc::new(service),
        ServerOptions::new(&tls),
        shutdown,
    )
    .await;
    if let Some(m) = metrics_server {
        m.abort();
    }
    // Requests already running in the blocking pool finish on their own (a put completes
    // its rename or leaves only a tmp file, removed at the next start).
    registration.abort();
    scrubber.abort();
    syncer.abort();
    // A node that stops normally leaves every shard it acknowledged durable.
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.sync()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("final sync of the shards failed: {e}"),
        Err(e) => warn!("final sync of the shards failed: {e}"),
    }
    outgoing.close().await;
    info!("dfs-node stopped");
    Ok(())
}
