//! [`Meta`]: the async face of the metadata store, the handle every service is given.
//!
//! redb blocks on disk I/O, so each transaction runs on tokio's blocking pool and never
//! stalls the async workers that move bytes for other connections. Reads run on a redb
//! read transaction (a snapshot, never blocked by writers); changes run as one write
//! transaction each, logged before the answer (`store.rs` says when they are durable).

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

    /// Runs `f` in a write transaction on the blocking pool (`Store::write`).
    pub async fn write<T: Send + 'static>(
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

    /// Runs `f` on a read snapshot on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTables) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(task_failed)?
    }
}
