//! Lookups answered from a recent listing of the directory, instead of one coordinator
//! round trip per name.
//!
//! Why: after the kernel's dentry cache is cold (a fresh mount, `drop_caches`, memory
//! pressure, or just more files than it keeps), `stat`-ing every file of a directory sends
//! one LOOKUP per name, and each costs a round trip to the coordinator. When this mount
//! sees a run of lookups missing in the same directory, it fetches the directory's listing
//! (whose pages carry every entry's attributes, the same ones a lookup returns) in the
//! background, and answers the next lookups from it. This is what NFS clients do with
//! READDIRPLUS results.
//!
//! What it may answer, so that nothing is less consistent than the kernel's own caches:
//! - Only **positive** answers ("this name exists, with these attributes"), and only
//!   within the mount's attribute TTL of the listing: exactly the staleness the kernel
//!   already allows for a dentry it got from us. A name missing from the listing still goes
//!   to the coordinator, so a file created on another mount is found at once.
//! - Nothing from before a change made through this mount: every request that may change
//!   the namespace or attributes (create, unlink, rename, setattr, commit, ...) bumps a
//!   generation number, and a listing is used only while the generation is the one it was
//!   fetched under. [`Watched`] does the bumping, as a wrapper around the backend, so no
//!   code path that changes something can forget it; which requests count is decided by an
//!   exhaustive `match` (`CoordRequest::changes_namespace` in `dfs-proto`), so a new request type must be classified
//!   before the mount compiles.
//! - Listings are fetched only while nothing changes locally: during `tar -x` (a create
//!   after every miss) they would always be stale before use, so the run of misses resets
//!   at every change and no listing is fetched.

use crate::backend::Backend;
use dfs_proto::coord_msg::{Attr, CoordRequest, CoordResponse, MAX_DIR_PAGE};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::{Ino, WireResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Misses in one directory, without a local change in between, before its listing is
/// fetched. A program that looks up one or two names does not pay for a listing.
pub const PREFETCH_AFTER: u32 = 4;
/// Most entries kept from one directory's listing (about 150 bytes each): a bigger
/// directory is listed this far, and then not again for `BIG_DIR_PAUSE`.
pub const MAX_LISTED: usize = 32 * 1024;
/// Directories remembered at once; beyond it the oldest listings are dropped.
const MAX_DIRS: usize = 64;
/// Inodes remembered as having no extended attributes; beyond it the memory is simply
/// cleared (a forgotten inode only costs a round trip).
const MAX_BARE: usize = 256 * 1024;
/// How long a directory that did not fit in `MAX_LISTED` is left alone: listing it again
/// every TTL would cost more than the lookups it saves.
const BIG_DIR_PAUSE: Duration = Duration::from_secs(30);

struct Listing {
    entries: HashMap<String, Attr>,
    fetched: Instant,
    generation: u64,
}

#[derive(Default)]
struct Misses {
    count: u32,
    generation: u64,
    first: Option<Instant>,
    /// A listing is being fetched: others do not start another.
    fetching: bool,
    /// Too big to list until then.
    paused_until: Option<Instant>,
}

#[derive(Default)]
struct State {
    listings: HashMap<Ino, Listing>,
    misses: HashMap<Ino, Misses>,
    /// Inodes a listing showed without extended attributes: when, and under which
    /// generation, the kernel was given that listing.
    bare: HashMap<Ino, (Instant, u64)>,
}

/// See the module documentation.
pub struct LookupCache {
    ttl: Duration,
    /// Bumped by every local change (see [`Watched`]).
    generation: AtomicU64,
    state: Mutex<State>,
}

impl LookupCache {
    pub fn new(ttl: Duration) -> LookupCache {
        LookupCache {
            ttl,
            generation: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mount's attribute TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Something may have changed: no listing taken before now may answer again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // The listings are dead weight now; dropping them keeps memory to what is useful.
        let mut st = self.state();
        st.listings.clear();
        st.bare.clear();
    }

    /// A directory listing given to the kernel now says `ino` has no extended
    /// attributes: `ls -l` is about to ask for two of them. (A create of `ino` says so
    /// too.) `generation` is the one the listing was fetched under.
    pub fn listed_bare(&self, ino: Ino, generation: u64, now: Instant) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut st = self.state();
        if st.bare.len() >= MAX_BARE {
            st.bare.clear();
        }
        st.bare.insert(ino, (now, generation));
    }

    /// Whether `ino` is known to have no extended attributes: a listing said so less than
    /// the TTL ago (the staleness the kernel allows for the attributes that came with it)
    /// and nothing changed through this mount since.
    pub fn is_bare(&self, ino: Ino, now: Instant) -> bool {
        let generation = self.generation();
        let st = self.state();
        st.bare
            .get(&ino)
            .is_some_and(|&(at, g)| g == generation && now.saturating_duration_since(at) < self.ttl)
    }

    /// The attributes of `name` in `parent`, if a fresh listing taken since the last
    /// local change has it.
    pub fn get(&self, parent: Ino, name: &str, now: Instant) -> Option<Attr> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let st = self.state();
        let l = st.listings.get(&parent)?;
        if l.generation != generation || now.saturating_duration_since(l.fetched) >= self.ttl {
            return None;
        }
        l.entries.get(name).cloned()
    }

    /// Counts a lookup in `parent` that the coordinator had to answer. Returns the
    /// generation to fetch a listing under when it is time to fetch one; the caller then
    /// calls [`LookupCache::fill`] (or [`LookupCache::abandon`]) exactly once.
    pub fn miss(&self, parent: Ino, now: Instant) -> Option<u64> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let mut st = self.state();
        if st.misses.len() >= 4 * MAX_DIRS && !st.misses.contains_key(&parent) {
            st.misses
                .retain(|_, m| m.fetching || m.paused_until.is_some_and(|t| t > now));
        }
        let m = st.misses.entry(parent).or_default();
        if m.fetching || m.paused_until.is_some_and(|t| t > now) {
            return None;
        }
        // A run of misses counts only within one TTL and without a change in between.
        let stale = m
            .first
            .is_none_or(|f| now.saturating_duration_since(f) >= self.ttl);
        if m.generation != generation || stale {
            *m = Misses {
                generation,
                first: Some(now),
                ..Misses::default()
            };
        }
        m.count += 1;
        if m.count < PREFETCH_AFTER {
            return None;
        }
        m.fetching = true;
        m.count = 0;
        Some(generation)
    }

    /// Stores the listing of `parent` fetched under `generation` (dropped if something
    /// changed since). `complete` is false when the directory had more than `MAX_LISTED`
    /// entries: what was fetched is still used, but the directory is not listed again for
    /// a while.
    pub fn fill(
        &self,
        parent: Ino,
        generation: u64,
        entries: Vec<(String, Attr)>,
        complete: bool,
        fetched: Instant,
    ) {
        let mut st = self.state();
        if let Some(m) = st.misses.get_mut(&parent) {
            m.fetching = false;
            if !complete {
                m.paused_until = Some(fetched + BIG_DIR_PAUSE);
            }
        }
        if generation != self.generation() {
            return;
        }
        if st.listings.len() >= MAX_DIRS && !st.listings.contains_key(&parent) {
            if let Some(oldest) = st
                .listings
                .iter()
                .min_by_key(|(_, l)| l.fetched)
                .map(|(&ino, _)| ino)
            {
                st.listings.remove(&oldest);
            }
        }
        st.listings.insert(
            parent,
            Listing {
                entries: entries.into_iter().collect(),
                fetched,
                generation,
            },
        );
    }

    /// The fetch started by [`LookupCache::miss`] failed.
    pub fn abandon(&self, parent: Ino) {
        if let Some(m) = self.state().misses.get_mut(&parent) {
            m.fetching = false;
        }
    }
}

