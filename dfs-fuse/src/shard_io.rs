//! Moving shard bytes between this mount and the storage nodes: fetch from any holder
//! (verifying what arrives, failing over to the next holder), and store a new shard on
//! the nodes the coordinator chose, in parallel.
//!
//! Everything these operations need (the backend, the shard cache, the memory of which
//! nodes just failed, the node deadline) is gathered once in a [`ShardIo`], built when the
//! mount starts and shared by every open file, so each call names only what differs: the
//! shard, its holders, the range.

use crate::backend::Backend;
use crate::node_health::NodeHealth;
use crate::shard_cache::ShardCache;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, NodeAddr};
use dfs_proto::node_msg::{ByteRange, NodeRequest, NodeResponse, MAX_SYNC_IDS};
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The mount's access to shard bytes: see the module documentation.
pub struct ShardIo<B> {
    backend: Arc<B>,
    /// Whole verified shards kept for readers (and readahead).
    cache: ShardCache,
    /// Nodes that failed recently, tried last.
    health: NodeHealth,
    /// Deadline of one request to a storage node.
    deadline: Duration,
    /// The coordinator's `min_copies`, as its last placement said (1 until then): how many
    /// holders of a shard a `sync` needs to have made it durable.
    min_copies: AtomicU32,
}

impl<B: Backend> ShardIo<B> {
    /// `cache_bytes` bounds the shard cache; `deadline` is one node request's.
    pub fn new(backend: Arc<B>, cache_bytes: usize, deadline: Duration) -> ShardIo<B> {
        ShardIo {
            backend,
            cache: ShardCache::new(cache_bytes),
            health: NodeHealth::default(),
            deadline,
            min_copies: AtomicU32::new(1),
        }
    }

    /// Makes the given shards durable on their holders (a program's `fsync`): one `Sync`
    /// per node (in pieces of at most `MAX_SYNC_IDS`), all nodes in parallel. Succeeds if
    /// every shard is now durable on `min_copies` of its holders (or on all of them, if it
    /// has fewer); otherwise `Unavailable`, naming the first shard short of copies.
    ///
    /// A holder that does not answer at all (dead, partitioned) lowers what is needed,
    /// but never below one durable copy: the copy it was sent is not lost (a killed
    /// process keeps what it wrote in the page cache), only not known to be on its disk,
    /// and the coordinator's repair restores the copy count once the node is declared
    /// down. Failing the `fsync` instead would make one dead node fail every program that
    /// fsyncs — the case replication exists for. HDFS makes the same choice for a
    /// pipeline of two (`replace-datanode-on-failure` only from three replicas on). A
    /// holder that answers without the shard is a real loss and is not excused.
    pub async fn sync(&self, shards: &[(ShardId, Vec<NodeAddr>)]) -> WireResult<()> {
        let mut per_node: HashMap<String, Vec<ShardId>> = HashMap::new();
        for (id, holders) in shards {
            for h in holders {
                per_node.entry(h.addr.clone()).or_default().push(*id);
            }
        }
        // Owned requests first: futures that borrow from a closure's arguments do not
        // satisfy the spawn's `Send` bounds.
        let mut reqs: Vec<(String, Vec<ShardId>)> = Vec::new();
        for (addr, ids) in per_node {
            for chunk in ids.chunks(MAX_SYNC_IDS) {
                reqs.push((addr.clone(), chunk.to_vec()));
            }
        }
        let (backend, deadline) = (&*self.backend, self.deadline);
        let mut calls = Vec::with_capacity(reqs.len());
        for (addr, ids) in reqs {
            calls.push(async move {
                let req = NodeRequest::Sync { ids: ids.clone() };
                let r = backend.node(&addr, &req, deadline).await;
                (addr, ids, r)
            });
        }
        let mut durable: HashMap<(ShardId, String), bool> = HashMap::new();
        let mut silent: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        for (addr, ids, r) in join_all(calls).await {
            match r {
                Ok(NodeResponse::Synced { missing }) => {
                    for id in ids {
                        durable.insert((id, addr.clone()), !missing.contains(&id));
                    }
                }
                Ok(_) => errors.push(format!("{addr}: unexpected response to Sync")),
                Err(e) => {
                    note_failure(&self.health, &addr, &e);
                    if e.code == ErrorCode::Unavailable {
                        silent.push(addr.clone());
                    }
                    errors.push(format!("{addr}: {e}"));
                }
            }
        }
        let min_copies = self.min_copies.load(Ordering::Relaxed) as usize;
        let mut degraded = 0usize;
        for (id, holders) in shards {
            let answering = holders.iter().filter(|h| !silent.contains(&h.addr)).count();
            let full = min_copies.min(holders.len()).max(1);
            let need = full.min(answering).max(1);
            if need < full {
                degraded += 1;
            }
            let have = holders
                .iter()
                .filter(|h| durable.get(&(*id, h.addr.clone())) == Some(&true))
                .count();
            if have < need {
                return Err(WireError::unavailable(format!(
                    "shard {id}: durable on {have} of the {need} nodes needed ({})",
                    if errors.is_empty() {
                        "the others do not hold it".to_string()
                    } else {
                        errors.join("; ")
                    }
                )));
            }
        }
        if degraded > 0 {
            warn!(
                "fsync: {degraded} shard(s) durable on fewer than {min_copies} nodes because \
                 a holder did not answer ({}); repair restores the copies",
                errors.join("; ")
            );
        }
        Ok(())
    }

