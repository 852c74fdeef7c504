//! `dfs`, the administrator's command: what the cluster looks like (`status`, `fsck`), where
//! a file's shards are (`where`), and taking a node out of service (`node drain`,
//! `node remove`). Tables for people, `--json` for scripts.
//!
//! # Layout
//! - [`cluster_dir`]: finding the certificates and the coordinator's address from a
//!   cluster directory (`--cluster`, `$DFS_CLUSTER`, `/etc/dfs`).
//! - [`conn`]: the connection to the coordinator and what failures mean for exit codes.
//! - [`locate`]: `dfs where PATH`.
//! - [`drain`]: `dfs node drain` (with its progress bar) and `dfs node remove`.
//! - `status` and `fsck` print with the same code as `dfs-coord status/fsck`
//!   (`crate::status`), so both commands' JSON stays one contract.
//!
//! # Exit codes
//! 0 success (fsck: healthy); 1 fsck: some shards have fewer copies than wanted; 2 fsck:
//! some shards have no readable copy; 3 could not run (no cluster directory, certificate
//! or address; the coordinator did not answer or failed); 4 the coordinator refused (no
//! such file or node, removal of the only copies, not an admin certificate); 5 `node
//! drain --timeout` passed before the drain finished.

pub mod cluster_dir;
pub mod conn;
pub mod drain;
pub mod locate;

use crate::status::{fsck_exit_code, render_fsck, render_fsck_json, render_json, render_table};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cluster_dir::{choose_dir, ClusterDir};
use conn::{exit_code, unexpected, Admin, EXIT_COULD_NOT_RUN, SCAN_DEADLINE};
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "dfs",
    version,
    about = "Administer a dfs cluster: status, fsck, where a file's shards are, draining \
             and removing nodes",
    after_help = "The cluster directory holds certs/ (ca.crt, admin.crt, admin.key) and the \
                  coordinator's address: coord/addr, else a PORT= line in cluster.conf \
                  (127.0.0.1:PORT), else coord-addr.\n\nExit codes: 0 ok; 1 fsck: data at \
                  risk; 2 fsck: data missing; 3 could not run; 4 refused by the \
                  coordinator (not found, not permitted); 5 drain --timeout reached."
)]
pub struct Cli {
    /// Cluster directory [default: $DFS_CLUSTER, else /etc/dfs].
    #[arg(long, global = true, value_name = "DIR")]
    pub cluster: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Nodes (address, state, capacity, usage, shards), totals, under-replicated shards
    /// and repair progress.
    Status,
    /// Check the shard map. Exit code 0: healthy; 1: some shards have fewer copies than
    /// wanted; 2: some have no readable copy.
    Fsck,
    /// Each shard of a file: offset, length, ID and the nodes holding a copy. PATH is a
    /// path inside the filesystem (`/dir/file`) or through a local dfs mount.
    Where { path: String },
    /// Take a node out of service.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Stop placing data on the node and copy its shards elsewhere; wait (with a
    /// progress bar on stderr) until it holds no shard a file uses.
    Drain {
        /// Node id (16 hex digits, or a unique prefix).
        id: String,
        /// Start the drain and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (exit code 5; the drain goes on).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Forget the node: its copies no longer count and it may not register again.
    /// Refused while it holds the only copy of some shard, unless --force.
    Remove {
        /// Node id (16 hex digits, or a unique prefix).
        id: String,
        /// Remove even if shards lose their only copy (their data is then missing).
        #[arg(long)]
        force: bool,
    },
}

/// Runs `dfs` and returns its exit code; errors are printed here, once.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dfs: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let env = std::env::var_os("DFS_CLUSTER");
    let dir = choose_dir(cli.cluster.as_deref(), env.as_deref());
    let cluster = ClusterDir::open(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let admin = Admin::new(&cluster)?;
        let r = command(&admin, cli.command, cli.json).await;
        // Say goodbye: a process that just exits leaves the coordinator waiting for it
        // (see `RpcClient::close`).
        admin.close().await;
        r
    })
}

async fn command(admin: &Admin, command: Command, json: bool) -> Result<u8> {
    match command {
        Command::Status => {
            let st = admin.status().await?;
            if json {
                println!("{}", render_json(&st));
            } else {
                print!("{}", render_table(&st));
            }
            Ok(0)
        }
        Command::Fsck => {
            let report = match admin.ask(CoordRequest::Fsck, SCAN_DEADLINE).await {
                Ok(CoordResponse::Fsck(r)) => r,
                Ok(other) => return Err(unexpected("Fsck", &other)),
                // fsck's exit codes 1 and 2 describe the data: any failure to check is 3,
                // even a refusal.
                Err(e) => {
                    eprintln!("dfs: {e:#}");
                    return Ok(EXIT_COULD_NOT_RUN);
                }
            };
            if json {
                println!("{}", render_fsck_json(&report));
            } else {
                print!("{}", render_fsck(&report));
            }
            Ok(fsck_exit_code(&report))
        }
        Command::Where { path } => {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let inside = locate::fs_path(&path, &cwd, &mounts);
            let map = locate::file_map(admin, &inside).await?;
            if json {
                println!("{}", locate::render_json(&map));
            } else {
                print!("{}", locate::render_table(&map));
            }
            Ok(0)
        }
        Command::Node {
            command:
                NodeCommand::Drain {
                    id,
                    no_wait,
                    timeout,
                },
        } => {
            let o = drain::DrainOptions {
                wait: !no_wait,
                timeout: timeout.map(Duration::from_secs),
                interval: Duration::from_secs(1),
                json,
            };
            drain::drain(admin, &id, &o).await
        }
        Command::Node {
            command: NodeCommand::Remove { id, force },
        } => drain::remove(admin, &id, force, json).await,
    }
}
