//! A whole cluster in one process: a coordinator (`dfs_coord::run`) and N storage nodes
//! (`dfs_node::run`) on 127.0.0.1 with random ports, real certificates and real QUIC, and
//! the mount's filesystem core ([`Fs`]) over the same `Remote` backend the mount uses —
//! everything but the kernel. Start-up takes well under a second, so end-to-end
//! behaviour (placement, upload, commit, failover, restarts) is tested in seconds.
//!
//! Every test also fails on a WARN or ERROR log line it did not expect (as Neon's tests
//! do): a warning is the system saying something went wrong, and a test that passes
//! while the log says so hides a bug. [`Logs`] captures them for the whole test binary;
//! [`Whole::stop`] checks them.
#![allow(clippy::unwrap_used, dead_code)]

use dfs_coord::{CoordConfig, CoordSettings};
use dfs_fuse::backend::Remote;
use dfs_fuse::fs::{Fs, FsConfig};
use dfs_node::NodeConfig;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// WARN and ERROR lines that are part of normal operation, as substrings:
/// - a client that closes while the coordinator's or a node's handshake with it is still
///   running (tests stop fast) is logged by the server as an aborted handshake;
/// - fuser's ioctl line, should a kernel ever be involved.
const ALWAYS_ALLOWED: &[&str] = &[
    "aborted by peer during the handshake",
    "[Not Implemented] ioctl",
];

/// Every WARN and ERROR event of this test binary, as `LEVEL target: message fields`.
pub struct Logs {
    lines: Mutex<Vec<String>>,
}

static LOGS: OnceLock<&'static Logs> = OnceLock::new();

impl Logs {
    /// Installs the capture (once per binary) and returns it.
    pub fn get() -> &'static Logs {
        LOGS.get_or_init(|| {
            let logs: &'static Logs = Box::leak(Box::new(Logs {
                lines: Mutex::new(Vec::new()),
            }));
            // Also print everything from INFO up, so a failing test shows its story
            // (cargo test shows it only for failures).
            let fmt = tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            let sub = tracing_subscriber::registry().with(Capture(logs)).with(fmt);
            tracing::subscriber::set_global_default(sub).unwrap();
            logs
        })
    }

    /// The lines captured so far that contain none of `allowed` (nor the always-allowed
    /// ones), removing every captured line: each check sees only what came since.
    pub fn take_unexpected(&self, allowed: &[&str]) -> Vec<String> {
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        lines
            .into_iter()
            .filter(|l| !ALWAYS_ALLOWED.iter().chain(allowed).any(|a| l.contains(a)))
            .collect()
    }
}

struct Capture(&'static Logs);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = String::new();
        event.record(&mut Text(&mut text));
        let line = format!("{level} {}: {text}", event.metadata().target());
        self.0.lines.lock().unwrap().push(line);
    }
}

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?} "));
        } else {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }
}

/// A running daemon: how to stop it and its task.
struct Daemon {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    async fn stop(self, what: &str) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap_or_else(|_| panic!("{what} did not stop within 10 s"))
            .unwrap()
            .unwrap_or_else(|e| panic!("{what} failed: {e:#}"));
    }
}

async fn wait_for_file(path: &Path, task: &JoinHandle<anyhow::Result<()>>, what: &str) -> String {
    for _ in 0..1000 {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.trim().is_empty() {
                return s.trim().to_string();
            }
        }
        assert!(!task.is_finished(), "{what} stopped while starting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never wrote {}", path.display());
}

/// The cluster; see the module comment.
pub struct Whole {
    pub dir: tempfile::TempDir,
    pub coord_addr: String,
    coord: Option<Daemon>,
    settings: CoordSettings,
    nodes: Vec<Option<Daemon>>,
    /// WARN/ERROR substrings this test expects (a node it stops, say).
    allowed: Vec<String>,
    /// Clusters of one binary run one at a time: the log capture is process-wide, and a
    /// line must be charged to the test that caused it.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Whole {
    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// A coordinator with `settings` and `n` nodes of 1 GiB each, all registered.
    pub async fn start(n: usize, settings: CoordSettings) -> Whole {
        let logs = Logs::get();
        let serial = SERIAL.lock().await;
        // Lines logged before this cluster started belong to no test of it (an earlier
        // cluster's were checked when it stopped).
        let _ = logs.take_unexpected(&[]);
        let dir = tempfile::tempdir().unwrap();
        dfs_pki::init_dir(&dir.path().join("certs"), "whole", n).unwrap();
        let mut w = Whole {
            dir,
            coord_addr: String::new(),
            coord: None,
            settings,
            nodes: Vec::new(),
            allowed: Vec::new(),
            _serial: serial,
        };
        w.start_coord("127.0.0.1:0").await;
        for k in 1..=n {
            let d = w.start_node(k).await;
            w.nodes.push(Some(d));
        }
        w.wait_for_nodes(n).await;
        w
    }

