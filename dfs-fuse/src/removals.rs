//! Write-behind removals: `unlink` answered at once, sent to the coordinator in batches.
//!
//! Why: `rm -r` of a tree, or a build cleaning its outputs, is a long run of unlinks, and
//! each one used to wait for a coordinator round trip (~0.35 ms on loopback here). The
//! kernel has already done what could fail for a good reason before it asks us: it found
//! the name (its dentry), checked it is not a directory, and checked the caller's
//! permission on the parent (the mount uses `default_permissions`). What is left is
//! bookkeeping the coordinator can do a few milliseconds later, for many names at once.
//! This is what local filesystems do too: ext4 acknowledges an unlink in memory and
//! journals it within seconds; only `fsync` of the directory makes it durable.
//!
//! The rules, which keep every program on this mount seeing the unlinks in order:
//! - An unlink of a file that this mount does not have open is queued and answered
//!   `Ok` (an open one must be kept until its last close, which needs the coordinator's
//!   answer, so it goes the old way).
//! - **Every other coordinator request waits until the queue is sent and answered**
//!   (a barrier), so a listing, a create of the same name, a rename, a `stat` of a
//!   removed file all see the removals made before them. It is a wrapper around the
//!   backend, so no code path can forget it. The kernel's requests before *every*
//!   unlink would turn each batch into a batch of one if they all waited, so:
//!   - a **lookup** of a name waits only if that name (in that directory) is among the
//!     removals not yet answered: no other removal can change its answer (unless the
//!     file it finds has other links, one of which may be queued: then it waits and
//!     asks again);
//!   - a **listing** (`ReadDir`) of a directory waits only if removals in that directory
//!     are unanswered, and asks again after the queue if an entry's attributes may
//!     depend on it (a file with other links, a subdirectory with queued removals):
//!     `rm -r` reads each subdirectory while the unlinks of its parent are queued;
//!   - the kernel's `getattr` of the parent directory, which it needs after each unlink
//!     to check the next one, is answered above this layer (`dir_attrs.rs`).
//! - An `rmdir` rides in the same batch, after the unlinks of its directory's files: the
//!   `rm -r` of a directory costs one round trip, whatever the number of its files.
//! - A queue is sent at most [`FLUSH_AFTER`] after its first unlink, or when it holds
//!   [`MAX_REMOVE_BATCH`] of them: other mounts see a name go within that bound.
//!
//! What it costs, and SEMANTICS.md says so: a crash of the mount process loses the
//! unlinks of the last few milliseconds (the names come back), as it loses writes not yet
//! closed; and an unlink the coordinator refuses after we answered `Ok` (another mount
//! removed the name first: harmless; the directory's permissions changed on another
//! mount within the attribute TTL: the name stays) is logged and counted, not reported
//! to the program. `--sync-removals` turns the whole thing off.

use crate::backend::Backend;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, FileKind, Removal, MAX_REMOVE_BATCH};
use dfs_proto::ids::Ino;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::{ErrorCode, WireError, WireResult};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long the first queued unlink waits for others to join its batch.
pub const FLUSH_AFTER: Duration = Duration::from_millis(5);
/// Pause before the background sender tries again after the coordinator did not answer.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Queue {
    /// Removals not yet sent, or sent and failed in transport (put back in front), with
    /// their sequence numbers.
    ops: VecDeque<(u64, Removal)>,
    /// A background sender is waiting to send the queue.
    timer_armed: bool,
    /// Removals queued or in flight, not yet answered, by (parent, name): the lookups
    /// that must wait for the queue.
    unanswered: HashMap<(Ino, String), usize>,
    /// The same removals counted by directory: the listings that must wait for the queue.
    by_parent: HashMap<Ino, usize>,
}

