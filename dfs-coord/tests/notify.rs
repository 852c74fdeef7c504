//! The real `dfs-coord serve` tells a service manager when it serves and when it stops:
//! `READY=1` once it answers requests, `STOPPING=1` on SIGTERM (systemd `Type=notify`).

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => format!("<nothing received: {e}>"),
    }
}

#[test]
fn serve_notifies_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(&dir.path().join("certs"), "t", 0).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let addr_file = dir.path().join("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_dfs-coord"))
        .arg("serve")
        .arg("--data")
        .arg(dir.path().join("coord"))
        .arg("--certs")
        .arg(dir.path().join("certs"))
        .args(["--listen", "127.0.0.1:0", "--replicas", "1"])
        .arg("--addr-file")
        .arg(&addr_file)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let first = recv(&sock);
    // READY comes after the address is written: whoever waits for READY can dial.
    let addr_written = addr_file.exists();
    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let second = recv(&sock);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(first, "READY=1", "{log}");
    assert!(addr_written, "READY before the address file\n{log}");
    assert_eq!(rc, 0);
    assert_eq!(second, "STOPPING=1", "{log}");
    assert!(out.status.success(), "{:?}\n{log}", out.status);
}