    async fn start_coord(&mut self, listen: &str) {
        let data = self.dir.path().join("coord");
        let addr_file = data.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let cfg = CoordConfig {
            data: data.clone(),
            listen: listen.parse().unwrap(),
            certs: self.certs(),
            cert_name: "coord".into(),
            settings: self.settings,
            addr_file: Some(addr_file.clone()),
            metrics_listen: None,
            view_listen: None,
            view_token: None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(dfs_coord::run(cfg, async {
            let _ = stopped.await;
        }));
        self.coord_addr = wait_for_file(&addr_file, &task, "the coordinator").await;
        self.coord = Some(Daemon { stop, task });
    }

    async fn start_node(&self, k: usize) -> Daemon {
        let data = self.dir.path().join(format!("node-{k}"));
        let addr_file = self.dir.path().join(format!("node-{k}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let cfg = NodeConfig {
            capacity: Some(1 << 30),
            addr_file: Some(addr_file.clone()),
            // Scrubbing is tested on its own; here it would only add disk reads.
            scrub_rate: 0,
            ..NodeConfig::new(data, &self.coord_addr, self.certs(), format!("node-{k}"))
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(dfs_node::run(cfg, async {
            let _ = stopped.await;
        }));
        wait_for_file(&addr_file, &task, &format!("node {k}")).await;
        Daemon { stop, task }
    }

    /// Waits until the coordinator counts `n` nodes' space (they registered).
    async fn wait_for_nodes(&self, n: usize) {
        let fs = self.mount();
        let want = (n as u64) * (1 << 30) / u64::from(self.settings.replicas.max(1));
        for _ in 0..500 {
            if let Ok(st) = fs.statfs().await {
                if st.capacity >= want {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} nodes never registered");
    }

    /// A new mount's core (its own connections, caches and buffers), as `dfs-fuse` builds
    /// it, with the client certificate.
    pub fn mount(&self) -> Fs<Remote> {
        let tls = dfs_ops::daemon::load_tls(&self.certs(), "client").unwrap();
        let remote = Remote::new(&tls, self.coord_addr.clone(), Duration::from_secs(10)).unwrap();
        Fs::new(std::sync::Arc::new(remote), FsConfig::default())
    }

    /// Lets WARN/ERROR lines containing `text` pass (a failure this test causes).
    pub fn allow(&mut self, text: &str) {
        self.allowed.push(text.to_string());
    }

    /// Stops node `k` (1-based) gracefully.
    pub async fn stop_node(&mut self, k: usize) {
        let d = self.nodes[k - 1].take().expect("node is running");
        d.stop(&format!("node {k}")).await;
    }

    /// Stops the coordinator and starts it again on the same address and data.
    pub async fn restart_coord(&mut self) {
        let d = self.coord.take().expect("coordinator is running");
        d.stop("the coordinator").await;
        let addr = self.coord_addr.clone();
        self.start_coord(&addr).await;
    }

    /// Stops everything, then fails on any unexpected WARN or ERROR line.
    pub async fn stop(mut self) {
        for (k, d) in self.nodes.drain(..).enumerate() {
            if let Some(d) = d {
                d.stop(&format!("node {}", k + 1)).await;
            }
        }
        if let Some(d) = self.coord.take() {
            d.stop("the coordinator").await;
        }
        let allowed: Vec<&str> = self.allowed.iter().map(String::as_str).collect();
        let bad = Logs::get().take_unexpected(&allowed);
        assert!(
            bad.is_empty(),
            "unexpected WARN/ERROR log lines:\n  {}",
            bad.join("\n  ")
        );
    }
}