/// A backend whose unlinks are written behind (see the module documentation).
pub struct Deferred<B> {
    inner: Arc<B>,
    enabled: bool,
    me: Weak<Deferred<B>>,
    queue: Mutex<Queue>,
    /// One batch in flight at a time: that is what keeps the removals in order.
    sending: tokio::sync::Mutex<()>,
    /// Sequence number of the next queued removal.
    next_seq: AtomicU64,
    /// Every removal with a lower sequence number has been answered.
    acked: AtomicU64,
    /// Removals the coordinator refused after they had been acknowledged to a program
    /// (names already gone are not counted: the outcome is the one promised).
    refused: AtomicU64,
}

/// Takes one from `key`'s count, dropping the key when none is left.
fn count_down<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B: Backend> Deferred<B> {
    /// `enabled` false: every request goes straight through, as before.
    pub fn new(inner: Arc<B>, enabled: bool) -> Arc<Deferred<B>> {
        Arc::new_cyclic(|me| Deferred {
            inner,
            enabled,
            me: me.clone(),
            queue: Mutex::new(Queue::default()),
            sending: tokio::sync::Mutex::new(()),
            next_seq: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Removals acknowledged to programs that the coordinator then refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Removals acknowledged and not yet answered by the coordinator.
    pub fn pending(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst) - self.acked.load(Ordering::SeqCst)
    }

    /// Sends every queued removal and waits for the answers. Fails if the coordinator
    /// could not be reached; the removals then stay queued.
    pub async fn flush(&self) -> WireResult<()> {
        self.send(None).await.map(drop)
    }

    async fn enqueue(&self, op: Removal) -> WireResult<()> {
        // A full queue is sent first, so it stays bounded; if that fails, this unlink
        // fails too, and is not queued.
        if lock(&self.queue).ops.len() >= MAX_REMOVE_BATCH {
            self.flush().await?;
        }
        let arm = {
            let mut q = lock(&self.queue);
            let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
            *q.unanswered
                .entry((op.parent, op.name.clone()))
                .or_default() += 1;
            *q.by_parent.entry(op.parent).or_default() += 1;
            q.ops.push_back((seq, op));
            !std::mem::replace(&mut q.timer_armed, true)
        };
        if arm {
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(me.send_in_background());
            }
        }
        Ok(())
    }

    /// The background sender: one per non-empty queue, so an unlink followed by nothing
    /// still reaches the coordinator within `FLUSH_AFTER`.
    async fn send_in_background(self: Arc<Self>) {
        let mut pause = FLUSH_AFTER;
        loop {
            tokio::time::sleep(pause).await;
            pause = match self.flush().await {
                Ok(()) => FLUSH_AFTER,
                Err(e) => {
                    tracing::warn!(
                        pending = self.pending(),
                        "cannot send removals to the coordinator (trying again): {e}"
                    );
                    RETRY_AFTER
                }
            };
            let mut q = lock(&self.queue);
            if q.ops.is_empty() {
                q.timer_armed = false;
                return;
            }
        }
    }

    /// Sends the removals queued before this call (and `last`, after them), in batches
    /// of at most `MAX_REMOVE_BATCH`, and returns `last`'s result.
    async fn send(&self, mut last: Option<Removal>) -> WireResult<Option<WireResult<()>>> {
        let want = self.next_seq.load(Ordering::SeqCst);
        let _one_at_a_time = self.sending.lock().await;
        loop {
            let batch: Vec<(u64, Removal)> = {
                let mut q = lock(&self.queue);
                let n = q
                    .ops
                    .iter()
                    .take(MAX_REMOVE_BATCH)
                    .take_while(|(seq, _)| *seq < want)
                    .count();
                q.ops.drain(..n).collect()
            };
            let mut ops: Vec<Removal> = batch.iter().map(|(_, op)| op.clone()).collect();
            let with_last = ops.len() < MAX_REMOVE_BATCH && last.is_some();
            if with_last {
                ops.extend(last.take());
            }
            if ops.is_empty() {
                return Ok(None);
            }
            let sent = ops.len();
            let answer = match self.inner.meta(CoordRequest::RemoveBatch { ops }).await {
                Ok(CoordResponse::Results(r)) if r.len() == sent => Ok(r),
                Ok(_) => Err(WireError::unexpected("RemoveBatch")),
                Err(e) => Err(e),
            };
            let mut results = match answer {
                Ok(r) => r,
                Err(e) => {
                    // Not answered: put them back in front, in order. Sending them again
                    // later is safe: a removal that did happen answers "not found".
                    let mut q = lock(&self.queue);
                    for item in batch.into_iter().rev() {
                        q.ops.push_front(item);
                    }
                    return Err(e);
                }
            };
            let last_result = if with_last { results.pop() } else { None };
            for ((seq, op), r) in batch.iter().zip(results) {
                self.report(op, r);
                self.answered(op);
                self.acked.fetch_max(seq + 1, Ordering::SeqCst);
            }
            let done = batch.last().is_none_or(|(seq, _)| seq + 1 >= want);
            if done && last.is_none() {
                return Ok(last_result);
            }
        }
    }

    fn answered(&self, op: &Removal) {
        let mut q = lock(&self.queue);
        count_down(&mut q.unanswered, (op.parent, op.name.clone()));
        count_down(&mut q.by_parent, op.parent);
    }

    /// Removals in directory `dir` are queued or in flight.
    fn pending_in(&self, dir: Ino) -> bool {
        lock(&self.queue).by_parent.contains_key(&dir)
    }

    /// A listing of `ino` waits for the queue only if removals in that directory are in
    /// it: no other removal changes which names it holds. What it says about the entries
    /// may still depend on the queue, through two things, and then it waits and asks
    /// again: a file with other links (one of them may be queued, so its link count is
    /// not final) and a subdirectory whose own removals are queued (its times change).
    async fn read_dir(&self, req: CoordRequest, ino: Ino) -> WireResult<CoordResponse> {
        let wait = self.pending_in(ino);
        self.ask(wait, req, |r| {
            let CoordResponse::Dir(page) = r else {
                return false;
            };
            let q = lock(&self.queue);
            page.entries.iter().any(|e| {
                if e.attr.kind == FileKind::Dir {
                    q.by_parent.contains_key(&e.attr.ino)
                } else {
                    e.attr.nlink > 1
                }
            })
        })
        .await
    }

    /// Sends `req`, after the queue if `wait`; if the answer `depends` on removals that
    /// are still queued, sends the queue and asks again.
    async fn ask(
        &self,
        wait: bool,
        req: CoordRequest,
        depends: impl Fn(&CoordResponse) -> bool,
    ) -> WireResult<CoordResponse> {
        if wait {
            self.flush().await?;
        }
        let r = self.inner.meta(req.clone()).await?;
        if self.pending() > 0 && depends(&r) {
            self.flush().await?;
            return self.inner.meta(req).await;
        }
        Ok(r)
    }

    /// A lookup of `name` in `parent` must wait for the queue only if that name is in it.
    fn must_wait_for(&self, parent: Ino, name: &str) -> bool {
        // The key is built only to look it up: a lookup per unlink, short names.
        lock(&self.queue)
            .unanswered
            .contains_key(&(parent, name.to_string()))
    }

    async fn lookup(&self, parent: Ino, name: String) -> WireResult<CoordResponse> {
        let wait = self.must_wait_for(parent, &name);
        // A file with other links: one of its other names may be queued, so its link
        // count is not final yet.
        self.ask(
            wait,
            CoordRequest::Lookup { parent, name },
            |r| matches!(r, CoordResponse::Attr(a) if a.kind != FileKind::Dir && a.nlink > 1),
        )
        .await
    }

    fn report(&self, op: &Removal, r: WireResult<()>) {
        match r {
            Ok(()) => {}
            // Someone removed it first: the name is gone, as promised.
            Err(e) if e.code == ErrorCode::NotFound => {
                tracing::debug!(parent = op.parent, name = %op.name, "already removed: {e}");
            }
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    parent = op.parent,
                    name = %op.name,
                    "the coordinator refused an unlink already acknowledged; the name stays: {e}"
                );
            }
        }
    }
}

