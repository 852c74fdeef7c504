//! The coordinator as a daemon: [`run`] opens the store, serves QUIC until shutdown, and
//! runs the background loops (failure detection, metadata checkpoints, maintenance) beside it, plus
//! the optional metrics and cluster-view endpoints.

use crate::config::CoordConfig;
use crate::coordinator::Coordinator;
use crate::sender::RpcNodeSender;
use anyhow::Context;
use dfs_ops::metrics::Registry as MetricsRegistry;
use dfs_ops::rpc_metrics::{Metered, RpcMetrics};
use dfs_ops::sd_notify;
use dfs_proto::rpc::{serve_with, server_endpoint_keeping_resets, ServerOptions};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Periodically marks silent nodes Down. Checking a few times per timeout keeps the
/// detection delay close to the timeout itself.
async fn down_detector(coord: Arc<Coordinator>) {
    let period = (coord.settings().node_timeout / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        coord.tick(Instant::now());
    }
}

/// Checkpoints the metadata store when one is due (`Store::checkpoint_if_due`): the log's
/// own fsyncs run on its thread (`store/wal.rs`); this bounds the log's length.
async fn checkpoint_loop(coord: Arc<Coordinator>) {
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        if let Err(e) = coord.checkpoint(false).await {
            warn!("metadata checkpoint failed (the log keeps every change): {e}");
        }
    }
}

/// Opens `DATA/meta.redb`, serves QUIC on `cfg.listen` and watches node heartbeats until
/// `shutdown` resolves. Shutting down stops accepting, makes the last lazily committed
/// namespace changes durable, lets in-flight streams finish briefly, and returns.
pub async fn run(cfg: CoordConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // A view that may not be served is a configuration mistake: say so before touching
    // the store or the network.
    if let Some(addr) = cfg.view_listen {
        crate::view::check_exposure(addr, cfg.view_token.as_deref())?;
    }
    dfs_ops::durable::create_private_dir(&cfg.data).context("create data directory")?;
    let tls = dfs_ops::daemon::load_tls(&cfg.certs, &cfg.cert_name)?;
    // Maintenance talks to nodes as the coordinator, with its own certificate.
    let sender = Arc::new(RpcNodeSender::new(&tls)?);
    let db_path = cfg.data.join("meta.redb");
    let settings = cfg.settings;
    let coord =
        tokio::task::spawn_blocking(move || Coordinator::open_with(&db_path, settings, sender))
            .await
            .context("open metadata store")??;
    // Kept across restarts, so that the peers of the previous process (nodes
    // heartbeating, mounts waiting for an answer) learn at once that it is gone.
    let reset_key = dfs_proto::reset_key::load_or_create(&cfg.data)?;
    let endpoint = server_endpoint_keeping_resets(&tls, cfg.listen, &reset_key)?;
    let local = endpoint.local_addr().context("read bound address")?;
    let s = coord.settings();
    info!(
        "coordinator listening on {local} (replicas {}, min copies {}, shard size {}, node timeout {:?})",
        s.replicas, s.min_copies, s.shard_size, s.node_timeout
    );
    info!(
        "maintenance every {:?}: repair after {:?} down at up to {}/s, garbage collected \
         after {:?}",
        s.maintenance_interval,
        s.repair_grace,
        crate::status::human_bytes(s.repair_rate),
        s.gc_grace
    );
    // Request metrics are always counted; they are served only with --metrics-listen,
    // bound before the background tasks start and before READY, so that a bad address
    // fails the start cleanly.
    let registry = MetricsRegistry::new();
    let rpc_metrics = RpcMetrics::new(&registry);
    let metrics_server = match cfg.metrics_listen {
        Some(addr) => Some(crate::metrics::start(addr, registry, coord.clone()).await?),
        None => None,
    };
    // Likewise the cluster view, which refuses a non-loopback address without a token.
    let view_server = match cfg.view_listen {
        Some(addr) => Some(crate::view::start(addr, cfg.view_token.clone(), coord.clone()).await?),
        None => None,
    };
    // The address file tells scripts and tests the coordinator is up: written once
    // everything it serves, metrics and view included, is bound.
    if let Some(p) = &cfg.addr_file {
        // Crash-safe like every file the daemons write: a script polling for it never
        // reads a half-written address, and a reboot never leaves an empty one.
        dfs_ops::durable::write_atomic(p, format!("{local}\n").as_bytes())
            .with_context(|| format!("write {}", p.display()))?;
    }
    let detector = tokio::spawn(down_detector(coord.clone()));
    let maintenance = tokio::spawn(maintenance_loop(coord.clone()));
    let checkpointer = tokio::spawn(checkpoint_loop(coord.clone()));
    // Bound, store open, address written: from here requests are answered, so a service
    // manager may start what depends on us (see `dfs_ops::sd_notify`).
    sd_notify::notify_or_log(sd_notify::READY);
    let shutdown = async {
        shutdown.await;
        sd_notify::notify_or_log(sd_notify::STOPPING);
        // While the server drains it reads no new heartbeat: a detector left running
        // would mark every node down, and a Place still being answered would wait for
        // nodes that cannot come back until the next process.
        detector.abort();
        maintenance.abort();
    };
    serve_with(
        endpoint.clone(),
        Arc::new(Metered::new(coord.clone(), rpc_metrics)),
        ServerOptions::new(&tls),
        shutdown,
    )
    .await;
    for server in [metrics_server, view_server].into_iter().flatten() {
        server.abort();
    }
    checkpointer.abort();
    if let Err(e) = coord.checkpoint(true).await {
        warn!("final metadata checkpoint failed (the log keeps every change): {e}");
    }
    // Give clients a moment to receive the close; nothing is lost if they do not.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    info!("coordinator stopped");
    Ok(())
}

/// Runs a maintenance pass every `maintenance_interval` until aborted.
async fn maintenance_loop(coord: Arc<Coordinator>) {
    let mut iv = tokio::time::interval(coord.settings().maintenance_interval);
    // A slow pass (a big repair) should not be followed by a burst of catch-up passes.
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        if let Err(e) = coord.maintain_once(Instant::now()).await {
            warn!("failed to run maintenance: {e}");
        }
    }
}
