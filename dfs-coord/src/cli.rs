//! The `dfs-coord` command line: creating certificates, serving, and asking a running
//! coordinator for its status.

use crate::config::{parse_duration, parse_size, CoordConfig, CoordSettings};
use crate::status::{fsck_exit_code, render_fsck, render_fsck_json, render_json, render_table};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "dfs-coord",
    version,
    about = "dfs coordinator: namespace, file layouts and the storage-node registry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the `Serve` variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a cluster CA and certificates for a coordinator, N nodes, a client and an admin.
    Init {
        /// Directory for the certificates (created if missing; existing files are kept).
        #[arg(long)]
        certs: PathBuf,
        /// Number of node certificates to create (node-1 .. node-N).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Name written into the CA certificate.
        #[arg(long, default_value = "dfs")]
        cluster_name: String,
    },
    /// Issue one more certificate signed by the cluster CA.
    Issue {
        /// Directory holding ca.crt and ca.key.
        #[arg(long)]
        certs: PathBuf,
        /// What the holder may act as: node, client, admin or coord.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// File name of the certificate (NAME.crt / NAME.key).
        #[arg(long)]
        name: String,
    },
    /// Revoke a certificate: append its fingerprint to DIR/revoked. Running servers that
    /// read that file (copy it to every server's certificate directory) refuse the
    /// certificate from their next handshake or request on; no restart is needed.
    Revoke {
        /// Directory holding NAME.crt and the deny list `revoked`.
        #[arg(long)]
        certs: PathBuf,
        /// Certificate to revoke (NAME.crt).
        name: String,
    },
    /// Run the coordinator until SIGTERM or SIGINT.
    Serve {
        /// TOML file setting any of the flags below, keys spelt with underscores
        /// (`node_timeout = "5s"`); flags on the command line win [default:
        /// /etc/dfs/coord.toml, if it exists].
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Directory for the metadata store (meta.redb).
        #[arg(long)]
        data: PathBuf,
        /// Certificate directory.
        #[arg(long)]
        certs: PathBuf,
        /// Certificate to serve with (NAME.crt / NAME.key in the certificate directory).
        #[arg(long, default_value = "coord")]
        cert_name: String,
        /// Address to listen on (UDP, QUIC). Port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: SocketAddr,
        /// Copies kept of every shard.
        #[arg(long, default_value_t = 2)]
        replicas: u32,
        /// Copies a write needs to succeed [default: same as --replicas].
        #[arg(long)]
        min_copies: Option<u32>,
        /// Shard size (K, M suffixes), fixed when the cluster is created.
        #[arg(long, default_value = "1M", value_parser = parse_shard_size)]
        shard_size: u32,
        /// Silence after which a node is marked down (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s", value_parser = parse_dur)]
        node_timeout: Duration,
        /// How long a node may be down before its shards are copied elsewhere (e.g. 5m,
        /// 30s). Shorter repairs sooner but also copies data for nodes that only restart.
        #[arg(long, default_value = "5m", value_parser = parse_dur)]
        repair_grace: Duration,
        /// How long a shard no file uses is kept before its copies are deleted. Must be
        /// longer than any write takes from storing shards to committing them. Also how
        /// long a file unlinked while open outlives a mount that stops renewing it.
        #[arg(long, default_value = "10m", value_parser = parse_dur)]
        gc_grace: Duration,
        /// How long the shards of overwritten, truncated or deleted content are kept
        /// before their copies are deleted (readers with an older layout may still ask).
        #[arg(long, default_value = "1m", value_parser = parse_dur)]
        unref_grace: Duration,
        /// Acknowledge every change only once it is fsynced (strict mode, like an NFS
        /// `sync` export; concurrent changes share fsyncs). Without it a change is
        /// acknowledged once it is in the metadata log: it survives a crash of the
        /// coordinator, and a power loss can lose at most the last few milliseconds of
        /// changes that no client fsynced (docs/SEMANTICS.md).
        #[arg(long)]
        durable_close: bool,
        /// Accepted for old command lines and ignored: namespace changes are now logged
        /// before they are acknowledged and fsynced in groups by default.
        #[arg(long, hide = true)]
        lazy_namespace_sync: bool,
        /// Most bytes per second re-replication may copy in total (K, M, G suffixes), so
        /// client I/O keeps going during a repair.
        #[arg(long, default_value = "64M", value_parser = parse_size)]
        repair_rate: u64,
        /// How often repair and garbage collection run.
        #[arg(long, default_value = "2s", value_parser = parse_dur)]
        maintenance_interval: Duration,
        /// Write the bound address to this file once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Serve Prometheus metrics at http://ADDR/metrics (plain TCP, no TLS: pick an
        /// address only your monitoring reaches), e.g. 127.0.0.1:9100 [default: off].
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// Serve the live cluster view, a web page, at http://ADDR/ (plain TCP). Only a
        /// loopback address unless --view-token-file is set, e.g. 127.0.0.1:7080
        /// [default: off].
        #[arg(long, value_name = "ADDR")]
        view_listen: Option<SocketAddr>,
        /// File holding the token the cluster view requires (`Authorization: Bearer
        /// TOKEN` or `?token=TOKEN`), needed to bind a non-loopback address [default: no
        /// token].
        #[arg(long, value_name = "PATH")]
        view_token_file: Option<PathBuf>,
    },
    /// Show the nodes of a running cluster and its replication state.
    Status {
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Check the shard map. Exit code 0: every shard has all its copies; 1: some have
    /// fewer (data at risk); 2: some have none on a live node (data missing); 3: the
    /// check could not run.
    Fsck {
        #[command(flatten)]
        conn: AdminConn,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?} (node, client, admin or coord)"))
}

