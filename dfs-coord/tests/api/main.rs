//! Tests of the coordinator through its public API (`Coordinator::handle`), one module
//! per area. Each test opens a fresh in-memory coordinator.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

mod access;
mod cluster_dir;
mod decommission;
mod dfs_cli;
mod layout;
mod maintenance;
mod metrics;
mod namespace;
mod persist;
mod quic;
mod refused;
mod registry;
mod served;
mod view;

use dfs_coord::{CoordSettings, Coordinator};
use dfs_proto::access::Role;
use dfs_proto::coord_msg::*;
use dfs_proto::node_msg::NodeStats;
use dfs_proto::rpc::Peer;
use dfs_proto::{ErrorCode, Ino, NodeId, ShardId, WireResult, ROOT_INO};
use std::sync::Arc;

pub const USER: Caller = Caller {
    uid: 1000,
    gid: 1000,
};

pub struct T {
    pub c: Arc<Coordinator>,
    client: Peer,
    node: Peer,
    admin: Peer,
}

impl Default for T {
    fn default() -> Self {
        T::new()
    }
}

impl T {
    pub fn new() -> T {
        T::with(CoordSettings::default())
    }

    pub fn with(s: CoordSettings) -> T {
        T::wrap(Coordinator::open_in_memory(s).unwrap())
    }

    pub fn wrap(c: Arc<Coordinator>) -> T {
        T {
            c,
            client: Peer {
                addr: "127.0.0.1:1".parse().unwrap(),
                roles: vec![Role::Client],
            },
            node: Peer {
                addr: "127.0.0.1:2".parse().unwrap(),
                roles: vec![Role::Node],
            },
            admin: Peer {
                addr: "127.0.0.1:3".parse().unwrap(),
                roles: vec![Role::Admin],
            },
        }
    }

    pub async fn call(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        self.c.handle(&self.client, req).await
    }

    /// As `dfs-coord status` / `fsck` would: with an admin certificate.
    pub async fn admin_call(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        self.c.handle(&self.admin, req).await
    }

    pub async fn node_call(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        self.c.handle(&self.node, req).await
    }

    pub async fn attr(&self, req: CoordRequest) -> WireResult<Attr> {
        match self.call(req).await? {
            CoordResponse::Attr(a) => Ok(a),
            other => panic!("expected Attr, got {other:?}"),
        }
    }

    pub async fn unit(&self, req: CoordRequest) -> WireResult<()> {
        match self.call(req).await? {
            CoordResponse::Unit => Ok(()),
            other => panic!("expected Unit, got {other:?}"),
        }
    }

    pub async fn create_as(
        &self,
        parent: Ino,
        name: &str,
        kind: FileKind,
        perm: u32,
        caller: Caller,
    ) -> WireResult<Attr> {
        self.attr(CoordRequest::Create {
            parent,
            name: name.into(),
            kind,
            perm,
            rdev: 0,
            caller,
        })
        .await
    }

    pub async fn file(&self, parent: Ino, name: &str) -> Attr {
        self.create_as(parent, name, FileKind::File, 0o644, USER)
            .await
            .unwrap()
    }

    pub async fn mkdir(&self, parent: Ino, name: &str) -> Attr {
        self.create_as(parent, name, FileKind::Dir, 0o755, USER)
            .await
            .unwrap()
    }

    pub async fn getattr(&self, ino: Ino) -> WireResult<Attr> {
        self.attr(CoordRequest::GetAttr { ino }).await
    }

    pub async fn lookup(&self, parent: Ino, name: &str) -> WireResult<Attr> {
        self.attr(CoordRequest::Lookup {
            parent,
            name: name.into(),
        })
        .await
    }

    pub async fn setattr(&self, ino: Ino, set: SetAttrs) -> WireResult<Attr> {
        self.attr(CoordRequest::SetAttr {
            ino,
            caller: USER,
            set,
        })
        .await
    }

    pub async fn readdir(&self, ino: Ino, after: Option<&str>, limit: u32) -> WireResult<DirPage> {
        match self
            .call(CoordRequest::ReadDir {
                ino,
                after: after.map(String::from),
                limit,
            })
            .await?
        {
            CoordResponse::Dir(d) => Ok(d),
            other => panic!("expected Dir, got {other:?}"),
        }
    }

    pub async fn names(&self, ino: Ino) -> Vec<String> {
        self.readdir(ino, None, 1000)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    /// Registers node `id` with `free` bytes free (and as much capacity).
    pub async fn register(&self, id: u64, free: u64) {
        let r = self
            .node_call(CoordRequest::Register {
                node: NodeId(id),
                addr: format!("127.0.0.1:{}", 7000 + id),
                stats: stats(free),
            })
            .await
            .unwrap();
        assert!(matches!(r, CoordResponse::Registered { .. }), "{r:?}");
    }

    pub async fn place(&self, shards: Vec<(ShardId, u32)>) -> WireResult<Vec<Placement>> {
        match self.call(CoordRequest::Place { shards }).await? {
            CoordResponse::Placements(p) => Ok(p),
            other => panic!("expected Placements, got {other:?}"),
        }
    }

    pub async fn commit(
        &self,
        ino: Ino,
        size: u64,
        shards: Vec<CommitShard>,
        caller: Caller,
    ) -> WireResult<Attr> {
        self.attr(CoordRequest::Commit {
            ino,
            size,
            mtime: 42,
            shards,
            caller,
            set: SetAttrs::default(),
        })
        .await
    }

    pub async fn layout(&self, ino: Ino, from: u64, limit: u32) -> WireResult<Layout> {
        match self
            .call(CoordRequest::GetLayout { ino, from, limit })
            .await?
        {
            CoordResponse::Layout(l) => Ok(l),
            other => panic!("expected Layout, got {other:?}"),
        }
    }

    pub async fn status(&self) -> ClusterStatus {
        match self.admin_call(CoordRequest::Status).await.unwrap() {
            CoordResponse::Status(s) => s,
            other => panic!("expected Status, got {other:?}"),
        }
    }
}

pub fn stats(free: u64) -> NodeStats {
    NodeStats {
        capacity: free,
        used: 0,
        free,
        shards: 0,
    }
}

/// The error code of a failed call (panics on success).
pub fn code<V: std::fmt::Debug>(r: WireResult<V>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code,
    }
}

/// A commit entry for shard content `data` at `index`, stored on `nodes`.
pub fn cshard(index: u64, data: &[u8], nodes: &[u64]) -> CommitShard {
    CommitShard {
        index,
        id: ShardId::of(data),
        len: data.len() as u32,
        shard_len: data.len() as u32,
        stored_on: nodes.iter().map(|n| NodeId(*n)).collect(),
    }
}

pub const ROOT: Ino = ROOT_INO;
