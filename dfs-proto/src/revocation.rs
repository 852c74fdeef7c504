//! Revoked certificates: a deny list that servers re-read while running.
//!
//! A certificate signed by the cluster CA stays valid until it expires, so when a laptop
//! is lost or a node is retired its certificate must be refused explicitly. The deny list
//! is a text file, `revoked` in the certificate directory, with one SHA-256 fingerprint
//! of a certificate (of its DER bytes, in hex) per line, optionally followed by a name;
//! `#` starts a comment:
//!
//! ```text
//! # revoked 2026-11-25: laptop stolen
//! 3f2a...9c  laptop
//! ```
//!
//! `dfs-coord revoke --certs DIR NAME` appends a line. Servers check the list in the TLS
//! handshake (a revoked peer cannot connect) and again on every new request stream (a
//! peer that was already connected is cut off at its next request). The file is cheap to
//! check for changes (one `stat`), so it is looked at every time and re-read only when
//! its modification time or size changed: revoking needs no restart. Copy the file to
//! every server's certificate directory (the coordinator's and each node's).
//!
//! Why fingerprints rather than serial numbers: they need no parsing of the certificate
//! and cannot collide between two CAs during a rotation.

use anyhow::{bail, Context, Result};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{info, warn};

/// Name of the deny list inside a certificate directory.
pub const FILE_NAME: &str = "revoked";

/// SHA-256 of a certificate's DER bytes: what the deny list names.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Lower-case hex of a fingerprint.
pub fn to_hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// A deny list backed by a file that may change while the server runs.
#[derive(Debug)]
pub struct DenyList {
    /// `None`: nothing is ever revoked (a configuration without a certificate directory).
    path: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (modification time in ns, size, inode) of the file when last read; `None` when
    /// the file did not exist.
    seen: Option<(i64, u64, u64)>,
    revoked: HashSet<[u8; 32]>,
}

impl DenyList {
    /// The deny list at `path`. A missing file is an empty list (and may appear later).
    pub fn open(path: impl Into<PathBuf>) -> DenyList {
        let list = DenyList {
            path: Some(path.into()),
            state: Mutex::new(State::default()),
        };
        list.refresh();
        list
    }

    /// A list that revokes nothing.
    pub fn empty() -> DenyList {
        DenyList {
            path: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the certificate with these DER bytes is revoked, per the file as it is now.
    pub fn is_revoked(&self, cert_der: &[u8]) -> bool {
        if self.path.is_none() {
            return false;
        }
        self.refresh();
        let fp = fingerprint(cert_der);
        self.lock().revoked.contains(&fp)
    }

    /// Number of fingerprints in force.
    pub fn len(&self) -> usize {
        self.refresh();
        self.lock().revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A set of fingerprints cannot be left half-updated in a way that matters.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the file if it changed since the last look.
    fn refresh(&self) {
        let Some(path) = &self.path else { return };
        let seen = match fs::metadata(path) {
            Ok(m) => Some((
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                m.size(),
                m.ino(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                // Fail safe: keep the list we have rather than forget revocations.
                warn!("failed to check deny list {}: {e}", path.display());
                return;
            }
        };
        let mut st = self.lock();
        if st.seen == seen && seen.is_some() {
            return;
        }
        if seen.is_none() {
            // Deleting the file lifts every revocation; say so, it may be a mistake.
            if !st.revoked.is_empty() {
                warn!(
                    "deny list {} removed: no certificate is revoked now",
                    path.display()
                );
            }
            *st = State::default();
            return;
        }
        match fs::read_to_string(path) {
            Ok(text) => {
                let revoked = parse(&text, path);
                if revoked != st.revoked {
                    info!(
                        "deny list {}: {} revoked certificates",
                        path.display(),
                        revoked.len()
                    );
                }
                st.revoked = revoked;
                st.seen = seen;
            }
            Err(e) => warn!("failed to read deny list {}: {e}", path.display()),
        }
    }
}

/// Parses the deny list format. Malformed lines are logged and skipped.
pub fn parse(text: &str, path: &Path) -> HashSet<[u8; 32]> {
    let mut out = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        match parse_hex(word) {
            Some(fp) => {
                out.insert(fp);
            }
            None => warn!(
                "{}:{}: not a SHA-256 fingerprint (64 hex digits): {word:?}",
                path.display(),
                n + 1
            ),
        }
    }
    out
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Appends the certificate `DIR/NAME.crt` to `DIR/revoked`; returns its fingerprint.
pub fn revoke(dir: &Path, name: &str) -> Result<String> {
    let crt = dir.join(format!("{name}.crt"));
    let pem = fs::read(&crt).with_context(|| format!("read {}", crt.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .with_context(|| format!("parse {}", crt.display()))?;
    let Some(leaf) = certs.first() else {
        bail!("no certificate in {}", crt.display());
    };
    let hex = to_hex(&fingerprint(leaf));
    let list = dir.join(FILE_NAME);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&list)
        .with_context(|| format!("open {}", list.display()))?;
    writeln!(f, "{hex}  {name}").with_context(|| format!("append to {}", list.display()))?;
    f.sync_all()
        .with_context(|| format!("sync {}", list.display()))?;
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_names_and_skips_garbage() {
        let a = "ab".repeat(32);
        let text = format!("# header\n{a}  laptop\n\nnot-hex\n{}\n", "0".repeat(63));
        let set = parse(&text, Path::new("t"));
        assert_eq!(set.len(), 1);
        assert!(set.contains(&[0xab; 32]));
    }

    #[test]
    fn file_changes_are_seen_without_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        dfs_pki::init_dir(dir.path(), "t", 0).expect("certs");
        let list = DenyList::open(dir.path().join(FILE_NAME));
        let pem = fs::read(dir.path().join("client.crt")).expect("read");
        let der = rustls_pemfile::certs(&mut &pem[..])
            .next()
            .expect("one cert")
            .expect("parse");
        assert!(!list.is_revoked(&der));
        let hex = revoke(dir.path(), "client").expect("revoke");
        assert_eq!(hex, to_hex(&fingerprint(&der)));
        assert!(list.is_revoked(&der));
        fs::remove_file(dir.path().join(FILE_NAME)).expect("rm");
        assert!(!list.is_revoked(&der));
        assert!(revoke(dir.path(), "nobody").is_err());
    }
}