impl<B: Backend> Backend for Deferred<B> {
    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        if !self.enabled {
            return self.inner.meta(req).await;
        }
        match req {
            CoordRequest::Unlink {
                parent,
                name,
                keep: false,
            } => {
                let op = Removal {
                    parent,
                    name,
                    dir: false,
                };
                self.enqueue(op).await.map(|()| CoordResponse::Unit)
            }
            CoordRequest::Rmdir { parent, name } => {
                let op = Removal {
                    parent,
                    name,
                    dir: true,
                };
                match self.send(Some(op)).await? {
                    Some(r) => r.map(|()| CoordResponse::Unit),
                    None => Err(WireError::unexpected("RemoveBatch without the rmdir")),
                }
            }
            CoordRequest::Lookup { parent, name } => self.lookup(parent, name).await,
            CoordRequest::ReadDir { ino, .. } => self.read_dir(req, ino).await,
            req => {
                if self.pending() > 0 {
                    self.flush().await?;
                }
                self.inner.meta(req).await
            }
        }
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
    use dfs_proto::coord_msg::Attr;
    use dfs_proto::coord_msg::CoordRequest as Q;

    /// A coordinator that records what it is sent, answers removals from a set of names,
    /// and can be made unreachable.
    #[derive(Default)]
    struct Fake {
        sent: Mutex<Vec<CoordRequest>>,
        names: Mutex<std::collections::HashSet<(u64, String)>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl Fake {
        fn with(names: &[(u64, &str)]) -> Arc<Fake> {
            let f = Fake::default();
            *lock(&f.names) = names.iter().map(|(p, n)| (*p, n.to_string())).collect();
            Arc::new(f)
        }
        fn sent(&self) -> Vec<String> {
            lock(&self.sent)
                .drain(..)
                .map(|r| match r {
                    Q::RemoveBatch { ops } => format!(
                        "batch[{}]",
                        ops.iter()
                            .map(|o| format!("{}{}", if o.dir { "rmdir " } else { "" }, o.name))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    r => r.name().to_string(),
                })
                .collect()
        }
    }

    impl Backend for Fake {
        async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
            if self.down.load(Ordering::SeqCst) {
                return Err(WireError::new(ErrorCode::Unavailable, "down"));
            }
            lock(&self.sent).push(req.clone());
            match req {
                Q::RemoveBatch { ops } => Ok(CoordResponse::Results(
                    ops.iter()
                        .map(|o| {
                            if o.name.starts_with("busy") {
                                Err(WireError::new(ErrorCode::NotEmpty, "not empty"))
                            } else if lock(&self.names).remove(&(o.parent, o.name.clone())) {
                                Ok(())
                            } else {
                                Err(WireError::new(ErrorCode::NotFound, "no such name"))
                            }
                        })
                        .collect(),
                )),
                Q::GetAttr { ino } => Ok(CoordResponse::Attr(attr(ino, 1))),
                // Directory 3 holds a file, 4 a file with another link, 5 directory 1.
                Q::ReadDir { ino, .. } => {
                    let (name, attr) = match ino {
                        3 => ("x", attr(7, 1)),
                        4 => ("linked", attr(8, 2)),
                        _ => ("sub", attr(1, 2)),
                    };
                    let entries = vec![dfs_proto::coord_msg::DirEntry {
                        name: name.into(),
                        attr,
                        xattrs: false,
                    }];
                    Ok(CoordResponse::Dir(dfs_proto::coord_msg::DirPage {
                        parent: 1,
                        entries,
                        more: false,
                    }))
                }
                Q::Lookup { name, .. } => {
                    let links = if name.starts_with("linked") { 2 } else { 1 };
                    Ok(CoordResponse::Attr(attr(7, links)))
                }
                _ => Ok(CoordResponse::Unit),
            }
        }
        async fn node(&self, _: &str, _: &NodeRequest, _: Duration) -> WireResult<NodeResponse> {
            Err(WireError::invalid("no nodes here"))
        }
    }

