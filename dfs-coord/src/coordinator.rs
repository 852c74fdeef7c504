//! The coordinator: its parts wired together at construction, and the dispatch that
//! serves every request with one call.
//!
//! Layers, bottom up (each uses only those below it; `tests/module_graph.rs` checks that
//! no two modules reach each other):
//! - the store (`store.rs`, redb tables) and its async handle [`Meta`] (`meta.rs`);
//! - the domain: pure functions and small types over the tables or in memory —
//!   `namespace.rs`, `layout.rs`, `xattr.rs`, `placement.rs`, `registry.rs`, `maint.rs`
//!   (the lease and maintenance bookkeeping), `events.rs`;
//! - services, each built here from only the handles it needs: [`Files`] (layouts,
//!   placement, leases, commit), [`Nodes`] (registration, heartbeats, inventories),
//!   [`Health`] (status, statfs), [`Fsck`], [`Decommission`], and [`Maintenance`] (a pass
//!   of [`Repair`] and [`Gc`], which reach the nodes through the `NodeSender` given here);
//! - this file, which owns the services and maps each request to one of them;
//! - the daemon (`daemon.rs`: `run`, the background loops) and its HTTP endpoints
//!   (`metrics.rs`, `view.rs`), which see the coordinator only through [`Observed`].

use crate::access;
use crate::clock::now_ns;
use crate::config::CoordSettings;
use crate::decommission::Decommission;
use crate::events::Events;
use crate::files::Files;
use crate::fsck::Fsck;
use crate::gc::Gc;
use crate::health::Health;
use crate::maint::Maint;
use crate::maintenance::Maintenance;
use crate::meta::Meta;
use crate::nodes::Nodes;
use crate::observe::Observed;
use crate::registry::Registry;
use crate::repair::Repair;
use crate::sender::NodeSender;
use crate::shared::Shared;
use crate::store::{Reader, Store, StoredSettings};
use crate::{namespace, xattr};
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, Removal, MAX_REMOVE_BATCH};
use dfs_proto::rpc::{Handler, Peer};
use dfs_proto::{ErrorCode, WireError, WireResult};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

/// The coordinator: namespace, layouts and node registry. Share it with `Arc`.
pub struct Coordinator {
    settings: CoordSettings,
    meta: Meta,
    /// Recent state changes, for the cluster view (`events.rs`); the registry and the
    /// services record into the same buffer.
    events: Arc<Events>,
    files: Files,
    nodes: Nodes,
    health: Health,
    fsck: Fsck,
    decommission: Decommission,
    maintenance: Maintenance,
}

impl Coordinator {
    /// Opens (or creates) the metadata store at `path`. Maintenance has no way to reach
    /// nodes: it only keeps its bookkeeping (see [`Coordinator::open_with`]).
    pub fn open(path: &Path, settings: CoordSettings) -> anyhow::Result<Arc<Coordinator>> {
        Coordinator::build(Store::open(path, settings.durable_close)?, settings, None)
    }

    /// Opens the store at `path`; maintenance reaches the nodes through `sender` (the
    /// daemon passes an `RpcNodeSender`, tests a fake).
    pub fn open_with(
        path: &Path,
        settings: CoordSettings,
        sender: Arc<dyn NodeSender>,
    ) -> anyhow::Result<Arc<Coordinator>> {
        Coordinator::build(
            Store::open(path, settings.durable_close)?,
            settings,
            Some(sender),
        )
    }

    /// A coordinator whose metadata lives in memory only, for tests.
    pub fn open_in_memory(settings: CoordSettings) -> anyhow::Result<Arc<Coordinator>> {
        Coordinator::build(Store::in_memory()?, settings, None)
    }

    /// In memory, with maintenance reaching the nodes through `sender`.
    pub fn open_in_memory_with(
        settings: CoordSettings,
        sender: Arc<dyn NodeSender>,
    ) -> anyhow::Result<Arc<Coordinator>> {
        Coordinator::build(Store::in_memory()?, settings, Some(sender))
    }

