//! Moving shard bytes between this mount and the storage nodes: fetch from any holder
//! (verifying what arrives, failing over to the next holder), and store a new shard on
//! the nodes the coordinator chose, in parallel.

use crate::backend::Backend;
use crate::shard_cache::ShardCache;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, NodeAddr};
use dfs_proto::node_msg::{ByteRange, NodeRequest, NodeResponse};
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Fetches the whole shard `id` from the first holder that returns bytes matching the
/// ID. A holder that is down, slow or returns corrupt bytes costs at most `deadline`.
pub async fn fetch_whole<B: Backend>(
    backend: &B,
    cache: &ShardCache,
    id: ShardId,
    holders: &[NodeAddr],
    deadline: Duration,
) -> WireResult<Arc<Vec<u8>>> {
    cache
        .get_or_fetch(id, || async move {
            let mut errors = Vec::new();
            for h in holders {
                let req = NodeRequest::Get { id, range: None };
                match backend.node(&h.addr, &req, deadline).await {
                    Ok(NodeResponse::Data(d)) => {
                        // Never trust the wire: the ID is the checksum.
                        if id.matches(&d) {
                            return Ok(d);
                        }
                        warn!(shard = %id, node = %h.id, addr = %h.addr, "shard failed verification; trying next holder");
                        errors.push(format!("{}: corrupt", h.addr));
                    }
                    Ok(_) => errors.push(format!("{}: unexpected response", h.addr)),
                    Err(e) => errors.push(format!("{}: {e}", h.addr)),
                }
            }
            Err(no_holder(id, holders.len(), &errors))
        })
        .await
}

/// Fetches `range` of shard `id`. The node verifies the range against the shard's
/// per-block checksums and refuses to serve bytes that fail; we fail over on any error.
pub async fn fetch_range<B: Backend>(
    backend: &B,
    id: ShardId,
    range: ByteRange,
    holders: &[NodeAddr],
    deadline: Duration,
) -> WireResult<Vec<u8>> {
    let mut errors = Vec::new();
    for h in holders {
        let req = NodeRequest::Get {
            id,
            range: Some(range),
        };
        match backend.node(&h.addr, &req, deadline).await {
            Ok(NodeResponse::Data(d)) if d.len() == range.len as usize => return Ok(d),
            Ok(NodeResponse::Data(d)) => {
                errors.push(format!("{}: short read of {} bytes", h.addr, d.len()))
            }
            Ok(_) => errors.push(format!("{}: unexpected response", h.addr)),
            Err(e) => errors.push(format!("{}: {e}", h.addr)),
        }
    }
    Err(no_holder(id, holders.len(), &errors))
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

/// Stores `data` as a shard: asks the coordinator where, then PUTs to every target in
/// parallel. Succeeds once at least the coordinator's `min_copies` are durable. On failure
/// the bytes come back with the error, so the caller can keep them and retry: a failed
/// upload must never be the reason data is lost.
pub async fn store<B: Backend>(
    backend: &B,
    data: Vec<u8>,
    deadline: Duration,
) -> Result<Stored, (WireError, Vec<u8>)> {
    let id = ShardId::of(&data);
    let req = Arc::new(NodeRequest::Put { id, data });
    match store_inner(backend, id, &req, deadline).await {
        Ok(s) => Ok(s),
        Err(e) => {
            let data = match Arc::try_unwrap(req) {
                Ok(NodeRequest::Put { data, .. }) => data,
                Ok(_) => Vec::new(),
                Err(arc) => match &*arc {
                    NodeRequest::Put { data, .. } => data.clone(),
                    _ => Vec::new(),
                },
            };
            Err((e, data))
        }
    }
}

async fn store_inner<B: Backend>(
    backend: &B,
    id: ShardId,
    req: &Arc<NodeRequest>,
    deadline: Duration,
) -> WireResult<Stored> {
    let len = match &**req {
        NodeRequest::Put { data, .. } => data.len(),
        _ => 0,
    };
    let len = u32::try_from(len).map_err(|_| WireError::invalid("shard too large"))?;
    let placement = match backend
        .meta(CoordRequest::Place {
            shards: vec![(id, len)],
        })
        .await?
    {
        CoordResponse::Placements(mut p) if p.len() == 1 => p.remove(0),
        _ => return Err(WireError::unexpected("Place")),
    };
    let puts = placement.targets.iter().map(|t| {
        let req = req.clone();
        async move { (t, backend.node(&t.addr, &req, deadline).await) }
    });
    let results = join_all(puts).await;
    let mut holders = placement.holders.clone();
    let mut stored_on = Vec::new();
    let mut errors = Vec::new();
    let mut all_no_space = true;
    for (t, r) in results {
        match r {
            Ok(NodeResponse::Stored) => {
                stored_on.push(t.id);
                holders.push(t.clone());
            }
            Ok(_) => errors.push(format!("{}: unexpected response", t.addr)),
            Err(e) => {
                all_no_space &= e.code == ErrorCode::NoSpace;
                errors.push(format!("{}: {e}", t.addr));
            }
        }
    }
    if (holders.len() as u32) < placement.min_copies {
        let code = if all_no_space && !errors.is_empty() {
            ErrorCode::NoSpace
        } else {
            ErrorCode::Unavailable
        };
        return Err(WireError::new(
            code,
            format!(
                "shard {id}: only {} of {} required copies stored ({})",
                holders.len(),
                placement.min_copies,
                errors.join("; ")
            ),
        ));
    }
    if !errors.is_empty() {
        warn!(shard = %id, "stored with fewer copies than planned: {}", errors.join("; "));
    }
    Ok(Stored {
        id,
        len,
        stored_on,
        holders,
    })
}

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
