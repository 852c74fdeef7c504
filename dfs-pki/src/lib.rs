//! dfs-pki: the cluster's certificate authority and the certificates it issues.
//!
//! Only `dfs-coord certs` (and tests) issue certificates, so this lives in its own crate:
//! the wire contract (`dfs-proto`) every component links stays free of rcgen, and no
//! daemon carries certificate-signing code on its serving path.
//!
//! Every component proves who it is with a certificate signed by the cluster CA, and every
//! QUIC connection checks the peer's certificate against that CA in both directions
//! (mutual TLS). A certificate's role is written into its subject alternative names
//! (`dfs-coord`, `dfs-node`, `dfs-client`, `dfs-admin`), so a server can tell a storage
//! node from a mount, and a client can insist that the coordinator it dials really is one.
//!
//! Files in a certificate directory: `ca.crt` (public), `ca.key` (keep it off the servers
//! once certificates are issued), and `NAME.crt` + `NAME.key` per component. Private keys
//! are written with mode 0600.
//!
//! - `intruder` (feature `test-peers`): identities servers must refuse, for tests.

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub use dfs_proto::access::Role;

#[cfg(feature = "test-peers")]
pub mod intruder;

/// Creates `ca.crt` and `ca.key` in `dir` (which must not hold a CA yet).
pub fn create_ca(dir: &Path, cluster_name: &str) -> Result<()> {
    let crt = dir.join("ca.crt");
    if crt.exists() {
        bail!(
            "{} already exists: refusing to replace the cluster CA",
            crt.display()
        );
    }
    dfs_ops::durable::create_private_dir(dir)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("dfs cluster CA {cluster_name}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
    write_public(&crt, cert.pem().as_bytes())?;
    Ok(())
}

/// Issues `NAME.crt` + `NAME.key` in `dir`, signed by the CA found there.
pub fn issue(dir: &Path, role: Role, name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        bail!("certificate name {name:?} must be letters, digits, '-', '_' or '.'");
    }
    let ca_crt = fs::read_to_string(dir.join("ca.crt"))
        .with_context(|| format!("read {}", dir.join("ca.crt").display()))?;
    let ca_key = fs::read_to_string(dir.join("ca.key"))
        .with_context(|| format!("read {}", dir.join("ca.key").display()))?;
    let ca_key = KeyPair::from_pem(&ca_key).context("parse ca.key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_crt, ca_key).context("parse ca.crt")?;

    let mut params = CertificateParams::new(vec![role.san().to_string(), name.to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Nodes are both servers (to clients) and clients (of the coordinator), so every
    // certificate may be used on either side; the role SAN says what the holder is.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write_private(
        &dir.join(format!("{name}.key")),
        key.serialize_pem().as_bytes(),
    )?;
    write_public(&dir.join(format!("{name}.crt")), cert.pem().as_bytes())?;
    Ok(())
}

/// Creates a CA and certificates for a coordinator (`coord`), `nodes` storage nodes
/// (`node-1`..), a client (`client`) and an administrator (`admin`). Existing files are
/// kept, so running it twice is harmless.
pub fn init_dir(dir: &Path, cluster_name: &str, nodes: usize) -> Result<()> {
    if !dir.join("ca.crt").exists() {
        create_ca(dir, cluster_name)?;
    }
    let mut wanted = vec![(Role::Coord, "coord".to_string())];
    wanted.extend((1..=nodes).map(|k| (Role::Node, format!("node-{k}"))));
    wanted.push((Role::Client, "client".to_string()));
    wanted.push((Role::Admin, "admin".to_string()));
    for (role, name) in wanted {
        if !dir.join(format!("{name}.crt")).exists() {
            issue(dir, role, &name)?;
        }
    }
    Ok(())
}

/// Writes a secret with mode 0600 from the moment it exists (no window where it is
/// world-readable), replacing any previous file.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn write_public(path: &Path, data: &[u8]) -> Result<()> {
    // Certificates are not secret, but the brief asks for 0600 on all issued files; it
    // costs nothing and keeps a careless `chmod -R` from mattering.
    write_private(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn init_creates_private_files() {
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path(), "test", 2).unwrap();
        for f in [
            "ca.crt",
            "ca.key",
            "coord.key",
            "node-1.crt",
            "node-2.key",
            "client.key",
        ] {
            let m = fs::metadata(dir.path().join(f)).unwrap();
            assert_eq!(m.mode() & 0o777, 0o600, "{f}");
        }
        let fresh = dir.path().join("new/certs");
        init_dir(&fresh, "test", 0).unwrap();
        let m = fs::metadata(&fresh).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700, "certificate directory");
        // Idempotent.
        let before = fs::read(dir.path().join("node-1.crt")).unwrap();
        init_dir(dir.path(), "test", 2).unwrap();
        assert_eq!(fs::read(dir.path().join("node-1.crt")).unwrap(), before);
        assert!(create_ca(dir.path(), "again").is_err());
    }

    #[test]
    fn bad_names_refused() {
        let dir = tempfile::tempdir().unwrap();
        create_ca(dir.path(), "t").unwrap();
        assert!(issue(dir.path(), Role::Node, "../evil").is_err());
        assert!(issue(dir.path(), Role::Node, "").is_err());
    }
}
