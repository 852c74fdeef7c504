//! `dfs-coord`: parses the command line and runs the chosen subcommand (see `cli.rs`).

use dfs_coord::cli::{run_cli, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dfs-coord: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn try_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::from_env()?;
    // Logs go to stderr so that `status --json` output stays clean on stdout.
    tracing_subscriber::fmt()
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    run_cli(cli)
}
