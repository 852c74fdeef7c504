//! `mount.fuse.dfs`: the helper mount(8) runs for `mount -t fuse.dfs` and for fstab lines
//! of type `fuse.dfs`.
//!
//! For a filesystem type it does not know, mount(8) executes `/sbin/mount.TYPE SOURCE
//! MOUNTPOINT [-n] [-s] [-f] [-v] [-o OPTIONS]` and reports success when that program
//! exits with status 0. So this helper must (1) turn fstab-style options
//! (`certs=/etc/dfs/certs,cert_name=client,_netdev`) into `dfs-fuse` flags, (2) start the
//! mount as a daemon that outlives it, and (3) exit only once the mount exists, or fail
//! with the reason. For (3) it uses the same readiness protocol systemd does: it listens on
//! a private `NOTIFY_SOCKET` and waits for `dfs-fuse` to send `READY=1` (see
//! `dfs_ops::sd_notify`), or to exit.
//!
//! Option names are the long flags of `dfs-fuse` with `_` for `-` (`cache_bytes=64M` is
//! `--cache-bytes 64M`). The mount source is the coordinator address. Options that mean
//! something to mount(8) or systemd but not to us (`_netdev`, `noauto`, `nofail`, `x-*`,
//! `defaults`, `rw`, ...) are ignored; anything else unknown is an error, so a typo does
//! not silently mount with defaults. `log=PATH` appends the daemon's messages to PATH
//! (without it they go wherever the helper's stderr goes: the journal under systemd).

use crate::cli::Args;
use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The name mount(8) looks for: `mount.` + the filesystem type.
pub const HELPER_NAME: &str = "mount.fuse.dfs";

/// How long to wait for the mount before giving up. Longer than `dfs-fuse`'s default
/// coordinator deadline (10 s), so an unreachable coordinator is reported by `dfs-fuse`
/// itself, with its reason.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options that mount(8), fstab or systemd use and that have no meaning for dfs.
const IGNORED: &[&str] = &[
    "defaults",
    "_netdev",
    "auto",
    "noauto",
    "nofail",
    "rw",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "async",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "diratime",
    "loud",
    "silent",
];

/// What mount(8) asked for, translated.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// Arguments for `dfs-fuse` (mount point first).
    pub args: Vec<OsString>,
    /// Where the daemon's messages go, if not to our stderr.
    pub log: Option<PathBuf>,
    /// `-f`: mount(8)'s "fake" mode: check everything, mount nothing.
    pub fake: bool,
}

/// Parses `SOURCE MOUNTPOINT [-n] [-s] [-f] [-v] [-o OPTS] [-t TYPE]`.
pub fn parse(argv: Vec<OsString>) -> Result<Invocation> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut fake = false;
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => {
                let o = it.next().context("-o needs an option list")?;
                options.push(
                    o.into_string()
                        .map_err(|o| anyhow::anyhow!("mount options are not UTF-8: {o:?}"))?,
                );
            }
            // -t fuse.dfs: which type we are is no news to us.
            Some("-t") => {
                it.next();
            }
            Some("-f") => fake = true,
            // -n: do not write /etc/mtab; -s: sloppy options; -v: verbose. We never
            // write mtab, are strict on purpose, and say what goes wrong anyway.
            Some("-n" | "-s" | "-v") => {}
            Some(s) if s.starts_with('-') && s.len() > 1 => bail!("unknown argument {s:?}"),
            _ => positional.push(a),
        }
    }
    let [source, mountpoint]: [OsString; 2] = positional.try_into().map_err(|p: Vec<_>| {
        anyhow::anyhow!(
            "expected SOURCE (the coordinator's host:port) and MOUNTPOINT, got {} arguments",
            p.len()
        )
    })?;
    let mut args = vec![mountpoint, "--coord".into(), source];
    let mut log = None;
    let known = flag_names();
    for opt in options.iter().flat_map(|o| o.split(',')) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        if opt.is_empty() || IGNORED.contains(&opt) || key.starts_with("x-") || key == "comment" {
            continue;
        }
        match (key, value) {
            ("ro", None) => bail!("read-only mounts are not supported (option \"ro\")"),
            ("log", Some(path)) => log = Some(PathBuf::from(path)),
            ("coord", _) => bail!("give the coordinator as the mount source, not as -o coord="),
            (k, Some(v)) if known.iter().any(|n| n == k) => {
                args.push(format!("--{}", k.replace('_', "-")).into());
                args.push(v.into());
            }
            (k, None) if known.iter().any(|n| n == k) => {
                bail!("option {k:?} needs a value ({k}=...)")
            }
            _ => bail!(
                "unknown mount option {opt:?} (dfs options: {}, log)",
                known.join(", ")
            ),
        }
    }
    Ok(Invocation { args, log, fake })
}

