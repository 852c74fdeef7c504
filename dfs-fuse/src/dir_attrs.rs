//! What this mount knows of the directories it has just changed or made, answered here.
//!
//! **The parent's attributes.** Every create, mkdir, unlink or rmdir makes the kernel
//! drop the attributes of the parent directory (its mtime and ctime change, and it cannot
//! know how), and the mount uses `default_permissions`, so the kernel needs them again to
//! check the caller's permission for the *next* create or unlink in that directory.
//! Without this layer, `tar -x` or `rm -r` pays one coordinator round trip per file for a
//! `getattr` whose answer this mount already knows: the coordinator's last answer for the
//! directory, with the change we made applied to it (mtime and ctime now; the link count
//! one up for a mkdir, one down for an rmdir).
//!
//! **Names not in a directory made here.** Before every create the kernel looks the name
//! up, and the answer is "no such name" for every file `tar -x` or `cp -r` writes into a
//! directory it has just made. A directory this mount created was empty then; for one
//! TTL after that we know every name in it that this mount added, and answer a lookup of
//! any other name with ENOENT here. A name another mount adds within that TTL stays
//! unseen until it ends: the same staleness the kernel allows for a cached dentry.
//!
//! What it may answer, so nothing is staler than the kernel's own caches:
//! - only a directory whose attributes the coordinator gave us less than the attribute
//!   TTL ago, and only if this mount changed its entries since (otherwise the kernel is
//!   asking because its own copy is old, and so is ours);
//! - nothing learnt before, or during, a change that this layer cannot apply itself: a
//!   rename, a chmod, an xattr change forget what is known. Every change starts by
//!   bumping an epoch, and a `getattr` answer is remembered only if no change began
//!   while it was in flight, so a remembered answer is never a half-applied state;
//! - a name this mount adds to a new directory (create, symlink, link, rename into it) is
//!   noted *before* the request is sent, so a lookup never answers ENOENT for a name
//!   that may already exist.
//!
//! The times are ours, stamped when the change was answered; the coordinator stamps its
//! own a moment earlier. A `stat` within the TTL shows ours, after it the coordinator's:
//! they differ by less than a round trip. docs/SEMANTICS.md says so.

