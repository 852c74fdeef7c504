//! Moving disk work off the async threads: one small helper that the request handlers
//! (`server.rs`), replication, corruption handling and the scrubber all use. A module of its own so
//! that those modules depend on it, not on each other.

use dfs_proto::WireError;

/// Runs blocking file I/O on tokio's blocking pool, so a slow disk stalls only that
/// request and not the QUIC connections sharing the async worker threads.
pub(crate) async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<WireError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| E::from(WireError::internal(format!("storage task failed: {e}"))))?
}
