//! Mutually-authenticated QUIC configuration from the cluster's certificate files.
//!
//! Both sides present a certificate and both verify the other's against the cluster CA
//! only (never the system's roots): a peer holding a certificate from any other CA, a
//! self-signed one, or none at all is refused during the handshake.

use crate::access::Role;
use crate::revocation::DenyList;
use anyhow::{anyhow, Context, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// A component's identity (certificate and key) plus the cluster CA it trusts.
pub struct ClusterTls {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Certificates refused although the CA signed them (see `revocation.rs`).
    deny: Arc<DenyList>,
}

impl Clone for ClusterTls {
    fn clone(&self) -> Self {
        ClusterTls {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            deny: self.deny.clone(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // One explicit provider: if two end up in the dependency graph, rustls's implicit
    // choice panics (see FACTS.md).
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ClusterTls {
    /// Loads `ca.crt`, `NAME.crt` and `NAME.key` from a certificate directory, and uses
    /// its deny list `revoked` (which need not exist yet) when serving.
    ///
    /// `ca.crt` may hold several CA certificates: during a CA rotation it holds the old
    /// and the new one, so certificates from either are accepted (see docs/SECURITY.md).
    pub fn load_dir(dir: &Path, name: &str) -> Result<ClusterTls> {
        let mut tls = ClusterTls::load(
            &dir.join("ca.crt"),
            &dir.join(format!("{name}.crt")),
            &dir.join(format!("{name}.key")),
        )?;
        tls.deny = Arc::new(DenyList::open(dir.join(crate::revocation::FILE_NAME)));
        Ok(tls)
    }

    /// The deny list this identity serves with.
    pub fn deny_list(&self) -> Arc<DenyList> {
        self.deny.clone()
    }

    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<ClusterTls> {
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca)? {
            roots
                .add(c)
                .with_context(|| format!("add CA certificate from {}", ca.display()))?;
        }
        let chain = read_certs(cert)?;
        let pem = std::fs::read(key).with_context(|| format!("read {}", key.display()))?;
        let key = rustls_pemfile::private_key(&mut &pem[..])
            .with_context(|| format!("parse {}", key.display()))?
            .ok_or_else(|| anyhow!("no private key in {}", key.display()))?;
        Ok(ClusterTls {
            roots: Arc::new(roots),
            chain,
            key,
            deny: Arc::new(DenyList::empty()),
        })
    }

    /// Server side: requires and verifies a client certificate.
    pub fn server_config(&self) -> Result<quinn::ServerConfig> {
        let webpki = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .context("build client-certificate verifier")?;
        let verifier = Arc::new(DenyingVerifier {
            inner: webpki,
            deny: self.deny.clone(),
        });
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .context("load server certificate")?;
        tls.alpn_protocols = vec![crate::ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto = QuicServerConfig::try_from(tls).context("QUIC server crypto")?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        cfg.transport_config(Arc::new(transport()));
        Ok(cfg)
    }

    /// Client side: presents our certificate, verifies the server against the CA.
    pub fn client_config(&self) -> Result<quinn::ClientConfig> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .context("load client certificate")?;
        tls.alpn_protocols = vec![crate::ALPN.to_vec()];
        let crypto = QuicClientConfig::try_from(tls).context("QUIC client crypto")?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
        cfg.transport_config(Arc::new(transport()));
        Ok(cfg)
    }
}

/// The CA check of `WebPkiClientVerifier` (chain, expiry, key usage), then the deny list:
/// a revoked certificate fails the handshake although the CA signed it.
#[derive(Debug)]
struct DenyingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    deny: Arc<DenyList>,
}

impl ClientCertVerifier for DenyingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.deny.is_revoked(end_entity) {
            warn!(
                "refused revoked certificate {}",
                crate::revocation::to_hex(&crate::revocation::fingerprint(end_entity))
            );
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The peer's leaf certificate (DER), if it presented one.
pub fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let ident = conn.peer_identity()?;
    let certs = ident.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().cloned()
}

/// Transport settings shared by both sides.
fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // A shard is 1 MiB by default: let a whole one be in flight on a stream without waiting
    // for flow-control credit, and several on a connection.
    t.stream_receive_window((4u32 << 20).into());
    t.receive_window((32u32 << 20).into());
    t.send_window(32 << 20);
    t.max_concurrent_bidi_streams(256u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    // Ask the peer (QUIC ACK frequency extension) to acknowledge every 16th ack-eliciting
    // packet rather than every 2nd, within its max_ack_delay: fewer ACK-only packets, each
    // of which wakes the other process. Added during the round-trip work of issue 12
    // (docs/PERFORMANCE.md); its effect alone was within noise there (14 → 12 datagrams
    // per mkdir+rmdir before the FIN fix), so it is a candidate for an A/B, not a
    // measured win.
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(16u32.into());
    t.ack_frequency_config(Some(ack));
    // Detect a dead peer: keep-alives keep an idle but healthy connection open; a peer
    // silent for the idle timeout is declared gone and its streams fail.
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    t.max_idle_timeout(Some(
        Duration::from_secs(10)
            .try_into()
            .unwrap_or(quinn::IdleTimeout::from(quinn::VarInt::from_u32(10_000))),
    ));
    t
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The roles a peer's (already CA-verified) certificate names in its SANs.
pub fn peer_roles(conn: &quinn::Connection) -> Vec<Role> {
    let Some(ident) = conn.peer_identity() else {
        return Vec::new();
    };
    let Ok(certs) = ident.downcast::<Vec<CertificateDer<'static>>>() else {
        return Vec::new();
    };
    let Some(leaf) = certs.first() else {
        return Vec::new();
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return Vec::new();
    };
    Role::ALL
        .into_iter()
        .filter(|r| {
            ServerName::try_from(r.san())
                .map(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
                .unwrap_or(false)
        })
        .collect()
}
