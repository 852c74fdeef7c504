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
//! - [`server`]: the [`Coordinator`] (one `match` over every request) and [`run`], which
//!   serves it over QUIC.
//! - [`maintenance`]: the background pass (and [`NodeSender`], how it reaches nodes) that
//!   drives `repair` (re-replication after a node is lost, surplus removal when it
//!   returns) and `gc` (deleting shards no file uses, after a grace period).
//! - `metrics`: the `--metrics-listen` endpoint's cluster gauges (nodes, space, shards,
//!   under-replicated shards, repair queue).
//! - `fsck`: the `Fsck` consistency report and `ReportCorrupt` from nodes.
//! - `decommission`: draining and removing nodes (`DrainNode`, `RemoveNode`) and
//!   `Locate`, for the `dfs` admin command.
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
pub mod config;
mod decommission;
pub mod events;
mod fsck;
mod gc;
mod layout;
pub mod maintenance;
mod metrics;
mod namespace;
mod placement;
mod registry;
mod repair;
pub mod server;
pub mod status;
mod store;
pub mod view;
mod xattr;

pub use config::{CoordConfig, CoordSettings};
pub use maintenance::{NodeSender, RpcNodeSender, SendFuture};
pub use server::{run, Coordinator};
