//! The `dfs-node` binary: parse flags, set up logging, run the node until SIGTERM/SIGINT.

use dfs_node::config::Args;
use std::process::ExitCode;

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<()> {
    let args = Args::from_env()?;
    dfs_ops::daemon::init_logging();
    dfs_ops::daemon::runtime("dfs-node")?.block_on(async {
        let shutdown = dfs_ops::daemon::shutdown_signal()?;
        dfs_node::run(args.into_config(), shutdown).await
    })
}
