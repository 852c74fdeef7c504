//! What a node adds to the request metrics (`dfs_ops::rpc_metrics`) on its
//! `--metrics-listen` endpoint: how full it is, read from the shard store at each scrape.

use crate::shard_store::ShardStore;
use dfs_ops::metrics::http;
use dfs_ops::metrics::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Binds `addr` and serves `registry`, plus the node's storage gauges, until aborted.
pub async fn start(
    addr: SocketAddr,
    registry: Arc<Registry>,
    store: Arc<ShardStore>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = http::bind(addr).await?;
    info!("metrics at http://{}/metrics", listener.local_addr()?);
    let shards = registry.gauge("dfs_node_shards", "Shards stored on this node.", &[]);
    let capacity = registry.gauge(
        "dfs_node_capacity_bytes",
        "Bytes this node may use for shards (--capacity, or free disk space minus --reserve).",
        &[],
    );
    let used = registry.gauge("dfs_node_used_bytes", "Bytes the shard files take.", &[]);
    let refresh = move || {
        let (store, shards, capacity, used) = (
            store.clone(),
            shards.clone(),
            capacity.clone(),
            used.clone(),
        );
        async move {
            // stats() may call statvfs: a blocking system call, off the async workers.
            match tokio::task::spawn_blocking(move || store.stats()).await {
                Ok(s) => {
                    shards.set_u64(&[], s.shards);
                    capacity.set_u64(&[], s.capacity);
                    used.set_u64(&[], s.used);
                }
                Err(e) => warn!("failed to read node stats for metrics: {e}"),
            }
        }
    };
    Ok(tokio::spawn(http::serve(
        listener,
        registry,
        refresh,
        std::future::pending(),
    )))
}