    /// True if the whole shard `id` is in the cache right now.
    pub fn is_cached(&self, id: &ShardId) -> bool {
        self.cache.contains(id)
    }

    /// Fetches the whole shard `id` from the first holder that returns bytes matching the
    /// ID, healthy holders first. A holder that is down, slow or returns corrupt bytes costs at
    /// most the node deadline, and is remembered as suspect.
    pub async fn fetch_whole(&self, id: ShardId, holders: &[NodeAddr]) -> WireResult<Arc<Vec<u8>>> {
        self.cache
            .get_or_fetch(id, || self.fetch_verified(id, holders))
            .await
    }

    /// The whole shard `id`, to be patched into a new shard: from the cache if a reader
    /// already has it there, else from the nodes without filling the cache (the shard is
    /// about to be superseded; caching it would only push out shards that readers want).
    pub async fn fetch_for_patch(
        &self,
        id: ShardId,
        holders: &[NodeAddr],
    ) -> WireResult<Arc<Vec<u8>>> {
        if let Some(d) = self.cache.get(&id) {
            return Ok(d);
        }
        self.fetch_verified(id, holders).await.map(Arc::new)
    }

    /// Asks each holder in turn (healthy ones first) for shard `id` and returns the first
    /// copy whose bytes match the ID.
    async fn fetch_verified(&self, id: ShardId, holders: &[NodeAddr]) -> WireResult<Vec<u8>> {
        let (backend, health, deadline) = (&*self.backend, &self.health, self.deadline);
        let mut errors = Vec::new();
        for h in health.order(holders) {
            let req = NodeRequest::Get { id, range: None };
            match backend.node(&h.addr, &req, deadline).await {
                Ok(NodeResponse::Data(d)) => {
                    // Never trust the wire: the ID is the checksum.
                    let (got, d) = match hash_off_worker(d).await {
                        Ok(v) => v,
                        Err((e, _)) => {
                            errors.push(format!("{}: {e}", h.addr));
                            continue;
                        }
                    };
                    if got == id {
                        health.ok(&h.addr);
                        return Ok(d);
                    }
                    warn!(shard = %id, node = %h.id, addr = %h.addr, "shard failed verification; trying next holder");
                    errors.push(format!("{}: corrupt", h.addr));
                }
                Ok(_) => errors.push(format!("{}: unexpected response", h.addr)),
                Err(e) => {
                    note_failure(health, &h.addr, &e);
                    errors.push(format!("{}: {e}", h.addr));
                }
            }
        }
        Err(no_holder(id, holders.len(), &errors))
    }

