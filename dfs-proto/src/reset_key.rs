//! The QUIC stateless-reset key a server keeps on disk, so that a restarted server tells
//! its old peers at once that their connections are gone.
//!
//! A QUIC endpoint that receives a packet for a connection it does not know (the process
//! was restarted and lost its connection state) may answer with a *stateless reset*: a
//! packet ending in a token derived from the connection ID with a secret key. The peer
//! accepts the reset only if the token matches the one the server handed out when the
//! connection was set up; it then drops the connection immediately, instead of waiting
//! for its request deadline and idle timeout. quinn draws a new random key at every start,
//! so a restarted server's resets never match and are ignored. Keeping the key in the
//! server's data directory makes the new process derive the same tokens as the old one:
//! a node's heartbeat or a mount's request on a stale connection fails in one round trip,
//! and the caller reconnects to the new process at once (docs/FAILURES.md).
//!
//! The key only authenticates resets: whoever knows it can cut this server's connections
//! (as anyone on the path can by dropping packets), but cannot read or forge traffic. It
//! is created with mode 0600 beside the server's other state.

use anyhow::{bail, Context, Result};
use ring::rand::SecureRandom;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

/// Bytes of key: the SHA-256 block the HMAC uses at full strength.
pub const RESET_KEY_LEN: usize = 32;

/// The file name inside a server's data directory.
pub const RESET_KEY_FILE: &str = "quic-reset.key";

/// Reads the key in `dir`, creating it (random, mode 0600, fsynced with its directory)
/// if there is none yet.
pub fn load_or_create(dir: &Path) -> Result<[u8; RESET_KEY_LEN]> {
    let path = dir.join(RESET_KEY_FILE);
    match File::open(&path) {
        Ok(mut f) => {
            // Read one byte more than a key, to tell a longer (foreign) file from a key.
            let mut buf = Vec::with_capacity(RESET_KEY_LEN + 1);
            Read::by_ref(&mut f)
                .take(RESET_KEY_LEN as u64 + 1)
                .read_to_end(&mut buf)
                .with_context(|| format!("read {}", path.display()))?;
            match <[u8; RESET_KEY_LEN]>::try_from(buf.as_slice()) {
                Ok(key) => Ok(key),
                Err(_) => bail!(
                    "{} is not a {RESET_KEY_LEN}-byte key; delete it to have a new one made",
                    path.display()
                ),
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut key = [0u8; RESET_KEY_LEN];
            ring::rand::SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| anyhow::anyhow!("no system randomness for the QUIC reset key"))?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("create {}", path.display()))?;
            f.write_all(&key)?;
            f.sync_all()?;
            File::open(dir)?.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
    }
}

/// quinn's endpoint settings with `key` as the stateless-reset key.
///
/// The connection-ID generator must survive the restart too. quinn's default one embeds
/// a checksum made with a random per-process key in every connection ID, and an endpoint
/// silently drops packets whose ID fails that check, before it considers a reset: a new
/// process would never answer its predecessor's peers. So its key is derived from the
/// reset key as well.
pub fn endpoint_config(key: &[u8; RESET_KEY_LEN]) -> quinn::EndpointConfig {
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&hmac, b"dfs: QUIC connection ID checksum key");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&tag.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut cfg = quinn::EndpointConfig::new(Arc::new(hmac));
    cfg.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    cfg
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_made_once_private_and_read_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create(d.path()).unwrap();
        let b = load_or_create(d.path()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, [0; RESET_KEY_LEN]);
        let mode = std::fs::metadata(d.path().join(RESET_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Another directory, another key.
        let e = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(e.path()).unwrap(), a);
    }

    #[test]
    fn a_file_of_the_wrong_length_is_refused_not_used() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(RESET_KEY_FILE), b"short").unwrap();
        let e = load_or_create(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a 32-byte key"), "{e}");
        std::fs::write(d.path().join(RESET_KEY_FILE), [7u8; 33]).unwrap();
        assert!(load_or_create(d.path()).is_err());
    }
}