/// Fetches the listing of `parent` (up to `MAX_LISTED` entries) and gives it to the cache.
/// Runs in the background: the lookup that triggered it has its answer already.
pub async fn prefetch<B: Backend>(
    backend: Arc<B>,
    cache: Arc<LookupCache>,
    parent: Ino,
    generation: u64,
) {
    let fetched = Instant::now();
    let mut entries = Vec::new();
    let mut after = None;
    let complete = loop {
        let req = CoordRequest::ReadDir {
            ino: parent,
            after: after.take(),
            limit: MAX_DIR_PAGE,
        };
        let page = match backend.meta(req).await {
            Ok(CoordResponse::Dir(page)) => page,
            // Not worth a log line: the lookups simply keep asking the coordinator.
            _ => return cache.abandon(parent),
        };
        after = page.entries.last().map(|e| e.name.clone());
        entries.extend(page.entries.into_iter().map(|e| (e.name, e.attr)));
        if !page.more || after.is_none() {
            break true;
        }
        if entries.len() >= MAX_LISTED {
            break false;
        }
    };
    cache.fill(parent, generation, entries, complete, fetched);
}

/// The backend as the filesystem core sees it: every request that may change the
/// namespace marks the lookup cache stale, before it is sent (a lookup racing with it
/// must not be answered from the old listing) and again when it is answered (a listing
/// fetched while it was in flight may predate it).
pub struct Watched<B> {
    inner: Arc<B>,
    cache: Arc<LookupCache>,
}

impl<B> Watched<B> {
    pub fn new(inner: Arc<B>, cache: Arc<LookupCache>) -> Watched<B> {
        Watched { inner, cache }
    }
}

