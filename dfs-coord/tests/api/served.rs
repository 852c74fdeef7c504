//! A coordinator served with `dfs_coord::run` over real QUIC inside the test process,
//! for the tests that need the network path (mutual TLS, the `dfs` binary, metrics).

use super::*;
use std::path::Path;
use std::time::Duration;

/// A running coordinator: its address, and how to stop it.
pub struct Served {
    pub addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Serves a coordinator with the `coord` certificate of `certs`, its metadata in `data`
/// and default settings; `tweak` changes the configuration first (metrics, view...).
/// Returns once the address file is written, that is once everything is bound.
pub async fn serve(
    certs: &Path,
    data: &Path,
    tweak: impl FnOnce(&mut dfs_coord::CoordConfig),
) -> Served {
    let addr_file = data.join("addr");
    let mut cfg = dfs_coord::CoordConfig {
        data: data.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        certs: certs.to_path_buf(),
        cert_name: "coord".into(),
        settings: CoordSettings::default(),
        addr_file: Some(addr_file.clone()),
        metrics_listen: None,
        view_listen: None,
        view_token: None,
    };
    tweak(&mut cfg);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dfs_coord::run(cfg, async {
        let _ = stopped.await;
    }));
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(&addr_file) {
            return Served {
                addr: s.trim().to_string(),
                stop,
                task,
            };
        }
        assert!(
            !task.is_finished(),
            "the coordinator stopped while starting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the coordinator never wrote its address");
}

impl Served {
    /// Shuts the coordinator down; `run` must return cleanly within 5 s.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("run() returns after shutdown")
            .unwrap()
            .unwrap();
    }
}