    /// Fetches `range` of shard `id`. The node verifies the range against the shard's
    /// per-block checksums and refuses to serve bytes that fail; we fail over on any error.
    pub async fn fetch_range(
        &self,
        id: ShardId,
        range: ByteRange,
        holders: &[NodeAddr],
    ) -> WireResult<Vec<u8>> {
        let (backend, health, deadline) = (&*self.backend, &self.health, self.deadline);
        let mut errors = Vec::new();
        for h in health.order(holders) {
            let req = NodeRequest::Get {
                id,
                range: Some(range),
            };
            match backend.node(&h.addr, &req, deadline).await {
                Ok(NodeResponse::Data(d)) if d.len() == range.len as usize => {
                    health.ok(&h.addr);
                    return Ok(d);
                }
                Ok(NodeResponse::Data(d)) => {
                    errors.push(format!("{}: short read of {} bytes", h.addr, d.len()))
                }
                Ok(_) => errors.push(format!("{}: unexpected response", h.addr)),
                Err(e) => {
                    note_failure(health, &h.addr, &e);
                    errors.push(format!("{}: {e}", h.addr));
                }
            }
        }
        Err(no_holder(id, holders.len(), &errors))
    }

    /// Stores `data` as a shard: asks the coordinator where, then PUTs to every target in
    /// parallel. Succeeds once at least the coordinator's `min_copies` are durable. A target
    /// that fails (dies mid-transfer, times out) is replaced: the coordinator is asked again,
    /// and suspect nodes are skipped. On failure the bytes come back with the error, so the
    /// caller can keep them and retry: a failed upload must never be the reason data is lost.
    pub async fn store(&self, data: Vec<u8>) -> Result<Stored, (WireError, Vec<u8>)> {
        let (id, data) = hash_off_worker(data).await?;
        // As `Bytes`, the shard is sent to every target from this one buffer (see
        // `Remote::node`): no copy per target.
        let req = NodeRequest::Put {
            id,
            data: data.into(),
        };
        match self.store_inner(id, &req).await {
            Ok(s) => Ok(s),
            Err(e) => {
                // Every send has finished, so this is the buffer's last reference and
                // turning it back into a Vec copies nothing.
                let data = match req {
                    NodeRequest::Put { data, .. } => Vec::from(data),
                    _ => Vec::new(),
                };
                Err((e, data))
            }
        }
    }

    async fn store_inner(&self, id: ShardId, req: &NodeRequest) -> WireResult<Stored> {
        let (backend, health, deadline) = (&*self.backend, &self.health, self.deadline);
        let len = match req {
            NodeRequest::Put { data, .. } => data.len(),
            _ => 0,
        };
        let len = u32::try_from(len).map_err(|_| WireError::invalid("shard too large"))?;
        let mut stored_on: Vec<NodeId> = Vec::new();
        let mut holders: Vec<NodeAddr> = Vec::new();
        let mut errors = Vec::new();
        let mut all_no_space = true;
        let mut min_copies = 1;
        for attempt in 0..PLACE_ATTEMPTS {
            let placement = match backend
                .meta(CoordRequest::Place {
                    shards: vec![(id, len)],
                })
                .await?
            {
                CoordResponse::Placements(mut p) if p.len() == 1 => p.remove(0),
                _ => return Err(WireError::unexpected("Place")),
            };
            min_copies = placement.min_copies;
            self.min_copies.store(min_copies, Ordering::Relaxed);
            for h in placement.holders {
                if !holders.iter().any(|x| x.id == h.id) {
                    holders.push(h);
                }
            }
            // New targets only (not already holding it). Suspect nodes are skipped while
            // enough others remain; when they are all that is left, they get another try.
            let fresh: Vec<NodeAddr> = placement
                .targets
                .into_iter()
                .filter(|t| !holders.iter().any(|h| h.id == t.id))
                .collect();
            let needed = (min_copies as usize).saturating_sub(holders.len());
            let (good, suspect): (Vec<NodeAddr>, Vec<NodeAddr>) =
                fresh.into_iter().partition(|t| !health.is_suspect(&t.addr));
            let targets: Vec<NodeAddr> = if good.len() >= needed {
                good
            } else {
                good.into_iter().chain(suspect).collect()
            };
            let puts = targets
                .iter()
                .map(|t| async move { (t, backend.node(&t.addr, req, deadline).await) });
            for (t, r) in join_all(puts).await {
                match r {
                    Ok(NodeResponse::Stored) => {
                        health.ok(&t.addr);
                        stored_on.push(t.id);
                        holders.push(t.clone());
                    }
                    Ok(_) => errors.push(format!("{}: unexpected response", t.addr)),
                    Err(e) => {
                        note_failure(health, &t.addr, &e);
                        all_no_space &= e.code == ErrorCode::NoSpace;
                        errors.push(format!("{}: {e}", t.addr));
                    }
                }
            }
            if holders.len() as u32 >= min_copies {
                if !errors.is_empty() {
                    warn!(shard = %id, "stored after replacing failed targets: {}", errors.join("; "));
                }
                return Ok(Stored {
                    id,
                    len,
                    stored_on,
                    holders,
                });
            }
            if all_no_space && !errors.is_empty() {
                break;
            }
            // Let the coordinator's round-robin move on (and a dead node be marked down).
            tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
        }
        let code = if all_no_space && !errors.is_empty() {
            ErrorCode::NoSpace
        } else {
            ErrorCode::Unavailable
        };
        Err(WireError::new(
            code,
            format!(
                "shard {id}: only {} of {} required copies stored ({})",
                holders.len(),
                min_copies,
                errors.join("; ")
            ),
        ))
    }
}