fn parse_shard_size(s: &str) -> Result<u32, String> {
    let n = parse_size(s).map_err(|e| format!("{e:#}"))?;
    u32::try_from(n).map_err(|_| format!("shard size {s:?} is too large"))
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("{e:#}"))
}

fn list_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How an administrative subcommand reaches a running coordinator, and how it prints.
#[derive(clap::Args, Debug)]
pub struct AdminConn {
    /// Coordinator address (host:port).
    #[arg(long)]
    coord: String,
    /// Certificate directory.
    #[arg(long)]
    certs: PathBuf,
    /// Certificate to connect with.
    #[arg(long, default_value = "admin")]
    cert_name: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl AdminConn {
    /// Sends one request to the coordinator and returns its answer.
    fn ask(&self, req: CoordRequest, deadline: Duration) -> Result<CoordResponse> {
        let (coord, cert_name) = (&self.coord, &self.cert_name);
        runtime()?.block_on(async {
            let tls = dfs_ops::daemon::load_tls(&self.certs, cert_name)?;
            let client = RpcClient::new(client_endpoint(&tls)?, Role::Coord);
            let r = client
                .call(coord, &req, deadline)
                .await
                .with_context(|| format!("ask {coord} for {req:?}"));
            // A process that just exits leaves the coordinator waiting for it.
            client.close().await;
            r
        })
    }
}

/// Where `dfs-coord serve` looks for its configuration file when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/dfs/coord.toml";

impl Cli {
    /// Parses the process's command line; for `serve`, merged over its configuration file
    /// (see `dfs_ops::config_file`). Exits with clap's message on a bad flag.
    pub fn from_env() -> Result<Cli> {
        use clap::CommandFactory;
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let serve = Cli::command().find_subcommand("serve").cloned();
        let argv = match serve {
            Some(serve) if argv.get(1).is_some_and(|a| a == "serve") => {
                dfs_ops::config_file::merge_config(&serve, argv, 2, Path::new(DEFAULT_CONFIG))?
            }
            _ => argv,
        };
        Ok(Cli::parse_from(argv))
    }
}

/// Runs one subcommand and returns the process exit code.
pub fn run_cli(cli: Cli) -> Result<ExitCode> {
    if let Command::Fsck { conn } = &cli.command {
        // fsck's exit codes carry meaning for scripts, so its own failure gets a distinct
        // one instead of the generic 1 ("data at risk").
        return Ok(match fsck(conn) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("dfs-coord fsck: {e:#}");
                ExitCode::from(3)
            }
        });
    }
    run_command(cli.command).map(|()| ExitCode::SUCCESS)
}

/// Asks the coordinator for an fsck report, prints it, and returns the exit code.
fn fsck(conn: &AdminConn) -> Result<u8> {
    // A scan of the whole shard map: give it longer than an ordinary request.
    let CoordResponse::Fsck(report) = conn.ask(CoordRequest::Fsck, Duration::from_secs(120))?
    else {
        bail!("unexpected response to Fsck from {}", conn.coord);
    };
    if conn.json {
        println!("{}", render_fsck_json(&report));
    } else {
        print!("{}", render_fsck(&report));
    }
    Ok(fsck_exit_code(&report))
}

