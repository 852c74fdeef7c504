//! The `dfs-node` binary: parse flags, set up logging, run the node until SIGTERM/SIGINT.

use dfs_node::config::Args;
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn try_main() -> anyhow::Result<()> {
    let args = Args::from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr (stdout stays free for output a script may want), coloured only
    // when a person is watching.
    let stderr = std::io::stderr();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&stderr))
        .init();
    // Install the handlers before starting, so an early signal is not lost.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("received {name}, shutting down");
    };
    dfs_node::run(args.into_config(), shutdown).await
}
