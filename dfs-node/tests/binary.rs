//! The real `dfs-node` binary: starts, announces its address, stops cleanly on SIGTERM, and
//! fails with a one-line message and exit status 1 on bad setup.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn node(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dfs-node"));
    c.args(args).env("RUST_LOG", "info");
    c
}

/// On failure, show what the process said: a bare assertion tells nothing.
fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_for_file(path: &Path, child: &mut Child) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("dfs-node exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn starts_and_stops_on_sigterm() {
    let certs = tempfile::tempdir().unwrap();
    dfs_proto::pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let addr_file = data.path().join("addr");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let mut child = node(&[
        "--data",
        &p(&data.path().join("d")),
        "--coord",
        "127.0.0.1:9",
        "--certs",
        &p(certs.path()),
        "--cert-name",
        "node-1",
        "--capacity",
        "1G",
        "--addr-file",
        &p(&addr_file),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let addr = wait_for_file(&addr_file, &mut child);
    assert!(addr.trim().starts_with("127.0.0.1:"), "{addr:?}");
    assert!(data.path().join("d/node.id").exists());

    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    let text = describe(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("dfs-node started"), "{text}");
    assert!(text.contains("capacity=1073741824"), "{text}");
    assert!(text.contains("received SIGTERM"), "{text}");
}

#[test]
fn bad_setup_exits_1_with_one_line() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let out = node(&[
        "--data",
        d,
        "--coord",
        "127.0.0.1:9",
        "--certs",
        "/nonexistent",
        "--cert-name",
        "node-1",
    ])
    .output()
    .unwrap();
    let text = describe(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("dfs-node: load certificate"), "{text}");
    assert_eq!(stderr.lines().count(), 1, "{text}");
}
