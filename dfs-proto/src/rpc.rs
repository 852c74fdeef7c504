//! Request/response over QUIC: one bidirectional stream per request.
//!
//! A client opens a stream, writes one request frame and finishes its side; the server
//! reads that frame (size-capped), runs the handler, writes one response frame
//! (`Result<Resp, WireError>`) and finishes. One stream per request means requests never
//! queue behind each other (no head-of-line blocking between a 1 MiB shard and a tiny
//! `GetAttr`), and a broken request fails only its own stream.
//!
//! Every client call has a deadline: a peer that is frozen or cut off costs at most that
//! long, then the caller gets `Unavailable` and can try elsewhere.

use crate::frame::{read_msg, write_msg, MAX_FRAME};
use crate::pki::Role;
use crate::tls::{peer_roles, ClusterTls};
use crate::{WireError, WireResult};
use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info_span, warn, Instrument};

/// Who sent a request: the address and the roles its certificate grants.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub roles: Vec<Role>,
}

impl Peer {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Serves one kind of request. Implemented by the coordinator and by storage nodes.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    fn handle(&self, peer: &Peer, req: Req) -> impl Future<Output = WireResult<Resp>> + Send;
}

/// Binds a QUIC server endpoint.
pub fn server_endpoint(tls: &ClusterTls, addr: SocketAddr) -> Result<quinn::Endpoint> {
    quinn::Endpoint::server(tls.server_config()?, addr)
        .with_context(|| format!("bind QUIC endpoint on {addr}"))
}

/// Accepts connections until `shutdown` resolves, serving each request stream with
/// `handler`. Returns after closing the endpoint.
pub async fn serve<Req, Resp, H>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            _ = &mut shutdown => break,
            inc = endpoint.accept() => match inc {
                Some(inc) => inc,
                None => break,
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    // A peer without a certificate from our CA ends up here.
                    warn!(%remote, "refused connection: {e}");
                    return;
                }
            };
            let peer = Peer {
                addr: remote,
                roles: peer_roles(&conn),
            };
            serve_connection(conn, peer, handler)
                .instrument(info_span!("conn", %remote))
                .await;
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
}

async fn serve_connection<Req, Resp, H>(conn: quinn::Connection, peer: Peer, handler: Arc<H>)
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    loop {
        let (mut send, mut recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                debug!("connection ended: {e}");
                return;
            }
        };
        let handler = handler.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            let resp: WireResult<Resp> = match read_msg::<_, Req>(&mut recv, MAX_FRAME).await {
                Ok(req) => handler.handle(&peer, req).await,
                Err(e) => {
                    warn!(peer = %peer.addr, "bad request frame: {e}");
                    Err(e.into())
                }
            };
            // Encode before the first await so the response need not be `Sync`.
            let buf = match crate::frame::encode(&resp) {
                Ok(b) => b,
                Err(e) => {
                    warn!("failed to encode response: {e}");
                    return;
                }
            };
            drop(resp);
            if let Err(e) = send.write_all(&buf).await {
                debug!("failed to send response: {e}");
                return;
            }
            let _ = send.finish();
            // Wait until the peer has read everything or gone: dropping the stream
            // earlier could cut the tail off a large response.
            let _ = send.stopped().await;
        });
    }
}

/// A client for one kind of server (coordinator or storage node), keeping one warm
/// connection per server address.
pub struct RpcClient {
    endpoint: quinn::Endpoint,
    server_role: Role,
    conns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<quinn::Connection>>>>>,
}

/// Creates a client endpoint that can dial any dfs server.
pub fn client_endpoint(tls: &ClusterTls) -> Result<quinn::Endpoint> {
    let bind: SocketAddr = ([0, 0, 0, 0], 0).into();
    let mut ep = quinn::Endpoint::client(bind).context("bind QUIC client endpoint")?;
    ep.set_default_client_config(tls.client_config()?);
    Ok(ep)
}