    /// Wires the parts together: every service gets its handles here, once.
    fn build(
        store: Store,
        settings: CoordSettings,
        sender: Option<Arc<dyn NodeSender>>,
    ) -> anyhow::Result<Arc<Coordinator>> {
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
        let registry = Shared::new(registry);
        let maint = Shared::new(Maint::default());
        let meta = Meta::new(store);
        let in_flight = Arc::new(AtomicU64::new(0));
        let (m, s, r, mt, e) = (&meta, settings, &registry, &maint, &events);
        Ok(Arc::new(Coordinator {
            files: Files::new(m.clone(), s, r.clone(), mt.clone()),
            nodes: Nodes::new(m.clone(), s, r.clone(), mt.clone()),
            health: Health::new(m.clone(), s, r.clone(), mt.clone(), in_flight.clone()),
            fsck: Fsck::new(m.clone(), s, r.clone(), mt.clone(), e.clone()),
            decommission: Decommission::new(m.clone(), r.clone(), e.clone()),
            maintenance: Maintenance::new(
                m.clone(),
                Repair::new(m.clone(), s, r.clone(), mt.clone(), e.clone(), in_flight),
                Gc::new(m.clone(), s, r.clone(), mt.clone(), e.clone()),
                sender,
            ),
            settings,
            meta,
            events,
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

    /// Marks Down the nodes that have been silent longer than the node timeout. The
    /// daemon calls this periodically; tests call it with a chosen `now`.
    pub fn tick(&self, now: Instant) {
        self.nodes.tick(now);
    }

    /// One maintenance pass at `now` (see `maintenance.rs`). The daemon calls it every
    /// `maintenance_interval`; tests call it with chosen instants.
    pub async fn maintain_once(&self, now: Instant) -> WireResult<()> {
        self.maintenance.once(now).await
    }

    /// Checkpoints the metadata store if one is due (`Store::checkpoint_if_due`); `now`
    /// forces one (at shutdown).
    pub(crate) async fn checkpoint(&self, now: bool) -> WireResult<()> {
        self.meta.checkpoint(now).await
    }

    /// Serves one request.
    pub async fn handle(&self, peer: &Peer, req: CoordRequest) -> WireResult<CoordResponse> {
        // Authorization before any work: see access.rs for who may send what.
        if let Err(e) = dfs_proto::access::check(peer, access::rule(&req)) {
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

    /// `RemoveBatch`: each removal is a transaction of its own, so one that fails (a name
    /// already gone, a directory not empty) leaves the others as they would be had they
    /// come one by one, which is what the mount promised when it acknowledged them. The
    /// batch saves round trips, not log records.
    async fn remove_batch(&self, ops: Vec<Removal>) -> WireResult<Vec<WireResult<()>>> {
        if ops.len() > MAX_REMOVE_BATCH {
            return Err(WireError::invalid(format!(
                "{} removals in one batch (most {MAX_REMOVE_BATCH})",
                ops.len()
            )));
        }
        let mut out = Vec::with_capacity(ops.len());
        for Removal { parent, name, dir } in ops {
            let r = if dir {
                self.meta
                    .write(move |t| namespace::rmdir(t, parent, &name, now_ns()))
                    .await
            } else {
                self.meta
                    .write(move |t| namespace::unlink(t, parent, &name, false, now_ns()))
                    .await
            };
            out.push(r);
        }
        Ok(out)
    }

    async fn dispatch(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        use CoordRequest as Q;
        use CoordResponse as R;
        let ss = self.settings.shard_size;
        match req {
            Q::Lookup { parent, name } => self
                .meta
                .read(move |r| namespace::lookup(r, parent, &name))
                .await
                .map(R::Attr),
            Q::GetAttr { ino } => self
                .meta
                .read(move |r| namespace::getattr(r, ino))
                .await
                .map(R::Attr),
            Q::SetAttr {
                ino,
                caller: _,
                set,
            } => self
                .meta
                .write(move |t| namespace::setattr(t, ino, &set, ss, now_ns()))
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
                .meta
                .write(move |t| {
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
                .meta
                .write(move |t| namespace::symlink(t, parent, &name, &target, caller, now_ns()))
                .await
                .map(R::Attr),
            Q::Readlink { ino } => self
                .meta
                .read(move |r| namespace::readlink(r, ino))
                .await
                .map(R::Target),
            Q::Link {
                ino,
                new_parent,
                new_name,
            } => self
                .meta
                .write(move |t| namespace::link(t, ino, new_parent, &new_name, now_ns()))
                .await
                .map(R::Attr),
            Q::Unlink { parent, name, keep } => self
                .meta
                .write(move |t| namespace::unlink(t, parent, &name, keep, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::Rmdir { parent, name } => self
                .meta
                .write(move |t| namespace::rmdir(t, parent, &name, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::RemoveBatch { ops } => self.remove_batch(ops).await.map(R::Results),
            Q::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            } => self
                .meta
                .write(move |t| {
                    namespace::rename(t, parent, &name, new_parent, &new_name, flags, now_ns())
                })
                .await
                .map(|()| R::Unit),
            Q::ReadDir { ino, after, limit } => self
                .meta
                .read(move |r| namespace::readdir(r, ino, after.as_deref(), limit))
                .await
                .map(R::Dir),
            Q::Release { ino } => self
                .meta
                .write(move |t| namespace::release(t, ino))
                .await
                .map(|()| R::Unit),
            Q::SetXattr {
                ino,
                name,
                value,
                mode,
            } => self
                .meta
                .write(move |t| xattr::set(t, ino, &name, &value, mode, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::GetXattr { ino, name } => self
                .meta
                .read(move |r| xattr::get(r, ino, &name))
                .await
                .map(R::Bytes),
            Q::ListXattr { ino } => self
                .meta
                .read(move |r| xattr::list(r, ino))
                .await
                .map(R::Names),
            Q::RemoveXattr { ino, name } => self
                .meta
                .write(move |t| xattr::remove(t, ino, &name, now_ns()))
                .await
                .map(|()| R::Unit),
            Q::StatFs => self.health.statfs().await.map(R::FsStats),
            Q::Sync => self.meta.sync().await.map(|()| R::Unit),
            Q::GetLayout { ino, from, limit } => {
                self.files.get_layout(ino, from, limit).await.map(R::Layout)
            }
            Q::Place { shards } => self.files.place(shards).await.map(R::Placements),
            Q::Touch { shards, open } => {
                self.files.touch(shards, open);
                Ok(R::Unit)
            }
            Q::Commit {
                ino,
                size,
                mtime,
                shards,
                caller,
                set,
            } => self
                .files
                .commit(ino, size, mtime, shards, caller, set)
                .await
                .map(R::Attr),
            Q::Register { node, addr, stats } => self
                .nodes
                .register(node, addr, stats)
                .await
                .map(|heartbeat_ms| R::Registered { heartbeat_ms }),
            Q::Inventory {
                node,
                shards,
                first,
                last,
            } => self
                .nodes
                .inventory(node, shards, first, last)
                .await
                .map(|()| R::Unit),
            Q::Heartbeat { node, stats } => self.nodes.heartbeat(node, stats).map(|()| R::Unit),
            Q::Status => self.health.status().await.map(R::Status),
            Q::ReportCorrupt { node, id } => {
                self.fsck.report_corrupt(node, id).await.map(|()| R::Unit)
            }
            Q::Fsck => self.fsck.fsck().await.map(R::Fsck),
            Q::Locate { shards } => self.decommission.locate(shards).await.map(R::Locations),
            Q::DrainNode { node } => self.decommission.drain_node(node).await.map(|()| R::Unit),
            Q::RemoveNode { node, force } => {
                self.decommission
                    .remove_node(node, force)
                    .await
                    .map(|r| R::Removed {
                        locations: r.locations,
                        only_copies: r.only_copies,
                    })
            }
        }
    }
}

impl Handler<CoordRequest, CoordResponse> for Coordinator {
    async fn handle(&self, peer: &Peer, req: CoordRequest) -> WireResult<CoordResponse> {
        Coordinator::handle(self, peer, req).await
    }
}

impl Observed for Coordinator {
    async fn ask(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        // A local administrator: the access table (`access.rs`) still applies.
        let peer = Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            roles: vec![Role::Admin],
        };
        self.handle(&peer, req).await
    }

    fn events(&self) -> &Events {
        &self.events
    }
}
