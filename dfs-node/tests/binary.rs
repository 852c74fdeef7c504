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
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
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

#[test]
fn scrubber_flags_find_and_delete_a_corrupt_shard() {
    use dfs_node::shard_store::ShardStore;
    use dfs_proto::ShardId;
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("d");
    // Two shards written through the library, then one damaged on disk.
    let (good, bad) = (vec![7u8; 1000], vec![9u8; 2000]);
    let bad_path = {
        let store = ShardStore::open(&dir, Some(1 << 30), 0).unwrap();
        store.put(ShardId::of(&good), &good).unwrap();
        store.put(ShardId::of(&bad), &bad).unwrap();
        let hex = ShardId::of(&bad).to_hex();
        dir.join("shards")
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(hex)
    };
    let mut raw = std::fs::read(&bad_path).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    std::fs::write(&bad_path, raw).unwrap();

    let p = |x: &Path| x.to_str().unwrap().to_string();
    let child = node(&[
        "--data",
        &p(&dir),
        "--coord",
        "127.0.0.1:9",
        "--certs",
        &p(certs.path()),
        "--cert-name",
        "node-1",
        "--capacity",
        "1G",
        "--scrub-rate",
        "1G",
        "--scrub-interval",
        "1h",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while bad_path.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Leave the pass a moment to log its summary after the delete.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    let text = describe(&out);
    assert!(!bad_path.exists(), "corrupt shard not deleted\n{text}");
    assert!(
        text.contains("(block 0 failed verification); deleted the copy and reported it"),
        "{text}"
    );
    assert!(
        text.contains("scrub pass complete: 2 shards, 1000 bytes verified, 1 corrupt"),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
fn notifies_the_service_manager_when_serving() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    // An abstract socket, as systemd uses in containers: NOTIFY_SOCKET starts with '@'.
    let name = format!("dfs-node-test-{}", std::process::id());
    let sock =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let child = node(&[
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
    ])
    .env("NOTIFY_SOCKET", format!("@{name}"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut buf = [0u8; 64];
    let first = sock.recv(&mut buf).map(|n| buf[..n].to_vec());
    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let second = sock.recv(&mut buf).map(|n| buf[..n].to_vec());
    let out = child.wait_with_output().unwrap();
    let text = describe(&out);
    assert_eq!(first.unwrap(), b"READY=1", "{text}");
    assert_eq!(second.unwrap(), b"STOPPING=1", "{text}");
    assert!(out.status.success(), "{text}");
}

#[test]
fn config_file_sets_flags_the_command_line_overrides_and_mistakes_are_named() {
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let addr_file = data.path().join("addr");
    let config = data.path().join("node.toml");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "data = {:?}\ncoord = \"127.0.0.1:9\"\ncerts = {:?}\ncert_name = \"node-1\"\n\
             capacity = \"2G\"\naddr_file = {:?}\n",
            p(&data.path().join("d")),
            p(certs.path()),
            p(&addr_file)
        ),
    )
    .unwrap();
    // Everything from the file except the capacity, which the command line overrides.
    let mut child = node(&["--config", &p(&config), "--capacity", "1G"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&addr_file, &mut child);
    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let text = describe(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("capacity=1073741824"), "{text}");

    // A bad value: one line naming the file, the key and the problem.
    std::fs::write(&config, "scrub_rate = \"fast\"\n").unwrap();
    let out = node(&["--config", &p(&config)]).output().unwrap();
    let text = describe(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        stderr.trim(),
        format!(
            "dfs-node: {}: key `scrub_rate`: bad value \"fast\": \"fast\" is not a size (try 4096, 512M or 10G)",
            config.display()
        ),
        "{text}"
    );
}
