//! The coordinator itself: opening the store, dispatching every request with one `match`,
//! and `run`, which serves it over QUIC until shutdown.
//!
//! Requests that read metadata run on a redb read transaction (a snapshot, never blocked
//! by writers); requests that change it run as one write transaction, fsynced before the
//! response leaves. Both block on disk, so they run on tokio's blocking pool and never
//! stall the async workers that move bytes for other connections.

use crate::config::{CoordConfig, CoordSettings};
use crate::decommission::drain_left;
use crate::events::Events;
use crate::maintenance::{maintenance_loop, Maint, NodeSender, RpcNodeSender};
use crate::registry::{apply_inventory, Registry};
use crate::store::Reader;
use crate::store::{ReadTables, Store, StoredSettings, Tables};
use crate::{layout, namespace, placement, xattr};
use anyhow::Context;
use dfs_ops::metrics::Registry as MetricsRegistry;
use dfs_ops::rpc_metrics::{Metered, RpcMetrics};
use dfs_ops::sd_notify;
use dfs_proto::coord_msg::{
    ClusterStatus, CoordRequest, CoordResponse, FsStats, NanoTime, RepairStatus,
};
use dfs_proto::rpc::{serve_with, server_endpoint_keeping_resets, Handler, Peer, ServerOptions};
use dfs_proto::{ErrorCode, NodeId, WireError, WireResult};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// The wall clock in nanoseconds since the epoch, for inode times.
pub(crate) fn now_ns() -> NanoTime {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The coordinator: namespace, layouts and node registry. Share it with `Arc`.
pub struct Coordinator {
    store: Arc<Store>,
    pub(crate) settings: CoordSettings,
    registry: Mutex<Registry>,
    /// Background maintenance state (repair, garbage collection); see `maintenance.rs`.
    maint: Mutex<Maint>,
    /// How maintenance reaches nodes; `None` until `run` (or a test) installs one.
    pub(crate) sender: Mutex<Option<Arc<dyn NodeSender>>>,
    /// Replicate requests under way, for `Status`.
    pub(crate) in_flight: Arc<AtomicU64>,
    /// Recent state changes, for the cluster view (`events.rs`); the registry records
    /// into the same buffer.
    pub(crate) events: Arc<Events>,
}

impl Coordinator {
    /// Opens (or creates) the metadata store at `path`.
    pub fn open(path: &Path, settings: CoordSettings) -> anyhow::Result<Arc<Coordinator>> {
        Coordinator::with_store(Store::open(path)?, settings)
    }

    /// A coordinator whose metadata lives in memory only, for tests.
    pub fn open_in_memory(settings: CoordSettings) -> anyhow::Result<Arc<Coordinator>> {
        Coordinator::with_store(Store::in_memory()?, settings)
    }

    fn with_store(store: Store, settings: CoordSettings) -> anyhow::Result<Arc<Coordinator>> {
        settings.validate()?;
        let mut settings = settings.normalized();
        let wanted = StoredSettings {
            replicas: settings.replicas,
            shard_size: settings.shard_size,
        };
        let stored = store
            .init(wanted, now_ns())
            .map_err(|e| anyhow::anyhow!("initialise metadata store: {e}"))?;
        settings.shard_size = stored.shard_size;
        let (known, admin) = store
            .read(|r| Ok((r.nodes()?, r.node_admin()?)))
            .map_err(|e| anyhow::anyhow!("load known nodes: {e}"))?;
        let registry = Registry::load(known, &admin, Instant::now());
        let events = registry.events.clone();
        Ok(Arc::new(Coordinator {
            store: Arc::new(store),
            settings,
            events,
            registry: Mutex::new(registry),
            maint: Mutex::new(Maint::default()),
            sender: Mutex::new(None),
            in_flight: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// Recent events (nodes down and up, repairs, corruption, garbage collection).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The settings in force (the stored shard size, not necessarily the requested one).
    pub fn settings(&self) -> CoordSettings {
        self.settings
    }

    /// Marks Down the nodes that have been silent longer than the node timeout. `run`
    /// calls this periodically; tests call it with a chosen `now`.
    pub fn tick(&self, now: Instant) {
        self.registry().tick(now, self.settings.node_timeout);
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry holds no invariant a panicking holder could break half way that
        // matters more than staying available, so a poisoned lock is used as is.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Maintenance bookkeeping. Never held together with the registry lock, nor across
    /// an await.
    pub(crate) fn maint(&self) -> MutexGuard<'_, Maint> {
        self.maint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a durable write transaction on the blocking pool.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| WireError::internal(format!("metadata task failed: {e}")))?
    }

    /// Runs `f` in a write transaction for a namespace change: durable at once, or with
    /// `--lazy-namespace-sync` durable within `SYNC_INTERVAL` (`Store::write_soon`).
    pub(crate) async fn write_soon<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        let lazy = self.settings.lazy_namespace_sync;
        tokio::task::spawn_blocking(move || {
            if lazy {
                store.write_soon(f)
            } else {
                store.write(f)
            }
        })
        .await
        .map_err(|e| WireError::internal(format!("metadata task failed: {e}")))?
    }

    /// Makes every namespace change so far durable.
    pub(crate) async fn sync(&self) -> WireResult<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(|e| WireError::internal(format!("metadata task failed: {e}")))?
    }

    /// Runs `f` on a read snapshot on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTables) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|e| WireError::internal(format!("metadata task failed: {e}")))?
    }

    /// Serves one request.
    pub async fn handle(&self, peer: &Peer, req: CoordRequest) -> WireResult<CoordResponse> {
        // Authorization before any work: see access.rs for who may send what.
        if let Err(e) = dfs_proto::access::check(peer, crate::access::rule(&req)) {
            warn!("refused request: {}", e.message);
            return Err(e);
        }
        let res = self.dispatch(req).await;
        if let Err(e) = &res {
            if e.code == ErrorCode::Internal {
                warn!(peer = %peer.addr, "request failed: {e}");
            }
        }
        res
    }

    async fn dispatch(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        use CoordRequest as Q;
        use CoordResponse as R;
        let ss = self.settings.shard_size;
        match req {
            Q::Lookup { parent, name } => self
                .read(move |r| namespace::lookup(r, parent, &name))
                .await
                .map(R::Attr),
            Q::GetAttr { ino } => self
                .read(move |r| namespace::getattr(r, ino))
                .await
                .map(R::Attr),
            Q::SetAttr {
                ino,
                caller: _,
                set,
            } => self
                .write_soon(move |t| namespace::setattr(t, ino, &set, ss, now_ns()))
                .await
                .map(R::Attr),
            Q::Create {
                parent,
                name,
                kind,
                perm,
                rdev,
                caller,
            } => self
                .write_soon(move |t| {
                    namespace::create(t, parent, &name, kind, perm, rdev, caller, now_ns())
                })
                .await
                .map(R::Attr),
            Q::Symlink {
                parent,
                name,
                target,
                caller,
            } => self
                .write_soon(move |t| {
                    namespace::symlink(t, parent, &name, &target, caller, now_ns())
                })
                .await
                .map(R::Attr),
            Q::Readlink { ino } => self
                .read(move |r| namespace::readlink(r, ino))
                .await
                .map(R::Target),
            Q::Link {
                ino,
                new_parent,
                new_name,
            } => self
                .write_soon(move |t| namespace::link(t, ino, new_parent, &new_name, now_ns()))
                .await
                .map(R::Attr),
            Q::Unlink { parent, name, keep } => self
                .write_soon(move |t| namespace::unlink(t, parent, &name, keep, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::Rmdir { parent, name } => self
                .write_soon(move |t| namespace::rmdir(t, parent, &name, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            } => self
                .write_soon(move |t| {
                    namespace::rename(t, parent, &name, new_parent, &new_name, flags, now_ns())
                })
                .await
                .map(|()| R::Unit),
            Q::ReadDir { ino, after, limit } => self
                .read(move |r| namespace::readdir(r, ino, after.as_deref(), limit))
                .await
                .map(R::Dir),
            Q::Release { ino } => self
                .write(move |t| namespace::release(t, ino))
                .await
                .map(|()| R::Unit),
            Q::SetXattr {
                ino,
                name,
                value,
                mode,
            } => self
                .write_soon(move |t| xattr::set(t, ino, &name, &value, mode, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::GetXattr { ino, name } => self
                .read(move |r| xattr::get(r, ino, &name))
                .await
                .map(R::Bytes),
            Q::ListXattr { ino } => self.read(move |r| xattr::list(r, ino)).await.map(R::Names),
            Q::RemoveXattr { ino, name } => self
                .write_soon(move |t| xattr::remove(t, ino, &name, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::StatFs => self.statfs().await.map(R::FsStats),
            Q::Sync => self.sync().await.map(|()| R::Unit),
            Q::GetLayout { ino, from, limit } => {
                let (mut up, draining, unconfirmed) = {
                    let reg = self.registry();
                    let window = crate::registry::UNCONFIRMED_READ_WINDOW;
                    (
                        reg.up(),
                        reg.draining(),
                        reg.unconfirmed(Instant::now(), window),
                    )
                };
                let last: Vec<NodeId> = draining
                    .into_iter()
                    .chain(unconfirmed.keys().copied())
                    .collect();
                up.extend(unconfirmed);
                self.read(move |r| layout::get_layout(r, ino, from, limit, ss, &up, &last))
                    .await
                    .map(R::Layout)
            }
            Q::Place { shards } => self.place(shards).await.map(R::Placements),
            Q::Touch { shards, open } => {
                // A live writer renews its lease on uploads it has not committed yet, and
                // on the orphans it holds open. Only orphans already known are renewed:
                // the map never grows with what a client sends.
                let now = Instant::now();
                let mut m = self.maint();
                for id in shards {
                    m.placed.insert(id, now);
                }
                for ino in open {
                    if let Some(seen) = m.orphan_seen.get_mut(&ino) {
                        *seen = now;
                    }
                }
                Ok(R::Unit)
            }
            Q::Commit {
                ino,
                size,
                mtime,
                shards,
                caller,
            } => {
                {
                    let mut reg = self.registry();
                    for s in &shards {
                        for n in &s.stored_on {
                            reg.note_stored(*n, s.id);
                        }
                    }
                }
                let ids: Vec<dfs_proto::ShardId> = shards.iter().map(|s| s.id).collect();
                let attr = self
                    .write(move |t| {
                        layout::commit(t, ino, size, mtime, &shards, caller, ss, now_ns())
                    })
                    .await?;
                // The placements are used up: from now on the references protect these
                // shards, and when those go, `unref_grace` rather than `gc_grace` applies.
                // (Another writer still holding the same content renews its own
                // placement with `Touch` every second.)
                let mut m = self.maint();
                for id in &ids {
                    m.placed.remove(id);
                    m.placed_on.remove(id);
                }
                Ok(R::Attr(attr))
            }
            Q::Register { node, addr, stats } => {
                if self.registry().is_removed(node) {
                    // Its locations were forgotten; letting it back in would resurrect
                    // stale copies. See decommission.rs.
                    return Err(WireError::new(
                        ErrorCode::NotPermitted,
                        format!(
                            "node {node} was removed from this cluster; wipe its data \
                             directory (it then gets a new id) to join again"
                        ),
                    ));
                }
                let a = addr.clone();
                self.write(move |t| t.put_node(node.0, &a)).await?;
                self.registry().register(node, &addr, stats, Instant::now());
                // Heartbeat well inside the timeout, so one lost heartbeat is not fatal.
                let timeout_ms = self.settings.node_timeout.as_millis();
                let heartbeat_ms = u64::try_from((timeout_ms / 3).clamp(50, 1000)).unwrap_or(1000);
                Ok(R::Registered { heartbeat_ms })
            }
            Q::Inventory {
                node,
                shards,
                first,
                last,
            } => self
                .inventory(node, shards, first, last)
                .await
                .map(|()| R::Unit),
            Q::Heartbeat { node, stats } => self
                .registry()
                .heartbeat(node, stats, Instant::now())
                .map(|()| R::Unit),
            Q::Status => self.status().await.map(R::Status),
            Q::ReportCorrupt { node, id } => self.report_corrupt(node, id).await.map(|()| R::Unit),
            Q::Fsck => self.fsck().await.map(R::Fsck),
            Q::Locate { shards } => self.locate(shards).await.map(R::Locations),
            Q::DrainNode { node } => self.drain_node(node).await.map(|()| R::Unit),
            Q::RemoveNode { node, force } => {
                self.remove_node(node, force).await.map(|r| R::Removed {
                    locations: r.locations,
                    only_copies: r.only_copies,
                })
            }
        }
    }

    async fn statfs(&self) -> WireResult<FsStats> {
        let (capacity, used, free) = self.registry().up_totals();
        let inodes = self.read(|r| r.inode_count()).await?;
        // Every byte is stored `replicas` times: what a user can fill is the raw space
        // divided by that.
        let r = u64::from(self.settings.replicas.max(1));
        Ok(FsStats {
            capacity: capacity / r,
            used: used / r,
            free: free / r,
            inodes,
            shard_size: self.settings.shard_size,
            replicas: self.settings.replicas,
        })
    }

    async fn place(
        &self,
        shards: Vec<(dfs_proto::ShardId, u32)>,
    ) -> WireResult<Vec<dfs_proto::coord_msg::Placement>> {
        let ss = self.settings.shard_size;
        if let Some((id, size)) = shards.iter().find(|(_, size)| *size > ss) {
            return Err(WireError::invalid(format!(
                "shard {id} is {size} bytes, larger than the shard size {ss}"
            )));
        }
        let ids: Vec<_> = shards.iter().map(|(id, _)| *id).collect();
        // Remember what was placed, so garbage collection leaves it alone while the write
        // is under way; and keep the write away from copies being deleted right now (see
        // gc.rs). Both under the maintenance lock, so either GC sees this placement or
        // this placement sees GC's deletion, never neither.
        let now = Instant::now();
        let avoid: Vec<Vec<NodeId>> = {
            let mut m = self.maint();
            ids.iter()
                .map(|id| {
                    m.placed.insert(*id, now);
                    m.collecting.get(id).cloned().unwrap_or_default()
                })
                .collect()
        };
        let locations = self
            .read(move |r| {
                ids.iter()
                    .map(|id| Ok(r.shard(id)?.map(|s| s.locations).unwrap_or_default()))
                    .collect::<WireResult<Vec<_>>>()
            })
            .await?;
        // Copies being deleted are not offered as holders.
        let locations: Vec<Vec<u64>> = locations
            .into_iter()
            .zip(&avoid)
            .map(|(l, a)| if a.is_empty() { l } else { Vec::new() })
            .collect();
        let s = self.settings;
        // Right after a restart the registry is empty until the nodes register again
        // (well under a second, see registration.rs). A write arriving in that moment
        // waits for them, for at most the node timeout after the start, rather than being
        // refused for want of live nodes.
        let placements = loop {
            let now = Instant::now();
            let r = placement::place(
                &mut self.registry(),
                &shards,
                &locations,
                &avoid,
                s.replicas,
                s.min_copies,
                now,
            );
            match r {
                Err(e)
                    if e.code == ErrorCode::Unavailable
                        && !self.registry().unconfirmed(now, s.node_timeout).is_empty() =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => break r?,
            }
        };
        // Remember where each shard was sent: if no commit ever references it (the writer
        // failed or died), garbage collection deletes it from these nodes after the grace.
        {
            let mut m = self.maint();
            for p in &placements {
                let on = m.placed_on.entry(p.id).or_default();
                for t in &p.targets {
                    if !on.contains(&t.id) {
                        on.push(t.id);
                    }
                }
            }
        }
        Ok(placements)
    }

    async fn inventory(
        &self,
        node: NodeId,
        shards: Vec<dfs_proto::ShardId>,
        first: bool,
        last: bool,
    ) -> WireResult<()> {
        let complete = {
            let mut reg = self.registry();
            if !reg.is_known(node) {
                return Err(WireError::not_found(format!(
                    "node {node} is not registered (register first)"
                )));
            }
            reg.inventory_part(node, &shards, first, last)
        };
        if let Some(all) = &complete {
            self.forget_unknown(node, all);
        }
        let c = self
            .write(move |t| apply_inventory(t, node, &shards, complete.as_ref()))
            .await?;
        self.note_unknown(node, &c.unknown, Instant::now());
        if c.orphans > 0 {
            info!(
                "node {node} holds {} shards no file uses (orphans, left for garbage collection)",
                c.orphans
            );
        }
        if last {
            info!(
                "inventory of node {node} complete: {} known shards in the last part, {} \
                 locations forgotten",
                c.known, c.forgotten
            );
        }
        Ok(())
    }

    pub(crate) async fn status(&self) -> WireResult<ClusterStatus> {
        let (mut nodes, counted, draining) = {
            let reg = self.registry();
            (reg.infos(Instant::now()), reg.counted(), reg.draining())
        };
        let replicas = self.settings.replicas;
        let (shards, under, inodes, left) = self
            .read(move |r| {
                // Copies on draining nodes do not count: during a drain its shards show
                // as under-replicated until repair has copied them.
                let (used, under) = layout::replication_counts(r, replicas, &counted)?;
                let left = drain_left(r, &draining)?;
                Ok((used, under, r.inode_count()?, left))
            })
            .await?;
        for n in &mut nodes {
            if let Some((s, b)) = left.get(&n.id) {
                n.drain_shards_left = *s;
                n.drain_bytes_left = *b;
            }
        }
        Ok(ClusterStatus {
            nodes,
            replicas,
            shard_size: self.settings.shard_size,
            under_replicated: under,
            shards,
            inodes,
            repair: self.repair_status(),
        })
    }

    /// Repair and garbage-collection progress, for `Status`.
    fn repair_status(&self) -> RepairStatus {
        let m = self.maint();
        RepairStatus {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            bytes_left: m.bytes_left,
            repaired: m.repaired,
            collected: m.collected,
        }
    }
}

impl Handler<CoordRequest, CoordResponse> for Coordinator {
    async fn handle(&self, peer: &Peer, req: CoordRequest) -> WireResult<CoordResponse> {
        Coordinator::handle(self, peer, req).await
    }
}

/// Periodically marks silent nodes Down. Checking a few times per timeout keeps the
/// detection delay close to the timeout itself.
async fn down_detector(coord: Arc<Coordinator>) {
    let period =
        (coord.settings.node_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        coord.tick(Instant::now());
    }
}

/// Makes lazily committed namespace changes durable every `SYNC_INTERVAL` (one fsync for
/// however many changes came in meanwhile; nothing when there were none).
async fn sync_loop(coord: Arc<Coordinator>) {
    let mut iv = tokio::time::interval(crate::store::SYNC_INTERVAL);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        if let Err(e) = coord.sync().await {
            warn!("failed to make namespace changes durable: {e}");
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
    let db_path = cfg.data.join("meta.redb");
    let coord = tokio::task::spawn_blocking(move || Coordinator::open(&db_path, cfg.settings))
        .await
        .context("open metadata store")??;
    let tls = dfs_ops::daemon::load_tls(&cfg.certs, &cfg.cert_name)?;
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
    // Maintenance talks to nodes as the coordinator, with its own certificate.
    coord.set_node_sender(Arc::new(RpcNodeSender::new(&tls)?));
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
    let syncer = tokio::spawn(sync_loop(coord.clone()));
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
    syncer.abort();
    if let Err(e) = coord.sync().await {
        warn!("failed to make the last namespace changes durable: {e}");
    }
    // Give clients a moment to receive the close; nothing is lost if they do not.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    info!("coordinator stopped");
    Ok(())
}
