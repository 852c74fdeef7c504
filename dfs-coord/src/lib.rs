//! The dfs coordinator: the one place that knows the namespace (directories, names,
//! POSIX attributes), which shards make up each file and where they live, and which
//! storage nodes are alive. File *bytes* never pass through it: clients read and write
//! shards on the nodes directly and only tell the coordinator what they did.
//!
//! # Layout
//! - [`config`]: [`CoordSettings`] (replication, shard size, node timeout) and
//!   [`CoordConfig`], plus parsing of `1M` / `5s` style values.
//! - `store`: the redb tables and their postcard-encoded records; every write request is
//!   one transaction, fsynced before the response is sent.
//! - `namespace`: POSIX operations (create, link, unlink, setattr, readdir...) with the
//!   rules Linux applies; `namespace/rename.rs` holds rename, the most intricate one.
//! - `xattr`: extended attributes.
//! - `layout`: file layouts, shard reference counts and locations; `Commit` and truncate.
//! - `registry`: storage nodes, heartbeats, Up/Down, inventories.
//! - `placement`: choosing nodes for new shards, weighted by free space.
//! - [`access`]: the access table, which certificate roles may send which request.
//! - `meta`: the async handle on the store every service is given; `shared`: the lock
//!   handle for in-memory state several services share; `clock`: inode times.
//! - `maint`: what maintenance and the lease protocol remember in memory.
//! - services: `files` (GetLayout, Place, Touch, Commit), `nodes` (Register, Heartbeat,
//!   Inventory, failure detection), `health` (Status, StatFs), `fsck` (the consistency
//!   report and `ReportCorrupt`), `decommission` (DrainNode, RemoveNode, Locate), and
//!   `maintenance`, a pass of `repair` (re-replication after a node is lost, surplus
//!   removal when it returns) and `gc` (deleting shards no file uses, after a grace
//!   period), which reach nodes through [`NodeSender`] (`sender`).
//! - [`coordinator`]: the [`Coordinator`], which wires the services together at
//!   construction and maps each request to one of them.
//! - [`daemon`]: [`run`], which serves it over QUIC with its background loops.
//! - `observe`: [`Observed`], the narrow interface the HTTP endpoints see;
//!   `metrics`: the `--metrics-listen` endpoint's cluster gauges (nodes, space, shards,
//!   under-replicated shards, repair queue).
//! - [`events`]: the ring buffer of recent state changes (nodes down, repairs, GC).
//! - [`view`]: the `--view-listen` live cluster view, a web page and its JSON API.
//! - [`cli`] and [`status`]: the `dfs-coord` command line and its status output.
//! - [`admin`]: the `dfs` administrator's command (status, fsck, where, node drain and
//!   remove), sharing `status`'s output.

//!
//! # Where this differs from a local Linux filesystem
//! - A file replaced by `Rename` is deleted at once even if another client has it open
//!   (the request carries no `keep` flag, unlike `Unlink`).
//! - Orphans (unlinked but open files) of a client that dies without `Release` are
//!   deleted once no `Touch` has named them for `gc_grace` (`gc.rs`, `orphan_pass`).
//! - Shards whose reference count drops to zero keep their copies for `unref_grace` (1
//!   minute by default) before garbage collection deletes them, so freed space comes
//!   back late.
//! - A new file in a set-group-ID directory keeps any set-group-ID bit it was created
//!   with, because the coordinator does not know the caller's supplementary groups.

pub mod access;
pub mod admin;
pub mod cli;
mod clock;
pub mod config;
pub mod coordinator;
pub mod daemon;
mod decommission;
pub mod events;
mod files;
mod fsck;
mod gc;
mod health;
mod layout;
mod maint;
mod maintenance;
mod meta;
mod metrics;
mod namespace;
mod nodes;
pub mod observe;
mod placement;
mod registry;
mod repair;
mod sender;
mod shared;
pub mod status;
mod store;
pub mod view;
mod xattr;

pub use config::{CoordConfig, CoordSettings};
pub use coordinator::Coordinator;
pub use daemon::run;
pub use observe::Observed;
pub use sender::{NodeSender, RpcNodeSender, SendFuture};
