//! The uploads of one open file: shards being stored in the background, and shards
//! stored but not committed yet (leased at the coordinator until the commit, see
//! `lease.rs`).
//!
//! An upload takes a dirty buffer away from the file (`file.rs` decides when: a full
//! shard, a file or mount over its dirty budget, a commit). It runs on its own tokio task,
//! so the writer goes on buffering while the network works; a mount-wide semaphore of
//! upload slots bounds how many run at once, and so the memory they hold. Its result is
//! filed by the file when it next looks (`FileState::settle`, `reap_finished`, `commit`):
//! a stored shard joins `stored`; a failure gives its bytes back, so nothing is lost.

use crate::dirty::DirtyShard;
use crate::file::{Ctx, Source};
use crate::lease::{Lease, Leases};
use crate::shard_io::Stored;
use dfs_proto::WireError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinError, JoinHandle};

/// An upload's outcome; on failure, the buffer comes back so its bytes are not lost.
pub type UploadResult = Result<Stored, (WireError, DirtyShard)>;

/// An upload's outcome as its task ends (a task that panicked gives a `JoinError`).
pub type Finished = Result<UploadResult, JoinError>;

/// See the module documentation.
pub struct Uploads {
    /// Uploads running, with the length of the shard each is storing.
    inflight: BTreeMap<u64, (JoinHandle<UploadResult>, usize)>,
    /// Stored and not committed, by shard index.
    stored: BTreeMap<u64, Stored>,
    /// Where `stored`'s IDs are published for the lease renewal.
    lease: Lease,
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads {
            inflight: BTreeMap::new(),
            stored: BTreeMap::new(),
            lease: Lease::detached(),
        }
    }
}

impl Uploads {
    /// Publishes this file's uncommitted shards in the mount's `leases` from now on.
    pub fn attach_leases(&mut self, leases: Arc<Leases>) {
        self.lease = Lease::new(leases);
        self.publish();
    }

    /// Called whenever `stored` changes.
    fn publish(&self) {
        self.lease
            .publish(self.stored.values().map(|s| s.id).collect());
    }

    /// True if nothing is uploading and nothing is stored uncommitted.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty() && self.stored.is_empty()
    }

    /// True if nothing is stored uncommitted.
    pub fn nothing_stored(&self) -> bool {
        self.stored.is_empty()
    }

    /// The uncommitted shard stored for index `idx`, if any.
    pub fn stored(&self, idx: u64) -> Option<&Stored> {
        self.stored.get(&idx)
    }

    /// The length of the shard an upload of index `idx` is storing, if one is running.
    pub fn inflight_len(&self, idx: u64) -> Option<usize> {
        self.inflight.get(&idx).map(|(_, len)| *len)
    }

    /// Records a shard stored for index `idx` (replacing any earlier one).
    pub fn record(&mut self, idx: u64, stored: Stored) {
        self.stored.insert(idx, stored);
        self.publish();
    }

    /// Every stored shard, for the commit that references them (their lease ends here:
    /// once committed, the file's layout protects them).
    pub fn take_stored(&mut self) -> BTreeMap<u64, Stored> {
        let s = std::mem::take(&mut self.stored);
        self.publish();
        s
    }

    /// The stored shards as they are, for the commit request.
    pub fn stored_shards(&self) -> impl Iterator<Item = (u64, &Stored)> {
        self.stored.iter().map(|(&i, s)| (i, s))
    }

    /// Starts storing `data` as shard `idx` in the background; `base` is the stored shard
    /// a sparse buffer patches. Waits for an upload slot first: this is the back-pressure
    /// that bounds a writer's memory.
    pub async fn start<B: crate::backend::Backend>(
        &mut self,
        ctx: &Ctx<B>,
        idx: u64,
        data: DirtyShard,
        base: Option<Source>,
    ) {
        let len = data.len();
        let permit: Option<OwnedSemaphorePermit> =
            ctx.upload_slots.clone().acquire_owned().await.ok();
        let ctx = ctx.clone();
        let task = tokio::spawn(async move {
            let r = upload(&ctx, data, base).await;
            drop(permit);
            r
        });
        self.inflight.insert(idx, (task, len));
    }

    /// Waits for the upload of shard `idx`, if one is running.
    pub async fn wait(&mut self, idx: u64) -> Option<Finished> {
        let (task, _) = self.inflight.remove(&idx)?;
        Some(task.await)
    }

    /// Every running upload, to be waited for in index order (a commit).
    pub fn take_inflight(&mut self) -> Vec<(u64, JoinHandle<UploadResult>)> {
        std::mem::take(&mut self.inflight)
            .into_iter()
            .map(|(i, (t, _))| (i, t))
            .collect()
    }

    /// The uploads that have finished, without waiting for the others.
    pub fn finished(&mut self) -> Vec<(u64, Finished)> {
        let done: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, (t, _))| t.is_finished())
            .map(|(&i, _)| i)
            .collect();
        let mut out = Vec::new();
        for idx in done {
            if let Some((task, len)) = self.inflight.remove(&idx) {
                match try_join(task) {
                    Ok(r) => out.push((idx, r)),
                    Err(task) => {
                        self.inflight.insert(idx, (task, len));
                    }
                }
            }
        }
        out
    }
}

/// Stores one dirty buffer as a shard. A sparse buffer is first completed: the stored
/// shard it patches (`base`) is fetched once, verified, and the patches laid over it.
/// This is the read-modify-write that immutable, content-addressed shards require; it
/// runs here, in the background, instead of in `write()`.
async fn upload<B: crate::backend::Backend>(
    ctx: &Ctx<B>,
    data: DirtyShard,
    base: Option<Source>,
) -> UploadResult {
    let data = match data {
        DirtyShard::Full(d) => d,
        DirtyShard::Sparse(sp) => {
            let fetched = match &base {
                None if sp.needs_base(0, sp.len()) => Err(WireError::internal(
                    "a sparse shard buffer has no stored base to patch",
                )),
                None => Ok(None),
                Some(src) => ctx.io.fetch_for_patch(src.id, &src.holders).await.map(Some),
            };
            match fetched {
                Ok(Some(b)) if b.len() < sp.valid() => {
                    let e = WireError::corrupt("stored shard shorter than its layout says");
                    return Err((e, DirtyShard::Sparse(sp)));
                }
                Ok(b) => sp.merge(b.as_deref().map_or(&[], |v| v.as_slice())),
                Err(e) => return Err((e, DirtyShard::Sparse(sp))),
            }
        }
    };
    ctx.io
        .store(data)
        .await
        .map_err(|(e, d)| (e, DirtyShard::Full(d)))
}

/// The output of a task if it has finished (`now_or_never` without the futures crate:
/// poll once with a no-op waker); the task back if it has not.
fn try_join<T>(mut task: JoinHandle<T>) -> Result<Result<T, JoinError>, JoinHandle<T>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(&mut task).poll(&mut cx) {
        std::task::Poll::Ready(r) => Ok(r),
        std::task::Poll::Pending => Err(task),
    }
}
