//! The in-process cluster the filesystem-core tests run against: the real coordinator
//! logic (redb in memory) and in-memory storage nodes, no kernel and no network. Shared
//! by `core.rs` (behaviour, one case at a time) and `model.rs` (random operation
//! sequences against a reference model); each test binary uses only part of it.
#![allow(clippy::unwrap_used, dead_code)]

use dfs_coord::{CoordSettings, Coordinator};
use dfs_fuse::backend::Backend;
use dfs_fuse::fs::{Fs, FsConfig};
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{Caller, CoordRequest, CoordResponse};
use dfs_proto::node_msg::{NodeRequest, NodeResponse, NodeStats};
use dfs_proto::rpc::Peer;
use dfs_proto::{NodeId, ShardId, WireError, WireResult, ROOT_INO};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ME: Caller = Caller {
    uid: 1000,
    gid: 1000,
};
pub const MIB: usize = 1 << 20;

/// Coordinator in-process; nodes are hash maps keyed by address.
pub struct Cluster {
    pub coord: Arc<Coordinator>,
    pub nodes: Mutex<HashMap<String, HashMap<ShardId, Vec<u8>>>>,
    pub down: Mutex<HashSet<String>>,
    /// Requests per node address, to check what was (not) fetched.
    pub gets: Mutex<Vec<(String, bool)>>,
    /// Lookup requests the coordinator answered, to check what the mount answered itself.
    pub lookups: AtomicU64,
    /// GetXattr requests the coordinator answered.
    pub xattr_gets: AtomicU64,
    /// Commit requests wait this long first (a coordinator under load).
    pub commit_delay: Mutex<Duration>,
    /// IDs of the shards fetched whole, in order.
    pub whole_gets: Mutex<Vec<ShardId>>,
    /// Per node, the shards a `Sync` made durable: what `power_loss` keeps.
    pub synced: Mutex<HashMap<String, HashSet<ShardId>>>,
    /// Every coordinator request, by name, to count the round trips an operation costs.
    pub requests: Mutex<Vec<&'static str>>,
}

pub fn peer(role: Role) -> Peer {
    Peer {
        addr: "127.0.0.1:1".parse().unwrap(),
        roles: vec![role],
    }
}

impl Cluster {
    pub async fn new(nodes: u64, replicas: u32) -> Arc<Cluster> {
        let coord = Coordinator::open_in_memory(CoordSettings {
            replicas,
            min_copies: replicas,
            ..Default::default()
        })
        .unwrap();
        Cluster::with_coord(coord, nodes).await
    }

    /// Two nodes, R = 2, and garbage collection after `grace` (tests of leases).
    pub async fn with_gc_grace(grace: Duration) -> Arc<Cluster> {
        let coord = Coordinator::open_in_memory(CoordSettings {
            replicas: 2,
            min_copies: 2,
            gc_grace: grace,
            ..Default::default()
        })
        .unwrap();
        Cluster::with_coord(coord, 2).await
    }

    /// Two nodes, R = 2, garbage collection after `grace`, and the coordinator's
    /// maintenance reaching the in-memory nodes (tests of leases against real GC).
    pub async fn with_gc_and_nodes(grace: Duration) -> Arc<Cluster> {
        let settings = CoordSettings {
            replicas: 2,
            min_copies: 2,
            gc_grace: grace,
            ..Default::default()
        };
        // The coordinator is built with its sender, and the sender needs the cluster
        // that holds the coordinator: it keeps a weak reference, filled in once built.
        let c = Arc::new_cyclic(|me: &std::sync::Weak<Cluster>| {
            let sender = Arc::new(MemSender(me.clone()));
            Cluster::bare(Coordinator::open_in_memory_with(settings, sender).unwrap())
        });
        c.register_nodes(2).await;
        c
    }

    fn bare(coord: Arc<Coordinator>) -> Cluster {
        Cluster {
            coord,
            nodes: Mutex::new(HashMap::new()),
            down: Mutex::new(HashSet::new()),
            gets: Mutex::new(Vec::new()),
            lookups: AtomicU64::new(0),
            xattr_gets: AtomicU64::new(0),
            commit_delay: Mutex::new(Duration::ZERO),
            synced: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            whole_gets: Mutex::new(Vec::new()),
        }
    }

    pub async fn with_coord(coord: Arc<Coordinator>, nodes: u64) -> Arc<Cluster> {
        let c = Arc::new(Cluster::bare(coord));
        c.register_nodes(nodes).await;
        c
    }

    async fn register_nodes(self: &Arc<Self>, nodes: u64) {
        let c = self;
        for k in 1..=nodes {
            let addr = format!("mem-{k}");
            c.nodes.lock().unwrap().insert(addr.clone(), HashMap::new());
            let stats = NodeStats {
                capacity: 1 << 40,
                used: 0,
                free: 1 << 40,
                shards: 0,
            };
            c.coord
                .handle(
                    &peer(Role::Node),
                    CoordRequest::Register {
                        node: NodeId(k),
                        addr,
                        stats,
                    },
                )
                .await
                .unwrap();
            c.coord
                .handle(
                    &peer(Role::Node),
                    CoordRequest::Inventory {
                        node: NodeId(k),
                        shards: vec![],
                        first: true,
                        last: true,
                    },
                )
                .await
                .unwrap();
        }
    }

    /// Every node loses the shards no `Sync` covered (nodes that never sync on their
    /// own: the worst case the contract allows for a file closed but not fsynced).
    pub fn power_loss(&self) {
        let synced = self.synced.lock().unwrap();
        for (addr, shards) in self.nodes.lock().unwrap().iter_mut() {
            let keep = synced.get(addr);
            shards.retain(|id, _| keep.is_some_and(|k| k.contains(id)));
        }
    }

