//! What the coordinator adds to the request metrics (`dfs_ops::rpc_metrics`) on its
//! `--metrics-listen` endpoint: the cluster's state as `dfs-coord status` shows it (nodes,
//! space, shards, replication, repair), computed at each scrape.

use crate::observe::{self, Observed};
use dfs_ops::metrics::{http, Registry};
use dfs_proto::coord_msg::NodeState;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Binds `addr` and serves `registry`, plus the cluster gauges, until aborted.
pub async fn start<O: Observed>(
    addr: SocketAddr,
    registry: Arc<Registry>,
    coord: Arc<O>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = http::bind(addr).await?;
    info!("metrics at http://{}/metrics", listener.local_addr()?);
    let g = Arc::new(ClusterGauges::new(&registry));
    let refresh = move || {
        let (coord, g) = (coord.clone(), g.clone());
        async move { g.refresh(&coord).await }
    };
    Ok(tokio::spawn(http::serve(
        listener,
        registry,
        refresh,
        std::future::pending(),
    )))
}

struct ClusterGauges {
    nodes: Arc<dfs_ops::metrics::Gauge>,
    capacity: Arc<dfs_ops::metrics::Gauge>,
    used: Arc<dfs_ops::metrics::Gauge>,
    shards: Arc<dfs_ops::metrics::Gauge>,
    under_replicated: Arc<dfs_ops::metrics::Gauge>,
    inodes: Arc<dfs_ops::metrics::Gauge>,
    repair_in_flight: Arc<dfs_ops::metrics::Gauge>,
    repair_pending: Arc<dfs_ops::metrics::Gauge>,
    repaired: Arc<dfs_ops::metrics::Counter>,
    collected: Arc<dfs_ops::metrics::Counter>,
}

impl ClusterGauges {
    fn new(r: &Registry) -> ClusterGauges {
        ClusterGauges {
            nodes: r.gauge(
                "dfs_coord_nodes",
                "Storage nodes known, by state.",
                &["state"],
            ),
            capacity: r.gauge(
                "dfs_coord_capacity_bytes",
                "Raw shard capacity of the nodes that are up (before replication).",
                &[],
            ),
            used: r.gauge(
                "dfs_coord_used_bytes",
                "Raw bytes used on the nodes that are up (every copy counts).",
                &[],
            ),
            shards: r.gauge("dfs_coord_shards", "Shards referenced by files.", &[]),
            under_replicated: r.gauge(
                "dfs_coord_under_replicated_shards",
                "Shards with fewer live copies than the replication factor.",
                &[],
            ),
            inodes: r.gauge("dfs_coord_inodes", "Files, directories and links.", &[]),
            repair_in_flight: r.gauge(
                "dfs_coord_repair_in_flight_shards",
                "Shards being copied by repair right now.",
                &[],
            ),
            repair_pending: r.gauge(
                "dfs_coord_repair_pending_bytes",
                "Bytes of under-replicated shards repair still has to copy (its queue).",
                &[],
            ),
            repaired: r.counter(
                "dfs_coord_repaired_shards_total",
                "Shards copied by repair since the coordinator started.",
                &[],
            ),
            collected: r.counter(
                "dfs_coord_collected_shards_total",
                "Shards deleted by garbage collection since the coordinator started.",
                &[],
            ),
        }
    }

    async fn refresh(&self, coord: &impl Observed) {
        let st = match observe::status(coord).await {
            Ok(st) => st,
            Err(e) => {
                warn!("failed to read the cluster status for metrics: {e}");
                return;
            }
        };
        let (mut up, mut down, mut capacity, mut used) = (0i64, 0i64, 0u64, 0u64);
        for n in &st.nodes {
            match n.state {
                NodeState::Up => {
                    up += 1;
                    capacity = capacity.saturating_add(n.stats.capacity);
                    used = used.saturating_add(n.stats.used);
                }
                NodeState::Down => down += 1,
            }
        }
        self.nodes.set(&["up"], up);
        self.nodes.set(&["down"], down);
        self.capacity.set_u64(&[], capacity);
        self.used.set_u64(&[], used);
        self.shards.set_u64(&[], st.shards);
        self.under_replicated.set_u64(&[], st.under_replicated);
        self.inodes.set_u64(&[], st.inodes);
        self.repair_in_flight.set_u64(&[], st.repair.in_flight);
        self.repair_pending.set_u64(&[], st.repair.bytes_left);
        self.repaired.set(&[], st.repair.repaired);
        self.collected.set(&[], st.repair.collected);
    }
}
