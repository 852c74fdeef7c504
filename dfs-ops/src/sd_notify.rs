//! systemd readiness notification (`Type=notify`), written out rather than pulled in.
//!
//! With `Type=simple`, systemd considers a service started the moment it has forked it, so
//! units ordered `After=` it (a node after its coordinator, a mount after the network)
//! start while it is still opening its database or binding its port. With `Type=notify`,
//! systemd passes the path of a unix datagram socket in `$NOTIFY_SOCKET` and waits for the
//! daemon to send `READY=1` there. The protocol is one datagram of `KEY=VALUE` lines:
//! that is all `sd_notify(3)` does, so a dozen lines of std replace a library.
//!
//! A path starting with `@` names a socket in Linux's *abstract* namespace (no file on
//! disk; systemd uses those in containers): the `@` stands for a leading NUL byte.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The daemon serves: `After=` units may start now.
pub const READY: &str = "READY=1";
/// The daemon is shutting down on request (systemd then does not treat the exit as a
/// crash).
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` (e.g. [`READY`]) to the socket named by `$NOTIFY_SOCKET`. Returns
/// `Ok(false)` when the variable is unset, that is when nothing supervises us this way.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) if !path.is_empty() => notify_to(&path, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` and logs (at debug level) instead of failing: a daemon must not stop
/// serving because its supervisor's socket went away.
pub fn notify_or_log(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!("told the service manager {state}"),
        Ok(false) => {}
        Err(e) => tracing::warn!("failed to notify the service manager ({state}): {e}"),
    }
}

/// Sends `state` to the unix datagram socket at `socket` (a path, or `@name` for an
/// abstract socket).
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            sock.send_to_addr(state.as_bytes(), &SocketAddr::from_abstract_name(name)?)?
        }
        None => sock.send_to(state.as_bytes(), socket)?,
    };
    if sent != state.len() {
        return Err(io::Error::other("notification datagram was truncated"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn path_socket_receives_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), READY).unwrap();
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn abstract_socket_receives_the_state() {
        let name = format!("dfs-test-notify-{}", std::process::id());
        let sock =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        notify_to(OsStr::new(&format!("@{name}")), STOPPING).unwrap();
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn missing_socket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(notify_to(dir.path().join("nobody").as_os_str(), READY).is_err());
    }
}
