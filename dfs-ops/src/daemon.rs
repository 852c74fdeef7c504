//! What every dfs daemon does the same way at start and stop: logging to stderr, the
//! SIGTERM/SIGINT future that starts a graceful shutdown, and loading its certificate.
//! Kept here so that the coordinator, the nodes and the mount cannot drift apart (a
//! log format, a signal one of them forgot, an error message naming the wrong file).

use anyhow::{Context, Result};
use dfs_proto::tls::ClusterTls;
use std::future::Future;
use std::path::Path;
use tracing_subscriber::EnvFilter;

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
