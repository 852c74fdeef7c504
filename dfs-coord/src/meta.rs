//! [`Meta`]: the async face of the metadata store, the handle every service is given.
//!
//! redb blocks on disk I/O, so each transaction runs on tokio's blocking pool and never
//! stalls the async workers that move bytes for other connections. Reads run on a redb
//! read transaction (a snapshot, never blocked by writers); changes run as one write
//! transaction each: durable before the answer ([`Meta::write`]), or, for namespace
//! changes under `--lazy-namespace-sync`, durable within `SYNC_INTERVAL`
//! ([`Meta::write_soon`], see `store.rs`).

use crate::store::{ReadTables, Store, Tables};
use dfs_proto::{WireError, WireResult};
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct Meta {
    store: Arc<Store>,
    /// Whether namespace changes may be committed lazily (`--lazy-namespace-sync`).
    lazy: bool,
}

fn task_failed(e: tokio::task::JoinError) -> WireError {
    WireError::internal(format!("metadata task failed: {e}"))
}

impl Meta {
    pub fn new(store: Store, lazy_namespace_sync: bool) -> Meta {
        Meta {
            store: Arc::new(store),
            lazy: lazy_namespace_sync,
        }
    }

    /// Runs `f` in a durable write transaction on the blocking pool.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(task_failed)?
    }

    /// Runs `f` in a write transaction for a namespace change: durable at once, or with
    /// `--lazy-namespace-sync` durable within `SYNC_INTERVAL` (`Store::write_soon`).
    pub async fn write_soon<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> WireResult<T> + Send + 'static,
    ) -> WireResult<T> {
        let store = self.store.clone();
        let lazy = self.lazy;
        tokio::task::spawn_blocking(move || {
            if lazy {
                store.write_soon(f)
            } else {
                store.write(f)
            }
        })
        .await
        .map_err(task_failed)?
    }

    /// Makes every namespace change so far durable.
    pub async fn sync(&self) -> WireResult<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync())
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