/// A node that did not answer is suspect; one that answered with an error about the
/// request itself (not found, corrupt copy, no space) is alive and stays trusted.
fn note_failure(health: &NodeHealth, addr: &str, e: &WireError) {
    if e.code == ErrorCode::Unavailable {
        health.failed(addr);
    }
}

fn no_holder(id: ShardId, n: usize, errors: &[String]) -> WireError {
    if n == 0 {
        return WireError::unavailable(format!("shard {id}: no live node holds it"));
    }
    WireError::unavailable(format!(
        "shard {id}: none of its {n} holders could serve it ({})",
        errors.join("; ")
    ))
}

/// A shard stored on the cluster, ready to be committed into a file's layout.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: ShardId,
    pub len: u32,
    /// Nodes that acknowledged this write.
    pub stored_on: Vec<NodeId>,
    /// Every node known to hold it (for reading it back before the commit).
    pub holders: Vec<NodeAddr>,
}

/// Shards up to this size are hashed on the async worker (see [`hash_off_worker`]).
const INLINE_HASH_MAX: usize = 64 * 1024;

/// How many times `store` asks the coordinator for new targets after some failed.
const PLACE_ATTEMPTS: u32 = 6;

/// Runs futures concurrently on this task and returns their outputs in order.
/// (A few lines instead of a dependency on the `futures` crate.)
pub async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Names a shard (SHA-256 of its bytes) on tokio's blocking pool, giving the bytes back:
/// for the shards the mount stores and for verifying those it fetches.
///
/// Why not inline: hashing 1 MiB takes about half a millisecond, and the mount has one
/// async worker (`dfs_ops::daemon::runtime`), which meanwhile would send and receive
/// nothing. Measured (fresh 256 MiB files, 4 runs each, 2026-12-07): cold sequential
/// reads 247 MB/s with the hash of each fetched shard on the worker, 269.5 off it. The
/// bytes stay shared with this function, so a hashing task that never ran (the runtime
/// stopping) cannot take them with it: a failed upload must always give its bytes back.
///
/// A small shard (at most [`INLINE_HASH_MAX`]) is hashed right here instead: 64 KiB
/// take about 30 µs, less than the two thread wake-ups a trip to the pool costs on a
/// small virtualised machine (where each was measured at well over 100 µs under load).
async fn hash_off_worker(data: Vec<u8>) -> Result<(ShardId, Vec<u8>), (WireError, Vec<u8>)> {
    if data.len() <= INLINE_HASH_MAX {
        return Ok((ShardId::of(&data), data));
    }
    let shared = Arc::new(data);
    let for_task = shared.clone();
    let hashed = tokio::task::spawn_blocking(move || ShardId::of(&for_task)).await;
    // The task is over (or was never run): its clone is gone, so this is the only one.
    let data = Arc::try_unwrap(shared).unwrap_or_else(|still_shared| (*still_shared).clone());
    match hashed {
        Ok(id) => Ok((id, data)),
        Err(e) => Err((
            WireError::internal(format!("hashing task failed: {e}")),
            data,
        )),
    }
}