impl RpcClient {
    /// `server_role` is the role the server's certificate must carry: a node cannot pose
    /// as the coordinator, and vice versa.
    pub fn new(endpoint: quinn::Endpoint, server_role: Role) -> RpcClient {
        RpcClient {
            endpoint,
            server_role,
            conns: Mutex::new(HashMap::new()),
        }
    }

    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// Sends `req` to `addr` and waits for the response, for at most `deadline`.
    pub async fn call<Req, Resp>(
        &self,
        addr: &str,
        req: &Req,
        deadline: Duration,
    ) -> WireResult<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        match tokio::time::timeout(deadline, self.call_inner(addr, req)).await {
            Ok(r) => r,
            Err(_) => {
                // The connection may be wedged (peer frozen): drop it so the next call
                // starts afresh instead of queueing behind it.
                self.forget(addr);
                Err(WireError::unavailable(format!(
                    "no answer from {addr} within {deadline:?}"
                )))
            }
        }
    }

    async fn call_inner<Req, Resp>(&self, addr: &str, req: &Req) -> WireResult<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        // A cached connection may have died since its last use; opening a stream on it
        // fails before anything is sent, so retrying once on a fresh one is safe even for
        // requests that are not idempotent.
        let (mut send, mut recv) = {
            let conn = self.connection(addr).await?;
            match conn.open_bi().await {
                Ok(s) => s,
                Err(_) => {
                    self.forget(addr);
                    let conn = self.connection(addr).await?;
                    conn.open_bi().await.map_err(|e| {
                        WireError::unavailable(format!("open stream to {addr}: {e}"))
                    })?
                }
            }
        };
        write_msg(&mut send, req).await.map_err(|e| {
            self.forget(addr);
            WireError::unavailable(format!("send request to {addr}: {e}"))
        })?;
        let _ = send.finish();
        match read_msg::<_, WireResult<Resp>>(&mut recv, MAX_FRAME).await {
            Ok(r) => r,
            Err(e) => {
                self.forget(addr);
                Err(WireError::unavailable(format!(
                    "read response from {addr}: {e}"
                )))
            }
        }
    }

    async fn connection(&self, addr: &str) -> WireResult<quinn::Connection> {
        let slot = {
            let mut map = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(addr.to_string()).or_default().clone()
        };
        // One dial per address at a time: concurrent callers wait for the same handshake.
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let sock = resolve(addr).await?;
        let connecting = self
            .endpoint
            .connect(sock, self.server_role.san())
            .map_err(|e| WireError::unavailable(format!("connect to {addr}: {e}")))?;
        let conn = connecting
            .await
            .map_err(|e| WireError::unavailable(format!("connect to {addr}: {e}")))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the cached connection to `addr`.
    pub fn forget(&self, addr: &str) {
        let slot = {
            let map = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            map.get(addr).cloned()
        };
        if let Some(slot) = slot {
            if let Ok(mut g) = slot.try_lock() {
                if let Some(c) = g.take() {
                    c.close(0u32.into(), b"dropped");
                }
            }
        }
    }
}

async fn resolve(addr: &str) -> WireResult<SocketAddr> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| WireError::unavailable(format!("resolve {addr}: {e}")))?
        .next()
        .ok_or_else(|| WireError::unavailable(format!("resolve {addr}: no address")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki;

    struct Echo;
    impl Handler<String, String> for Echo {
        async fn handle(&self, peer: &Peer, req: String) -> WireResult<String> {
            if req == "fail" {
                return Err(WireError::not_found("nothing"));
            }
            Ok(format!("{req} from {:?}", peer.roles))
        }
    }

    fn certs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        pki::init_dir(d.path(), "t", 1).unwrap();
        d
    }

    #[tokio::test]
    async fn mutual_tls_round_trip_and_refusal() {
        let d = certs();
        let server_tls = ClusterTls::load_dir(d.path(), "coord").unwrap();
        let ep = server_endpoint(&server_tls, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = ep.local_addr().unwrap().to_string();
        tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));

        let client_tls = ClusterTls::load_dir(d.path(), "client").unwrap();
        let c = RpcClient::new(client_endpoint(&client_tls).unwrap(), Role::Coord);
        let r: String = c
            .call(&addr, &"hi".to_string(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r, "hi from [Client]");
        let e = c
            .call::<_, String>(&addr, &"fail".to_string(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::NotFound);

        // Dialling the coordinator while expecting a node certificate fails.
        let wrong = RpcClient::new(client_endpoint(&client_tls).unwrap(), Role::Node);
        let e = wrong
            .call::<_, String>(&addr, &"hi".to_string(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::Unavailable);

        // A client whose certificate comes from another cluster's CA is refused.
        let other = tempfile::tempdir().unwrap();
        pki::init_dir(other.path(), "other", 0).unwrap();
        let mut mixed = ClusterTls::load_dir(other.path(), "client").unwrap();
        // Trust our CA (so the server verifies), but present the foreign certificate.
        mixed = ClusterTls::load(
            &d.path().join("ca.crt"),
            &other.path().join("client.crt"),
            &other.path().join("client.key"),
        )
        .unwrap_or(mixed);
        let foreign = RpcClient::new(client_endpoint(&mixed).unwrap(), Role::Coord);
        let e = foreign
            .call::<_, String>(&addr, &"hi".to_string(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::Unavailable, "{e}");
    }

    #[tokio::test]
    async fn deadline_bounds_a_silent_server() {
        // A UDP socket that never answers: the handshake cannot complete.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let d = certs();
        let tls = ClusterTls::load_dir(d.path(), "client").unwrap();
        let c = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
        let t = std::time::Instant::now();
        let e = c
            .call::<_, String>(&addr, &"hi".to_string(), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::Unavailable);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
}