fn run_command(command: Command) -> Result<()> {
    match command {
        // Handled by `run_cli`.
        Command::Fsck { .. } => Ok(()),
        Command::Init {
            certs,
            nodes,
            cluster_name,
        } => {
            let before = list_files(&certs);
            pki::init_dir(&certs, &cluster_name, nodes)
                .with_context(|| format!("initialise certificates in {}", certs.display()))?;
            let created: Vec<String> = list_files(&certs).difference(&before).cloned().collect();
            if created.is_empty() {
                println!(
                    "nothing to do: all certificates exist in {}",
                    certs.display()
                );
            } else {
                println!("created in {}:", certs.display());
                for f in created {
                    println!("  {f}");
                }
                println!("keep ca.key off the servers once all certificates are issued");
            }
            Ok(())
        }
        Command::Issue { certs, role, name } => {
            pki::issue(&certs, role, &name)
                .with_context(|| format!("issue certificate {name:?}"))?;
            println!(
                "created {}/{name}.crt and {name}.key (role {})",
                certs.display(),
                role.san()
            );
            Ok(())
        }
        Command::Revoke { certs, name } => {
            let fp = dfs_proto::revocation::revoke(&certs, &name)
                .with_context(|| format!("revoke certificate {name:?}"))?;
            println!(
                "revoked {name} (sha256 {fp}) in {}; copy it to every server's certificate \
                 directory",
                certs.join(dfs_proto::revocation::FILE_NAME).display()
            );
            Ok(())
        }
        Command::Serve {
            config: _,
            data,
            certs,
            cert_name,
            listen,
            replicas,
            min_copies,
            shard_size,
            node_timeout,
            repair_grace,
            gc_grace,
            unref_grace,
            durable_close,
            lazy_namespace_sync,
            repair_rate,
            maintenance_interval,
            addr_file,
            metrics_listen,
            view_listen,
            view_token_file,
        } => {
            let settings = CoordSettings {
                replicas,
                min_copies: min_copies.unwrap_or(replicas),
                shard_size,
                node_timeout,
                repair_grace,
                gc_grace,
                unref_grace,
                durable_close,
                repair_rate,
                maintenance_interval,
            };
            if lazy_namespace_sync {
                tracing::info!(
                    "--lazy-namespace-sync is the default now (changes are logged, then \
                     fsynced in groups); the flag is ignored"
                );
            }
            if settings.min_copies > replicas || settings.min_copies == 0 {
                bail!("--min-copies must be between 1 and --replicas ({replicas})");
            }
            let cfg = CoordConfig {
                data,
                listen,
                certs,
                cert_name,
                settings,
                addr_file,
                metrics_listen,
                view_listen,
                view_token: view_token_file.as_deref().map(read_token).transpose()?,
            };
            dfs_ops::daemon::runtime("dfs-coord")?.block_on(async {
                let shutdown = dfs_ops::daemon::shutdown_signal()?;
                crate::run(cfg, shutdown).await
            })
        }
        Command::Status { conn } => {
            let CoordResponse::Status(st) =
                conn.ask(CoordRequest::Status, Duration::from_secs(10))?
            else {
                bail!("unexpected response to Status from {}", conn.coord);
            };
            if conn.json {
                println!("{}", render_json(&st));
            } else {
                print!("{}", render_table(&st));
            }
            Ok(())
        }
    }
}

/// Reads the cluster view's token: the file's first line, trimmed (a trailing newline
/// from `echo` is not part of it).
fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the view token from {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        bail!("the view token file {} is empty", path.display());
    }
    Ok(token)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn example_config_file_parses() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/coord.toml");
        let serve = Cli::command().find_subcommand("serve").cloned().unwrap();
        let argv = dfs_ops::config_file::merge_config(
            &serve,
            vec![
                "dfs-coord".into(),
                "serve".into(),
                "--replicas".into(),
                "3".into(),
            ],
            2,
            Path::new(example),
        )
        .unwrap();
        let Command::Serve {
            listen,
            replicas,
            repair_rate,
            ..
        } = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not serve");
        };
        assert_eq!(listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!((replicas, repair_rate), (3, 64 << 20));
    }
}
