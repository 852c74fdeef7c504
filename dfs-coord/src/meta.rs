//! [`Meta`]: the async face of the metadata store, the handle every service is given.
//!
//! Two ways to run a transaction, chosen by its size:
//! - [`Meta::write`] and [`Meta::read`] run it right here, on the async worker: what a
//!   client request does (a lookup, a create, a commit) touches a few table entries and
//!   takes tens of microseconds, less than handing it to another thread and being woken
//!   when it is done (a thread hop each way was a fifth of a metadata round trip's cost).
//!   The log append of a write is a `write()` to the page cache, never an fsync.
//! - [`Meta::write_bg`] and [`Meta::read_bg`] run it on tokio's blocking pool: scans and
//!   batches of the maintenance loop (inventory, repair, GC, fsck, status counts) that can
//!   take milliseconds, during which the worker keeps serving requests.
//!
//! A request's write may still wait for redb's one write lock while a background batch
//! or a checkpoint holds it: a pause of a few milliseconds for requests, never an error.
//! Reads run on a redb read transaction (a snapshot, never blocked by writers).

use crate::store::{ReadTables, Store, Tables};
use dfs_proto::{WireError, WireResult};
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct Meta {
    store: Arc<Store>,
}

fn task_failed(e: tokio::task::JoinError) -> WireError {
    WireError::internal(format!("metadata task failed: {e}"))
}

impl Meta {
    pub fn new(store: Store) -> Meta {
        Meta {
            store: Arc::new(store),
        }
    }

    /// Runs `f` in a write transaction, on this thread (`Store::write`): for the short
    /// transactions of client requests.
    pub async fn write<T>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T>,
    ) -> WireResult<T> {
        self.store.write(f)
    }

    /// Runs `f` on a read snapshot, on this thread: for the short reads of client requests.
    pub async fn read<T>(&self, f: impl FnOnce(&ReadTables) -> WireResult<T>) -> WireResult<T> {
        self.store.read(f)
    }

    /// Runs `f` in a write transaction on the blocking pool: for batches that may take
    /// milliseconds.
    pub async fn write_bg<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(task_failed)?
    }

    /// Makes every change so far durable (`Store::sync`).
    pub async fn sync(&self) -> WireResult<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(task_failed)?
    }

    /// A checkpoint of the store: if one is due, or at once with `now`.
    pub async fn checkpoint(&self, now: bool) -> WireResult<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            if now {
                store.checkpoint()
            } else {
                store.checkpoint_if_due()
            }
        })
        .await
        .map_err(task_failed)?
    }

    /// Runs `f` on a read snapshot on the blocking pool: for scans.
    pub async fn read_bg<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTables) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(task_failed)?
    }
}
