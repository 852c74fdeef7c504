//! Finding a cluster from its configuration directory: where the admin certificate is and
//! at which address the coordinator listens.
//!
//! The directory is `--cluster DIR`, else `$DFS_CLUSTER`, else `/etc/dfs`. Inside it:
//! - `certs/`: the cluster CA (`ca.crt`) and the certificate `dfs` connects with
//!   (`admin.crt`, `admin.key`, role `dfs-admin`), as `dfs-coord init` creates them;
//! - the coordinator's address, from the first of these that exists:
//!   1. `coord/addr`: written by `dfs-coord serve --addr-file` once it listens, so it is
//!      the address actually bound (the layout `tests/cluster.sh up DIR` creates);
//!   2. `cluster.conf`: a `PORT=N` line (shell syntax, as `tests/cluster.sh` writes it)
//!      means `127.0.0.1:N`;
//!   3. `coord-addr`: one line `host:port`, for a directory written by hand.
//!
//! A running coordinator rewrites `coord/addr` at every start, which is why it comes
//! first; the other two are for clusters whose coordinator runs elsewhere or is down.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where `dfs` looks when neither `--cluster` nor `DFS_CLUSTER` is given.
pub const DEFAULT_DIR: &str = "/etc/dfs";
/// The certificate `dfs` connects with (NAME.crt / NAME.key in `certs/`).
pub const CERT_NAME: &str = "admin";

/// A located cluster: enough to connect to its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDir {
    pub dir: PathBuf,
    pub certs: PathBuf,
    /// `host:port` of the coordinator.
    pub coord: String,
    /// Which file the address came from, for error messages.
    pub coord_from: PathBuf,
}

/// The directory to use: the flag, else the environment variable, else the default.
pub fn choose_dir(flag: Option<&Path>, env: Option<&std::ffi::OsStr>) -> PathBuf {
    match (flag, env) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(e)) if !e.is_empty() => PathBuf::from(e),
        _ => PathBuf::from(DEFAULT_DIR),
    }
}

impl ClusterDir {
    /// Checks `dir` and reads the coordinator's address from it (see the module comment).
    pub fn open(dir: &Path) -> Result<ClusterDir> {
        if !dir.is_dir() {
            bail!(
                "no cluster directory at {} (give --cluster DIR or set DFS_CLUSTER)",
                dir.display()
            );
        }
        let certs = dir.join("certs");
        for f in ["ca.crt", "admin.crt", "admin.key"] {
            if !certs.join(f).is_file() {
                bail!(
                    "{} is missing: dfs needs the cluster CA and an admin certificate in {} \
                     (create one with `dfs-coord issue --certs {} --role admin --name {CERT_NAME}`)",
                    certs.join(f).display(),
                    certs.display(),
                    certs.display()
                );
            }
        }
        let (coord, coord_from) = coordinator_address(dir)?;
        Ok(ClusterDir {
            dir: dir.to_path_buf(),
            certs,
            coord,
            coord_from,
        })
    }
}

/// The coordinator's address and the file it came from.
fn coordinator_address(dir: &Path) -> Result<(String, PathBuf)> {
    let addr_file = dir.join("coord").join("addr");
    if let Some(a) = read_line(&addr_file)? {
        return Ok((a, addr_file));
    }
    let conf = dir.join("cluster.conf");
    if let Some(text) = read_optional(&conf)? {
        if let Some(port) = conf_port(&text) {
            return Ok((format!("127.0.0.1:{port}"), conf));
        }
    }
    let plain = dir.join("coord-addr");
    if let Some(a) = read_line(&plain)? {
        return Ok((a, plain));
    }
    bail!(
        "cannot tell where the coordinator of {} listens: none of coord/addr, cluster.conf \
         (with a PORT= line) or coord-addr exists there",
        dir.display()
    )
}

/// The `PORT=` value of a `cluster.conf`, if it is a valid port.
fn conf_port(text: &str) -> Option<u16> {
    // The last assignment wins, as when a shell sources the file.
    let v = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("PORT="))?;
    v.trim().trim_matches(['"', '\'']).parse::<u16>().ok()
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// The first line of a file, trimmed; `None` if the file is missing or blank (an address
/// file being rewritten).
fn read_line(path: &Path) -> Result<Option<String>> {
    Ok(read_optional(path)?
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_line_is_found_among_others() {
        assert_eq!(conf_port("NODES=3\nREPLICAS=2\nPORT=4242\n"), Some(4242));
        assert_eq!(conf_port("PORT=\"17\"\n"), Some(17));
        assert_eq!(conf_port("PORT=99999\n"), None);
        assert_eq!(conf_port("NODES=3\n"), None);
    }
}
