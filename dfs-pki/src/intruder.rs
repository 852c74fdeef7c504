//! Peers a dfs server must refuse, for tests (feature `test-peers`).
//!
//! Each [`Intruder`] is a QUIC client that trusts the cluster CA (so that any refusal is
//! the *server's* doing) but presents an identity the server must not accept: none at all,
//! a self-signed certificate, one signed by the cluster CA but expired, or one from
//! another cluster's CA. The coordinator's and the nodes' tests send real requests with
//! each of them and check that none gets an answer.

use anyhow::{anyhow, Context, Result};
use quinn::crypto::rustls::QuicClientConfig;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// An identity a server must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intruder {
    /// Presents no client certificate at all.
    NoCertificate,
    /// A certificate naming the client role, signed by its own key.
    SelfSigned,
    /// Signed by the cluster CA, with the client role, but valid only in the year 2000.
    Expired,
    /// Signed by another cluster's CA, with the client role.
    ForeignCa,
}

impl Intruder {
    pub const ALL: [Intruder; 4] = [
        Intruder::NoCertificate,
        Intruder::SelfSigned,
        Intruder::Expired,
        Intruder::ForeignCa,
    ];

    /// A QUIC client config that trusts the CA in `certs/ca.crt` and presents this
    /// intruder's identity. `Expired` needs `certs/ca.key`.
    pub fn client_config(self, certs: &Path) -> Result<quinn::ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca_pem = std::fs::read(certs.join("ca.crt")).context("read ca.crt")?;
        for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots.add(c.context("parse ca.crt")?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots);
        let mut tls = match self.identity(certs)? {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key)?,
        };
        tls.alpn_protocols = vec![dfs_proto::ALPN.to_vec()];
        let crypto = QuicClientConfig::try_from(tls).context("QUIC client crypto")?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }

    fn identity(
        self,
        certs: &Path,
    ) -> Result<Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            dfs_proto::access::Role::Client.san().to_string(),
            "intruder".to_string(),
        ])?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = match self {
            Intruder::NoCertificate => return Ok(None),
            Intruder::SelfSigned => params.self_signed(&key)?,
            Intruder::Expired => {
                let ca_crt = std::fs::read_to_string(certs.join("ca.crt"))?;
                let ca_key = KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca.key"))?)?;
                let issuer = Issuer::from_ca_cert_pem(&ca_crt, ca_key)?;
                params.not_before = rcgen::date_time_ymd(2000, 1, 1);
                params.not_after = rcgen::date_time_ymd(2001, 1, 1);
                params.signed_by(&key, &issuer)?
            }
            Intruder::ForeignCa => {
                let mut ca = CertificateParams::new(Vec::<String>::new())?;
                ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                let ca_key = KeyPair::generate()?;
                let issuer = Issuer::new(ca, ca_key);
                params.signed_by(&key, &issuer)?
            }
        };
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(Some((cert.der().clone(), der)))
    }
}

/// Dials `addr` expecting a server certificate for `server_role`, sends the frame
/// `request` on one stream and returns the raw response frame. An `Err` means the server
/// refused: the handshake failed, the connection was closed, or nothing came back within
/// five seconds.
pub async fn attempt(
    cfg: quinn::ClientConfig,
    addr: SocketAddr,
    server_role: dfs_proto::access::Role,
    request: &[u8],
) -> Result<Vec<u8>> {
    let mut ep = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    ep.set_default_client_config(cfg);
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        let conn = ep.connect(addr, server_role.san())?.await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(request).await?;
        send.finish()?;
        let resp = recv
            .read_to_end(dfs_proto::frame::MAX_FRAME as usize)
            .await?;
        anyhow::Ok(resp)
    })
    .await
    .map_err(|_| anyhow!("no answer within 5 s"))
    .and_then(|r| r);
    ep.close(0u32.into(), b"done");
    r
}