use crate::backend::Backend;
use dfs_proto::coord_msg::{Attr, CoordRequest, CoordResponse, FileKind};
use dfs_proto::ids::Ino;
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::{WireError, WireResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
// Tokio's clock (the real one, except in tests that pause it).
use tokio::time::Instant;

/// Directories remembered at most; past it the memory starts over (a forgotten one only
/// costs a round trip).
const MAX_DIRS: usize = 4096;
/// Names noted in one new directory at most; past it the directory is no longer known
/// completely, and its lookups go to the coordinator.
const MAX_NAMES: usize = 64 * 1024;

#[derive(Default)]
struct State {
    dirs: HashMap<Ino, Known>,
    /// Bumped when a change begins; see the module documentation.
    epoch: u64,
    /// Changes sent and not yet answered: while there are any, no answer is remembered.
    changing: usize,
    /// Directories this mount made, and the names it added to them since.
    born: HashMap<Ino, Born>,
}

struct Born {
    /// When the mkdir was sent: it was empty then.
    at: Instant,
    names: HashSet<String>,
}

struct Known {
    attr: Attr,
    /// When the `getattr` that returned it was sent.
    asked: Instant,
    /// This mount changed the directory's entries since: only then is it answered here.
    touched: bool,
}

/// The name a request may add to a directory.
fn adds_name(req: &CoordRequest) -> Option<(Ino, &str)> {
    use CoordRequest as Q;
    match req {
        Q::Create { parent, name, .. } | Q::Symlink { parent, name, .. } => Some((*parent, name)),
        Q::Link {
            new_parent,
            new_name,
            ..
        }
        | Q::Rename {
            new_parent,
            new_name,
            ..
        } => Some((*new_parent, new_name)),
        _ => None,
    }
}

/// What a request does to the directories we remember.
enum Effect {
    /// Nothing (reads; changes to files' contents).
    None,
    /// An entry of `parent` added or removed; its link count moves by `links`.
    Entry { parent: Ino, links: i64 },
    /// Anything else that may change directories: forget them all.
    Unknown,
}

fn effect(req: &CoordRequest) -> Effect {
    use CoordRequest as Q;
    match req {
        Q::Create { parent, kind, .. } => Effect::Entry {
            parent: *parent,
            links: i64::from(*kind == FileKind::Dir),
        },
        Q::Symlink { parent, .. } | Q::Unlink { parent, .. } => Effect::Entry {
            parent: *parent,
            links: 0,
        },
        Q::Link { new_parent, .. } => Effect::Entry {
            parent: *new_parent,
            links: 0,
        },
        Q::Rmdir { parent, .. } => Effect::Entry {
            parent: *parent,
            links: -1,
        },
        // A commit changes a file's size and times, never a directory's.
        Q::Commit { .. } => Effect::None,
        req if req.changes_namespace() => Effect::Unknown,
        _ => Effect::None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A backend that answers the `getattr` of a directory this mount just changed (see the
/// module documentation).
pub struct OwnDirs<B> {
    inner: Arc<B>,
    /// The mount's attribute TTL: nothing older is answered. Zero turns this off.
    ttl: Duration,
    state: Mutex<State>,
}

impl<B: Backend> OwnDirs<B> {
    pub fn new(inner: Arc<B>, ttl: Duration) -> OwnDirs<B> {
        OwnDirs {
            inner,
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    async fn getattr(&self, ino: Ino) -> WireResult<CoordResponse> {
        let sent = {
            let st = lock(&self.state);
            if let Some(k) = st.dirs.get(&ino) {
                if k.touched && k.asked.elapsed() < self.ttl {
                    return Ok(CoordResponse::Attr(k.attr.clone()));
                }
            }
            (st.changing == 0).then_some((st.epoch, Instant::now()))
        };
        let r = self.inner.meta(CoordRequest::GetAttr { ino }).await?;
        if let (Some((epoch, asked)), CoordResponse::Attr(a)) = (sent, &r) {
            let mut st = lock(&self.state);
            if a.kind == FileKind::Dir && st.epoch == epoch && !self.ttl.is_zero() {
                if st.dirs.len() >= MAX_DIRS {
                    st.dirs.clear();
                }
                let k = Known {
                    attr: a.clone(),
                    asked,
                    touched: false,
                };
                st.dirs.insert(ino, k);
            }
        }
        Ok(r)
    }

    /// A lookup of `name` in `parent` that we can answer: ENOENT in a directory made here
    /// less than a TTL ago, for a name this mount did not add.
    fn surely_absent(&self, parent: Ino, name: &str) -> bool {
        let st = lock(&self.state);
        st.born
            .get(&parent)
            .is_some_and(|b| b.at.elapsed() < self.ttl && !b.names.contains(name))
    }

    async fn change(&self, req: CoordRequest, effect: Effect) -> WireResult<CoordResponse> {
        let now = Instant::now();
        let mkdir = matches!(
            req,
            CoordRequest::Create {
                kind: FileKind::Dir,
                ..
            }
        );
        {
            let mut st = lock(&self.state);
            st.epoch += 1;
            st.changing += 1;
            if matches!(effect, Effect::Unknown) {
                st.dirs.clear();
            }
            if let Some((parent, name)) = adds_name(&req) {
                if let Some(b) = st.born.get_mut(&parent) {
                    if b.names.len() >= MAX_NAMES {
                        st.born.remove(&parent);
                    } else {
                        b.names.insert(name.to_string());
                    }
                }
            }
        }
        let r = self.inner.meta(req).await;
        let mut st = lock(&self.state);
        st.changing -= 1;
        if let (true, Ok(CoordResponse::Attr(a)), false) = (mkdir, &r, self.ttl.is_zero()) {
            if st.born.len() >= MAX_DIRS {
                let ttl = self.ttl;
                st.born.retain(|_, b| b.at.elapsed() < ttl);
                if st.born.len() >= MAX_DIRS {
                    st.born.clear();
                }
            }
            let b = Born {
                at: now,
                names: HashSet::new(),
            };
            st.born.insert(a.ino, b);
        }
        if let Effect::Entry { parent, links } = effect {
            match (&r, st.dirs.get_mut(&parent)) {
                (Ok(_), Some(k)) => {
                    let now = crate::fs::now_ns();
                    k.attr.mtime = now;
                    k.attr.ctime = now;
                    let n = i64::from(k.attr.nlink).saturating_add(links);
                    k.attr.nlink = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
                    k.touched = true;
                }
                // Refused: what it did, if anything, is not known here.
                (Err(_), Some(_)) => {
                    st.dirs.remove(&parent);
                }
                (_, None) => {}
            }
        }
        r
    }
}

impl<B: Backend> Backend for OwnDirs<B> {
    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        match &req {
            CoordRequest::GetAttr { ino } => return self.getattr(*ino).await,
            CoordRequest::Lookup { parent, name } if self.surely_absent(*parent, name) => {
                return Err(WireError::not_found(format!(
                    "no entry {name:?} in directory {parent} (made here)"
                )));
            }
            _ => {}
        }
        match effect(&req) {
            Effect::None => self.inner.meta(req).await,
            e => self.change(req, e).await,
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
    use dfs_proto::coord_msg::Caller;
    use dfs_proto::{ErrorCode, WireError};
    use CoordRequest as Q;

    const TTL: Duration = Duration::from_secs(1);

    /// Answers `getattr` of inode 1 (a directory with `links` links) and of inode 5 (a
    /// file), refuses names starting with "bad", and counts what it was sent.
    #[derive(Default)]
    struct Fake {
        sent: Mutex<Vec<&'static str>>,
        links: Mutex<u32>,
    }

    impl Backend for Fake {
        async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
            lock(&self.sent).push(req.name());
            match req {
                Q::GetAttr { ino } => Ok(CoordResponse::Attr(Attr {
                    kind: if ino == 1 {
                        FileKind::Dir
                    } else {
                        FileKind::File
                    },
                    nlink: *lock(&self.links),
                    ..crate::dir::dot_attr(ino)
                })),
                Q::Create { name, .. } | Q::Unlink { name, .. } if name.starts_with("bad") => {
                    Err(WireError::new(ErrorCode::Exists, "refused"))
                }
                _ => Ok(CoordResponse::Unit),
            }
        }
        async fn node(&self, _: &str, _: &NodeRequest, _: Duration) -> WireResult<NodeResponse> {
            Err(WireError::invalid("no nodes here"))
        }
    }

    impl Fake {
        fn sent(&self) -> Vec<&'static str> {
            lock(&self.sent).drain(..).collect()
        }
    }

    fn create(name: &str, kind: FileKind) -> CoordRequest {
        Q::Create {
            parent: 1,
            name: name.into(),
            kind,
            perm: 0o755,
            rdev: 0,
            caller: Caller::ROOT,
        }
    }

    async fn getattr<B: Backend>(d: &OwnDirs<B>, ino: u64) -> Attr {
        match d.meta(Q::GetAttr { ino }).await.unwrap() {
            CoordResponse::Attr(a) => a,
            r => panic!("not an Attr: {r:?}"),
        }
    }

    fn setup(ttl: Duration) -> (Arc<Fake>, OwnDirs<Fake>) {
        let f = Arc::new(Fake::default());
        *lock(&f.links) = 2;
        (f.clone(), OwnDirs::new(f, ttl))
    }

    #[tokio::test(start_paused = true)]
    async fn after_our_create_the_parents_getattr_is_answered_here_with_the_change() {
        let (f, d) = setup(TTL);
        assert_eq!(getattr(&d, 1).await.nlink, 2);
        d.meta(create("sub", FileKind::Dir)).await.unwrap();
        let a = getattr(&d, 1).await;
        assert_eq!(a.nlink, 3, "a mkdir adds the parent's link");
        assert!(a.mtime > 0 && a.ctime == a.mtime);
        d.meta(create("file", FileKind::File)).await.unwrap();
        assert_eq!(getattr(&d, 1).await.nlink, 3);
        d.meta(Q::Rmdir {
            parent: 1,
            name: "sub".into(),
        })
        .await
        .unwrap();
        assert_eq!(getattr(&d, 1).await.nlink, 2);
        assert_eq!(f.sent(), ["get_attr", "create", "create", "rmdir"]);
        // A file's attributes are never answered here.
        getattr(&d, 5).await;
        getattr(&d, 5).await;
        assert_eq!(f.sent(), ["get_attr", "get_attr"]);
        // Past the TTL, the coordinator is asked again.
        tokio::time::sleep(TTL).await;
        getattr(&d, 1).await;
        assert_eq!(f.sent(), ["get_attr"]);
    }

    #[tokio::test(start_paused = true)]
    async fn untouched_refused_or_otherwise_changed_directories_are_asked_again() {
        let (f, d) = setup(TTL);
        getattr(&d, 1).await;
        getattr(&d, 1).await;
        assert_eq!(
            f.sent(),
            ["get_attr", "get_attr"],
            "no change of ours: not ours"
        );
        // A refused change is forgotten, not applied.
        assert!(d.meta(create("bad", FileKind::Dir)).await.is_err());
        assert_eq!(getattr(&d, 1).await.nlink, 2);
        assert_eq!(f.sent(), ["create", "get_attr"]);
        // A change this layer cannot apply (here a chmod of the directory) forgets it.
        d.meta(create("f", FileKind::File)).await.unwrap();
        d.meta(Q::SetXattr {
            ino: 1,
            name: "user.k".into(),
            value: vec![],
            mode: dfs_proto::coord_msg::XattrMode::Any,
        })
        .await
        .unwrap();
        getattr(&d, 1).await;
        assert_eq!(f.sent(), ["create", "set_xattr", "get_attr"]);
        // A request that changes no directory (here a sync) keeps what is known.
        d.meta(create("g", FileKind::File)).await.unwrap();
        d.meta(Q::Sync).await.unwrap();
        getattr(&d, 1).await;
        assert_eq!(f.sent(), ["create", "sync"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ttl_of_zero_answers_nothing_here() {
        let (f, d) = setup(Duration::ZERO);
        getattr(&d, 1).await;
        d.meta(create("f", FileKind::File)).await.unwrap();
        getattr(&d, 1).await;
        assert_eq!(f.sent(), ["get_attr", "create", "get_attr"]);
    }
}
