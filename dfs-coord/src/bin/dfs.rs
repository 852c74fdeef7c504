//! `dfs`: the administrator's command line (see `dfs-coord/src/admin.rs`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    dfs_coord::admin::main(dfs_coord::admin::Cli::parse())
}
