//! What every dfs daemon does the same way at start and stop: logging to stderr, the
//! SIGTERM/SIGINT future that starts a graceful shutdown, loading its certificate, and
//! its async runtime.
//! Kept here so that the coordinator, the nodes and the mount cannot drift apart (a
//! log format, a signal one of them forgot, an error message naming the wrong file).

use anyhow::{Context, Result};
use dfs_proto::tls::ClusterTls;
use std::future::Future;
use std::path::Path;
use tracing_subscriber::EnvFilter;

/// The async runtime of a daemon: one worker thread unless `TOKIO_WORKER_THREADS` says
/// otherwise, with tokio's blocking pool beside it for disk work and long scans.
///
/// Why one: a metadata round trip is mostly waking processes up. Measured on the 2-core
/// benchmark machine (`mkdir` + `rmdir` through a mount, release build): with tokio's
/// default of one worker per core the coordinator made 12 context switches and spent
/// 385 µs of CPU per operation (650 µs wall), as idle workers woke to steal each
/// packet's task from each other; with one worker, 3 switches, 226 µs and 434 µs wall.
/// Streams: an A/B of the worker count alone (fresh cluster per run, 256 MiB of fresh
/// random data, 4 runs each) gave the same sequential write (median 141 MB/s with one
/// worker, 139 with two) and cold reads ~6 % slower with one (247 against 262 MB/s), while
/// the mount still hashed shards on its worker; with that hashing moved to the blocking
/// pool (`shard_io.rs`), reads with one worker came to ~268 MB/s. The nodes, too, hash and
/// write shards on the blocking pool.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Sends log lines to stderr, at the level `RUST_LOG` asks for (`info` by default).
/// Stderr, so that stdout stays free for output a script reads (`status --json`); colour
/// codes only when a person is watching, not in journald or a log file.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = std::io::stderr();
    // `try_init`: a second call (a test that starts two daemons in one process) keeps the
    // first subscriber instead of panicking.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&stderr))
        .try_init();
}

/// A future that resolves on SIGTERM (systemd, `kill`) or SIGINT (Ctrl-C), logging which.
/// The handlers are installed when this is *called*, before the daemon starts serving, so
/// a signal that arrives during start-up is not lost (without a handler, SIGTERM's
/// default action would kill the process mid-start). Must be called inside a tokio
/// runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("received {name}, shutting down");
    })
}

/// Loads this process's certificate `NAME.crt`/`NAME.key` and the cluster CA from
/// `certs`, with an error that names both, so a wrong `--cert-name` or `--certs` is
/// obvious from the message alone.
pub fn load_tls(certs: &Path, name: &str) -> Result<ClusterTls> {
    ClusterTls::load_dir(certs, name)
        .with_context(|| format!("load certificate {name:?} from {}", certs.display()))
}