impl<B: Backend> Backend for Watched<B> {
    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        let changes = req.changes_namespace();
        if changes {
            self.cache.changed();
        }
        let r = self.inner.meta(req).await;
        if changes {
            self.cache.changed();
        }
        r
    }

    async fn node(
        &self,
        addr: &str,
        req: &NodeRequest,
        deadline: Duration,
    ) -> WireResult<NodeResponse> {
        self.inner.node(addr, req, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::coord_msg::FileKind;

    fn attr(ino: Ino) -> Attr {
        Attr {
            ino,
            kind: FileKind::File,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            crtime: 0,
            generation: 0,
        }
    }

    const TTL: Duration = Duration::from_secs(1);

    /// Misses until the cache asks for a listing; returns the generation it gave.
    fn miss_until_fetch(c: &LookupCache, dir: Ino, now: Instant) -> u64 {
        for _ in 1..PREFETCH_AFTER {
            assert_eq!(c.miss(dir, now), None, "fetched too early");
        }
        c.miss(dir, now)
            .expect("no fetch after PREFETCH_AFTER misses")
    }

    #[test]
    fn answers_from_a_listing_within_the_ttl_only() {
        let c = LookupCache::new(TTL);
        let t0 = Instant::now();
        assert_eq!(c.get(1, "a", t0), None);
        let g = miss_until_fetch(&c, 1, t0);
        // A second fetch is not started while one is in flight.
        assert_eq!(c.miss(1, t0), None);
        c.fill(1, g, vec![("a".into(), attr(7))], true, t0);
        assert_eq!(c.get(1, "a", t0 + TTL / 2).map(|a| a.ino), Some(7));
        // Names not in the listing are not answered (no negative answers).
        assert_eq!(c.get(1, "b", t0), None);
        // Other directories are not answered from it.
        assert_eq!(c.get(2, "a", t0), None);
        // Expired.
        assert_eq!(c.get(1, "a", t0 + TTL), None);
    }

    #[test]
    fn a_local_change_voids_listings_and_runs_of_misses() {
        let c = LookupCache::new(TTL);
        let t0 = Instant::now();
        let g = miss_until_fetch(&c, 1, t0);
        c.fill(1, g, vec![("a".into(), attr(7))], true, t0);
        c.changed();
        assert_eq!(c.get(1, "a", t0), None);
        // A listing fetched across a change is dropped.
        let g = miss_until_fetch(&c, 1, t0);
        c.changed();
        c.fill(1, g, vec![("a".into(), attr(7))], true, t0);
        assert_eq!(c.get(1, "a", t0), None);
        // Misses interleaved with changes (tar -x) never lead to a fetch.
        for _ in 0..10 * PREFETCH_AFTER {
            assert_eq!(c.miss(1, t0), None);
            c.changed();
        }
    }

    #[test]
    fn misses_spread_over_more_than_a_ttl_do_not_fetch() {
        let c = LookupCache::new(TTL);
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(c.miss(1, t0 + TTL * i), None);
        }
    }

    #[test]
    fn a_failed_fetch_can_be_retried_and_a_big_directory_is_paused() {
        let c = LookupCache::new(TTL);
        let t0 = Instant::now();
        miss_until_fetch(&c, 1, t0);
        c.abandon(1);
        let g = miss_until_fetch(&c, 1, t0);
        c.fill(1, g, vec![("a".into(), attr(7))], false, t0);
        // Partial listings still answer what they have...
        assert_eq!(c.get(1, "a", t0).map(|a| a.ino), Some(7));
        // ...but the directory is not listed again soon.
        for _ in 0..2 * PREFETCH_AFTER {
            assert_eq!(c.miss(1, t0 + TTL * 2), None);
        }
        // After the pause it is listed again.
        miss_until_fetch(&c, 1, t0 + BIG_DIR_PAUSE + TTL);
    }

    #[test]
    fn zero_ttl_disables_it() {
        let c = LookupCache::new(Duration::ZERO);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(c.miss(1, t0), None);
        }
        c.listed_bare(5, c.generation(), t0);
        assert!(!c.is_bare(5, t0));
    }

    #[test]
    fn bare_inodes_are_known_within_the_ttl_and_until_a_change() {
        let c = LookupCache::new(TTL);
        let t0 = Instant::now();
        assert!(!c.is_bare(5, t0));
        c.listed_bare(5, c.generation(), t0);
        assert!(c.is_bare(5, t0 + TTL / 2));
        assert!(!c.is_bare(6, t0));
        assert!(!c.is_bare(5, t0 + TTL));
        c.changed();
        assert!(!c.is_bare(5, t0));
        // A listing fetched before a change says nothing after it.
        let before = c.generation();
        c.changed();
        c.listed_bare(5, before, t0);
        assert!(!c.is_bare(5, t0));
    }

    #[test]
    fn memory_stays_bounded() {
        let c = LookupCache::new(TTL);
        let t0 = Instant::now();
        for dir in 0..(MAX_DIRS as u64 + 10) {
            let g = miss_until_fetch(&c, dir, t0 + Duration::from_millis(dir));
            c.fill(
                dir,
                g,
                vec![("a".into(), attr(dir))],
                true,
                t0 + Duration::from_millis(dir),
            );
        }
        assert!(c.state().listings.len() <= MAX_DIRS);
        // The newest survive, the oldest went first.
        let last = MAX_DIRS as u64 + 9;
        assert!(c.get(last, "a", t0 + Duration::from_millis(last)).is_some());
        assert!(c.get(0, "a", t0 + Duration::from_millis(last)).is_none());
        for dir in 0..(10 * MAX_DIRS as u64) {
            c.miss(1000 + dir, t0);
        }
        assert!(c.state().misses.len() <= 4 * MAX_DIRS + 1);
    }
}
