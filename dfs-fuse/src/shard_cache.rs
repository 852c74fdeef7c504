//! A bounded cache of whole, verified shards, shared by every open file on the mount.
//!
//! Two jobs: a sequential reader asks for the same 1 MiB shard eight times (the kernel
//! reads 128 KiB at a time), and must fetch it once; and readahead may ask for a shard
//! that a reader is already fetching, and must wait for that fetch instead of starting a
//! second one. Each entry is a `OnceCell`: the first caller fetches, the others wait on it.
//! Memory is bounded by `capacity` bytes of completed shards (least recently used go first).

use dfs_proto::{ShardId, WireResult};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Slot = Arc<OnceCell<Arc<Vec<u8>>>>;

pub struct ShardCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    map: HashMap<ShardId, (Slot, u64)>,
    tick: u64,
}

impl ShardCache {
    pub fn new(capacity: usize) -> ShardCache {
        ShardCache {
            capacity,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                tick: 0,
            }),
        }
    }

    /// True if `id` is cached (complete) right now.
    pub fn contains(&self, id: &ShardId) -> bool {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.get(id).is_some_and(|(s, _)| s.initialized())
    }

    /// The shard's bytes if cached (complete) right now; does not count as a use.
    pub fn get(&self, id: &ShardId) -> Option<Arc<Vec<u8>>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.get(id).and_then(|(s, _)| s.get().cloned())
    }

    /// The shard's bytes, from the cache or from `fetch` (run at most once at a time per
    /// shard; a failed fetch is not cached, so the next caller tries again).
    pub async fn get_or_fetch<F, Fut>(&self, id: ShardId, fetch: F) -> WireResult<Arc<Vec<u8>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = WireResult<Vec<u8>>>,
    {
        let slot = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.tick += 1;
            let tick = g.tick;
            let e = g.map.entry(id).or_insert_with(|| (Slot::default(), tick));
            e.1 = tick;
            e.0.clone()
        };
        let data = slot
            .get_or_try_init(|| async { fetch().await.map(Arc::new) })
            .await?
            .clone();
        self.evict();
        Ok(data)
    }

    /// Drops least-recently-used complete entries until the cache fits its capacity.
    fn evict(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let total: usize = g
                .map
                .values()
                .filter_map(|(s, _)| s.get().map(|d| d.len()))
                .sum();
            if total <= self.capacity {
                break;
            }
            let oldest = g
                .map
                .iter()
                .filter(|(_, (s, _))| s.initialized())
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    g.map.remove(&k);
                }
                None => break,
            }
        }
        // Forget slots whose fetch failed and nobody waits on (keeps the map small).
        g.map
            .retain(|_, (s, _)| s.initialized() || Arc::strong_count(s) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::WireError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn fetches_once_and_bounds_memory() {
        let cache = ShardCache::new(2 * 100);
        let calls = AtomicUsize::new(0);
        for round in 0..2 {
            for i in 0u8..3 {
                let id = ShardId::of(&[i]);
                let d = cache
                    .get_or_fetch(id, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(vec![i; 100])
                    })
                    .await
                    .unwrap();
                assert_eq!(d[0], i);
            }
            // Three 100-byte shards through a 200-byte cache: the oldest was evicted.
            assert!(!cache.contains(&ShardId::of(&[0])), "round {round}");
            assert!(cache.contains(&ShardId::of(&[2])));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        // A repeated read of a cached shard does not fetch.
        cache
            .get_or_fetch(ShardId::of(&[2]), || async {
                Err(WireError::internal("no"))
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn failed_fetch_is_retried() {
        let cache = ShardCache::new(1000);
        let id = ShardId::of(b"x");
        let e = cache
            .get_or_fetch(id, || async { Err(WireError::unavailable("down")) })
            .await;
        assert!(e.is_err());
        let d = cache
            .get_or_fetch(id, || async { Ok(vec![1]) })
            .await
            .unwrap();
        assert_eq!(*d, vec![1]);
    }
}