/// The `dfs-fuse` flags a mount option may set, in option spelling (`cert_name`).
fn flag_names() -> Vec<String> {
    Args::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version" | "coord"))
        .map(|l| l.replace('-', "_"))
        .collect()
}

/// Runs the helper: starts `dfs-fuse` in the background and returns once it has mounted.
pub fn run(argv: Vec<OsString>) -> Result<()> {
    let inv = parse(argv)?;
    if inv.fake {
        return Ok(());
    }
    // A private readiness socket in the abstract namespace: nothing to create or clean up
    // on disk, and the name includes our pid so two mounts at once do not collide.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("dfs-mount-helper-{}-{nanos}", std::process::id());
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)
        .context("create the readiness socket")?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;

    // The daemon is this very binary in its ordinary mode: /proc/self/exe, named
    // `dfs-fuse` in argv[0] so it does not take itself for the helper again.
    let exe = std::env::current_exe().context("find the dfs-fuse executable")?;
    let mut cmd = Command::new(&exe);
    cmd.arg0("dfs-fuse")
        .args(&inv.args)
        .env("NOTIFY_SOCKET", format!("@{name}"))
        // Tells the daemon that it serves a mount(8) mount: our socket is gone once we
        // have exited after READY=1, so no STOPPING=1 there at unmount (it would log a
        // "connection refused" warning on every `umount`), and the kernel's mount table
        // gets SOURCE itself as the source, so that libmount and systemd find the options
        // mount(8) kept for it (`_netdev`). See `crate::HELPER_ENV`.
        .env(crate::HELPER_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(path) = &inv.log {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open log file {}", path.display()))?;
        cmd.stderr(f);
    }
    // SAFETY: setsid(2) is async-signal-safe, the only kind of call allowed between fork
    // and exec. A session of its own detaches the daemon from our terminal, so neither a
    // Ctrl-C meant for mount(8) nor the terminal closing takes the mount down.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", exe.display()))?;

    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        if let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                // Mounted. The daemon carries on without us (init adopts it).
                return Ok(());
            }
        }
        if let Some(status) = child.try_wait().context("wait for dfs-fuse")? {
            let see = match &inv.log {
                Some(p) => format!("see {}", p.display()),
                None => "see its messages above".to_string(),
            };
            bail!("dfs-fuse exited ({status}) without mounting; {see}");
        }
        if start.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("dfs-fuse did not mount within {READY_TIMEOUT:?}; stopped it");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn strings(inv: &Invocation) -> Vec<String> {
        inv.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn fstab_options_become_flags() {
        let inv = p(&[
            "10.0.0.1:7000",
            "/mnt/dfs",
            "-n",
            "-o",
            "rw,_netdev,noauto,x-systemd.automount,certs=/etc/dfs/certs,cert_name=laptop,cache_bytes=1048576,log=/var/log/dfs.log",
            "-t",
            "fuse.dfs",
        ])
        .unwrap();
        assert_eq!(
            strings(&inv),
            [
                "/mnt/dfs",
                "--coord",
                "10.0.0.1:7000",
                "--certs",
                "/etc/dfs/certs",
                "--cert-name",
                "laptop",
                "--cache-bytes",
                "1048576"
            ]
        );
        assert_eq!(inv.log, Some(PathBuf::from("/var/log/dfs.log")));
        assert!(!inv.fake);
        assert!(p(&["a:1", "/m", "-f"]).unwrap().fake);
    }

    #[test]
    fn mistakes_are_named() {
        let e = |args: &[&str]| format!("{:#}", p(args).unwrap_err());
        assert!(
            e(&["a:1", "/m", "-o", "cert_nam=x"]).contains("unknown mount option \"cert_nam=x\"")
        );
        assert!(e(&["a:1", "/m", "-o", "ro"]).contains("read-only"));
        assert!(e(&["a:1", "/m", "-o", "certs"]).contains("needs a value"));
        assert!(e(&["a:1", "/m", "-o", "coord=b:2"]).contains("mount source"));
        assert!(e(&["a:1"]).contains("expected SOURCE"));
        assert!(e(&["a:1", "/m", "-o"]).contains("-o needs"));
        assert!(e(&["a:1", "/m", "-x"]).contains("unknown argument"));
    }
}
