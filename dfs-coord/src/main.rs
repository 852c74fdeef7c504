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
    dfs_ops::daemon::init_logging();
    run_cli(cli)
}