    /// Inode 1 is a directory, the others files.
    fn attr(ino: u64, nlink: u32) -> Attr {
        Attr {
            kind: if ino == 1 {
                FileKind::Dir
            } else {
                FileKind::File
            },
            nlink,
            ..crate::dir::dot_attr(ino)
        }
    }

    fn lookup(name: &str) -> CoordRequest {
        Q::Lookup {
            parent: 1,
            name: name.into(),
        }
    }

    fn unlink(name: &str) -> CoordRequest {
        Q::Unlink {
            parent: 1,
            name: name.into(),
            keep: false,
        }
    }

    fn rmdir(name: &str) -> CoordRequest {
        Q::Rmdir {
            parent: 1,
            name: name.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlinks_wait_for_nothing_and_the_next_request_sends_them_first() {
        let f = Fake::with(&[(1, "a"), (1, "b")]);
        let d = Deferred::new(f.clone(), true);
        d.meta(unlink("a")).await.unwrap();
        d.meta(unlink("b")).await.unwrap();
        assert!(f.sent().is_empty(), "an unlink waits for no round trip");
        assert_eq!(d.pending(), 2);
        d.meta(Q::Lookup {
            parent: 1,
            name: "a".into(),
        })
        .await
        .unwrap();
        assert_eq!(f.sent(), ["batch[a,b]", "lookup"]);
        assert_eq!(d.pending(), 0);
        assert!(lock(&f.names).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_rmdir_rides_in_the_batch_after_the_unlinks_and_gets_its_own_answer() {
        let f = Fake::with(&[(1, "a"), (1, "d"), (1, "busy")]);
        let d = Deferred::new(f.clone(), true);
        d.meta(unlink("a")).await.unwrap();
        d.meta(rmdir("d")).await.unwrap();
        assert_eq!(f.sent(), ["batch[a,rmdir d]"]);
        let e = d.meta(rmdir("busy")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotEmpty);
        assert_eq!(f.sent(), ["batch[rmdir busy]"]);
        // Its refusal is the caller's answer, not a refused write-behind removal.
        assert_eq!(d.refused(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_left_alone_is_sent_within_flush_after() {
        let f = Fake::with(&[(1, "a")]);
        let d = Deferred::new(f.clone(), true);
        d.meta(unlink("a")).await.unwrap();
        tokio::time::sleep(FLUSH_AFTER / 2).await;
        assert!(f.sent().is_empty());
        tokio::time::sleep(FLUSH_AFTER).await;
        assert_eq!(f.sent(), ["batch[a]"]);
        assert_eq!(d.pending(), 0);
        // And the sender stops: a later unlink arms a new one.
        d.meta(unlink("gone")).await.unwrap();
        tokio::time::sleep(FLUSH_AFTER * 2).await;
        assert_eq!(f.sent(), ["batch[gone]"]);
    }

    #[tokio::test(start_paused = true)]
    async fn removals_the_coordinator_did_not_get_stay_queued_and_block_later_requests() {
        let f = Fake::with(&[(1, "a"), (1, "b")]);
        let d = Deferred::new(f.clone(), true);
        f.down.store(true, Ordering::SeqCst);
        d.meta(unlink("a")).await.unwrap();
        // A request after it must not overtake it: it fails too.
        let e = d.meta(Q::GetAttr { ino: 1 }).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(d.pending(), 1);
        f.down.store(false, Ordering::SeqCst);
        d.meta(unlink("b")).await.unwrap();
        d.meta(Q::GetAttr { ino: 1 }).await.unwrap();
        assert_eq!(f.sent(), ["batch[a,b]", "get_attr"]);
        assert_eq!(d.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_already_gone_is_no_failure_and_a_refusal_is_counted() {
        let f = Fake::with(&[]);
        let d = Deferred::new(f.clone(), true);
        d.meta(unlink("never-there")).await.unwrap();
        d.meta(unlink("busy-x")).await.unwrap();
        d.flush().await.unwrap();
        assert_eq!(d.refused(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_stays_bounded_and_order_holds_across_batches() {
        let n = MAX_REMOVE_BATCH * 2 + 7;
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let f = Fake::with(&names.iter().map(|s| (1, s.as_str())).collect::<Vec<_>>());
        let d = Deferred::new(f.clone(), true);
        for name in &names {
            d.meta(unlink(name)).await.unwrap();
            assert!(lock(&d.queue).ops.len() <= MAX_REMOVE_BATCH);
        }
        d.flush().await.unwrap();
        let sent = lock(&f.sent).drain(..).collect::<Vec<_>>();
        let mut order = Vec::new();
        for r in sent {
            let Q::RemoveBatch { ops } = r else {
                panic!("only removals were sent");
            };
            assert!(ops.len() <= MAX_REMOVE_BATCH);
            order.extend(ops.into_iter().map(|o| o.name));
        }
        assert_eq!(order, names);
        assert!(lock(&f.names).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_it_sends_every_request_as_it_comes() {
        let f = Fake::with(&[(1, "a")]);
        let d = Deferred::new(f.clone(), false);
        d.meta(unlink("a")).await.unwrap();
        d.meta(rmdir("d")).await.unwrap();
        assert_eq!(f.sent(), ["unlink", "rmdir"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlink_that_keeps_the_inode_goes_at_once_after_the_queue() {
        let f = Fake::with(&[(1, "a")]);
        let d = Deferred::new(f.clone(), true);
        d.meta(unlink("a")).await.unwrap();
        d.meta(Q::Unlink {
            parent: 1,
            name: "open".into(),
            keep: true,
        })
        .await
        .unwrap();
        assert_eq!(f.sent(), ["batch[a]", "unlink"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_waits_only_for_a_removal_of_its_own_name() {
        let f = Fake::with(&[(1, "a"), (1, "b"), (1, "c")]);
        let d = Deferred::new(f.clone(), true);
        d.meta(unlink("a")).await.unwrap();
        d.meta(lookup("c")).await.unwrap();
        assert_eq!(f.sent(), ["lookup"], "another name: no wait");
        assert_eq!(d.pending(), 1);
        // A file with other links: one of them may be queued, so its link count is
        // asked again after the queue.
        d.meta(lookup("linked")).await.unwrap();
        assert_eq!(f.sent(), ["lookup", "batch[a]", "lookup"]);
        d.meta(unlink("b")).await.unwrap();
        d.meta(lookup("b")).await.unwrap();
        assert_eq!(f.sent(), ["batch[b]", "lookup"]);
        // A removal in flight counts as unanswered too, and the count goes back to zero.
        assert!(lock(&d.queue).unanswered.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_waits_only_for_removals_that_can_change_it() {
        let f = Fake::with(&[(1, "a"), (1, "b"), (1, "c")]);
        let d = Deferred::new(f.clone(), true);
        let list = |ino| Q::ReadDir {
            ino,
            after: None,
            limit: 100,
        };
        d.meta(unlink("a")).await.unwrap();
        d.meta(list(3)).await.unwrap();
        assert_eq!(f.sent(), ["read_dir"], "another directory: no wait");
        d.meta(list(1)).await.unwrap();
        assert_eq!(
            f.sent(),
            ["batch[a]", "read_dir"],
            "its own removals go first"
        );
        // Entries whose attributes the queue may change: asked again after it.
        d.meta(unlink("b")).await.unwrap();
        d.meta(list(4)).await.unwrap();
        assert_eq!(
            f.sent(),
            ["read_dir", "batch[b]", "read_dir"],
            "a file with links"
        );
        d.meta(unlink("c")).await.unwrap();
        d.meta(list(5)).await.unwrap();
        assert_eq!(
            f.sent(),
            ["read_dir", "batch[c]", "read_dir"],
            "a busy subdirectory"
        );
        // With nothing queued, such entries cost nothing more.
        d.meta(list(4)).await.unwrap();
        assert_eq!(f.sent(), ["read_dir"]);
        assert!(lock(&d.queue).by_parent.is_empty());
    }
}