    pub fn corrupt_everywhere(&self, id: &ShardId) {
        for shards in self.nodes.lock().unwrap().values_mut() {
            if let Some(d) = shards.get_mut(id) {
                d[0] ^= 1;
            }
        }
    }
}

impl Backend for Cluster {
    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        self.requests.lock().unwrap().push(req.name());
        match req {
            CoordRequest::Lookup { .. } => self.lookups.fetch_add(1, Ordering::SeqCst),
            CoordRequest::GetXattr { .. } => self.xattr_gets.fetch_add(1, Ordering::SeqCst),
            CoordRequest::Commit { .. } => {
                let delay = *self.commit_delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                0
            }
            _ => 0,
        };
        self.coord.handle(&peer(Role::Client), req).await
    }

    async fn node(
        &self,
        addr: &str,
        req: &NodeRequest,
        _deadline: Duration,
    ) -> WireResult<NodeResponse> {
        if self.down.lock().unwrap().contains(addr) {
            return Err(WireError::unavailable(format!("{addr} is down")));
        }
        let mut nodes = self.nodes.lock().unwrap();
        let store = nodes
            .get_mut(addr)
            .ok_or_else(|| WireError::unavailable("no such node"))?;
        match req {
            NodeRequest::Put { id, data } => {
                if !id.matches(data) {
                    return Err(WireError::corrupt("hash mismatch"));
                }
                store.insert(*id, data.to_vec());
                Ok(NodeResponse::Stored)
            }
            NodeRequest::Get { id, range } => {
                self.gets
                    .lock()
                    .unwrap()
                    .push((addr.to_string(), range.is_none()));
                if range.is_none() {
                    self.whole_gets.lock().unwrap().push(*id);
                }
                let d = store
                    .get(id)
                    .ok_or_else(|| WireError::not_found("no shard"))?;
                match range {
                    None => Ok(NodeResponse::Data(d.clone())),
                    Some(r) => {
                        // Like a node's per-block verification: corrupt bytes are refused.
                        if !id.matches(d) {
                            return Err(WireError::corrupt("block checksum mismatch"));
                        }
                        let (o, l) = (r.offset as usize, r.len as usize);
                        d.get(o..o + l)
                            .map(|s| NodeResponse::Data(s.to_vec()))
                            .ok_or_else(|| WireError::invalid("range"))
                    }
                }
            }
            NodeRequest::Delete { id } => store
                .remove(id)
                .map(|_| NodeResponse::Deleted)
                .ok_or_else(|| WireError::not_found("x")),
            NodeRequest::Sync { ids } => {
                let missing: Vec<ShardId> = ids
                    .iter()
                    .filter(|id| !store.contains_key(id))
                    .copied()
                    .collect();
                let mut synced = self.synced.lock().unwrap();
                let done = synced.entry(addr.to_string()).or_default();
                done.extend(ids.iter().filter(|id| store.contains_key(id)));
                Ok(NodeResponse::Synced { missing })
            }
            NodeRequest::Status | NodeRequest::Replicate { .. } => {
                Err(WireError::invalid("not needed"))
            }
        }
    }
}

pub fn fs(c: &Arc<Cluster>) -> Fs<Cluster> {
    Fs::new(
        c.clone(),
        FsConfig {
            cache_bytes: 8 * MIB,
            upload_slots: 4,
            max_dirty: 4 * MIB,
            max_dirty_total: 8 * MIB,
            node_deadline: Duration::from_secs(1),
            holder_wait: Duration::from_millis(300),
            ..FsConfig::default()
        },
    )
}

/// A mount whose lookup cache keeps listings for `ttl`.
pub fn fs_with_ttl(c: &Arc<Cluster>, ttl: Duration) -> Fs<Cluster> {
    Fs::new(
        c.clone(),
        FsConfig {
            lookup_ttl: ttl,
            ..FsConfig::default()
        },
    )
}

/// Pseudo-random bytes (xorshift), so no two shards of a file are identical.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub async fn new_file(fs: &Fs<Cluster>, name: &str) -> (u64, u64) {
    let (a, fh) = fs.create(ROOT_INO, name, 0o644, ME).await.unwrap();
    (a.ino, fh)
}

/// The whole file through `fs`, in 128 KiB reads as `cat` makes them (any backend: the
/// in-memory cluster here, or the real one of `whole/`).
pub async fn read_all<B: Backend>(fs: &Fs<B>, ino: u64) -> Vec<u8> {
    let (fh, _) = fs.open(ino).await.unwrap();
    let mut out = Vec::new();
    loop {
        let d = fs.read(fh, out.len() as u64, 128 * 1024).await.unwrap();
        if d.is_empty() {
            break;
        }
        out.extend_from_slice(&d);
    }
    fs.release(fh, ME).await.unwrap();
    out
}

/// How the coordinator's maintenance reaches the in-memory nodes.
struct MemSender(std::sync::Weak<Cluster>);

impl dfs_coord::NodeSender for MemSender {
    fn send<'a>(&'a self, addr: &'a str, req: NodeRequest) -> dfs_coord::SendFuture<'a> {
        Box::pin(async move {
            match self.0.upgrade() {
                Some(c) => c.node(addr, &req, Duration::from_secs(1)).await,
                None => Err(WireError::unavailable("the test cluster is gone")),
            }
        })
    }
}
