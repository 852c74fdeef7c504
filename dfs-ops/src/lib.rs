//! Operations plumbing shared by the dfs daemons (`dfs-coord serve`, `dfs-node`,
//! `dfs-fuse`): what a process needs to run as a managed service, as opposed to what it
//! needs to speak the protocol (that is `dfs-proto`).
//!
//! # Layout
//! - [`daemon`]: logging, the shutdown signal and certificate loading, the same in every
//!   daemon.
//! - [`durable`]: crash-safe file writes (fsync, rename, fsync the directory), in one
//!   place.
//! - [`sd_notify`]: telling systemd (or any supervisor that sets `NOTIFY_SOCKET`) that the
//!   daemon is ready, or stopping.
//! - [`config_file`]: TOML files whose keys are the daemon's flags, merged under the
//!   command line.
//! - [`http`]: a tiny HTTP/1.0 server (one `GET` per connection, capped head) for the
//!   plain-TCP endpoints below and the coordinator's cluster view.
//! - [`metrics`]: counters, gauges and histograms in the Prometheus text format, and
//!   [`metrics::http`], the `GET /metrics` endpoint.
//! - [`rpc_metrics`]: per-request metrics for the QUIC servers, as a handler wrapper.

pub mod config_file;
pub mod daemon;
pub mod durable;
pub mod http;
pub mod metrics;
pub mod rpc_metrics;
pub mod sd_notify;
pub mod units;
