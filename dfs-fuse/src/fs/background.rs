//! What the mount does on its own rather than for a request: renewing its leases every
//! second and committing everything at unmount.

use super::Fs;
use crate::backend::Backend;
use crate::lease;
use dfs_proto::coord_msg::Caller;
use dfs_proto::WireResult;

impl<B: Backend> Fs<B> {
    /// Renews this mount's leases at the coordinator (every second, see `lease.rs`): on
    /// every shard it has stored but not yet committed, and on every file it unlinked
    /// while open.
    pub async fn touch_uncommitted(&self) -> WireResult<()> {
        let files = self.open.open_files();
        let mut open = Vec::new();
        for (ino, f) in files {
            // Uploads finished while the file sat idle are filed here, which publishes
            // them in `leases`. A file whose lock is busy (a commit uploading) files its
            // uploads itself as they finish.
            match f.try_lock() {
                Ok(mut st) => {
                    st.reap_uploads();
                    if st.unlinked {
                        open.push(ino);
                    }
                }
                // Busy: it may be unlinked; naming a file that is not an orphan is harmless.
                Err(_) => open.push(ino),
            }
        }
        // Read without any file's lock: a long commit must not stop its own shards'
        // lease from being renewed.
        let ids = self.ctx.leases.all();
        lease::renew(&*self.ctx.backend, &ids, &open).await
    }

    /// Commits every open file's buffered writes (at unmount).
    pub async fn flush_all(&self) -> WireResult<()> {
        let mut first = Ok(());
        if let Err(e) = self.removals.flush().await {
            tracing::error!(
                pending = self.removals.pending(),
                "failed to send unlinks at unmount; those names stay: {e}"
            );
            first = Err(e);
        }
        for (_, f) in self.open.open_files() {
            let mut st = f.lock().await;
            if let Err(e) = st.commit(&self.ctx, Caller::ROOT).await {
                tracing::error!(ino = st.ino, "failed to flush at unmount: {e}");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}
