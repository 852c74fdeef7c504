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
//!
//! Servers defend themselves the same way ([`Limits`], [`serve_with`]): a cap on
//! connections, a deadline for receiving each request, an idle timeout, and a budget of
//! request bytes in memory, so that peers that connect and then send nothing, or send
//! one byte a second, cannot crowd out everyone else. They also check the deny list of
//! revoked certificates on every new stream (see `revocation.rs`).

use crate::access::Role;
use crate::frame::{decode, encode, read_len, read_msg, read_payload, FrameError, MAX_FRAME};
use crate::revocation::DenyList;
use crate::tls::{peer_certificate, peer_roles, ClusterTls};
use crate::{WireError, WireResult};
use anyhow::{Context, Result};
use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// Binds a QUIC server endpoint whose stateless resets are made with `reset_key`, the key
/// the server keeps across restarts (see `reset_key.rs`): peers of a previous run of the
/// server learn at their next packet that their connection is gone.
pub fn server_endpoint_keeping_resets(
    tls: &ClusterTls,
    addr: SocketAddr,
    reset_key: &[u8; crate::reset_key::RESET_KEY_LEN],
) -> Result<quinn::Endpoint> {
    let socket =
        std::net::UdpSocket::bind(addr).with_context(|| format!("bind QUIC endpoint on {addr}"))?;
    quinn::Endpoint::new(
        crate::reset_key::endpoint_config(reset_key),
        Some(tls.server_config()?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .with_context(|| format!("start QUIC endpoint on {addr}"))
}

/// Limits that keep one peer (or many) from exhausting a server.
///
/// Every peer has passed mutual TLS, but a buggy or compromised one must still not be able
/// to starve the others: it may not hold more than its share of connections, streams,
/// memory or time. The defaults suit a real cluster; tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections (including ones still in their handshake) served at once. Beyond it a
    /// new connection is refused at once rather than queued.
    pub max_connections: usize,
    /// Connections from one IP address. Lower than `max_connections`, so that one
    /// misbehaving host cannot take every slot; generous, because a NAT may hide many
    /// mounts behind one address.
    pub max_connections_per_ip: usize,
    /// Time a peer has, once it opened a request stream, to deliver the whole request
    /// frame. A peer trickling one byte a second ("slowloris") loses the stream after this
    /// instead of holding it forever. 1 MiB needs ~1 s even at 10 Mbit/s; 8 MiB, 7 s.
    pub request_timeout: Duration,
    /// A connection with no request for this long is closed. QUIC keep-alives would
    /// otherwise keep an unused connection (and its slot) forever. Clients redial on their
    /// next call.
    pub idle_connection_timeout: Duration,
    /// Bytes of request frames held in memory at once, over all connections. A stream
    /// takes its share as its bytes arrive, so idle or slow streams hold almost nothing;
    /// when the budget is spent, streams wait (within `request_timeout`) for others to
    /// finish.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_connections_per_ip: 256,
            request_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(300),
            max_request_bytes: 512 << 20,
        }
    }
}

/// How a server is run: its limits, and the deny list it checks on every request.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub limits: Limits,
    pub deny: Arc<DenyList>,
}

impl ServerOptions {
    /// Default limits and the deny list of the server's certificate directory.
    pub fn new(tls: &ClusterTls) -> ServerOptions {
        ServerOptions {
            limits: Limits::default(),
            deny: tls.deny_list(),
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            deny: Arc::new(DenyList::empty()),
        }
    }
}

/// [`serve_with`] with default limits and no per-request deny-list check (the handshake
/// still checks the deny list of the `ClusterTls` the endpoint was built from).
pub async fn serve<Req, Resp, H>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    serve_with(endpoint, handler, ServerOptions::default(), shutdown).await
}

/// Accepts connections until `shutdown` resolves, serving each request stream with
/// `handler` within `opts.limits`. Returns after closing the endpoint.
pub async fn serve_with<Req, Resp, H>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let limits = opts.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let budget = Arc::new(Semaphore::new(limits.max_request_bytes));
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            _ = &mut shutdown => break,
            inc = endpoint.accept() => match inc {
                Some(inc) => inc,
                None => break,
            },
        };
        let remote = incoming.remote_address();
        // Take the slot before the handshake: half-open connections count too.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(%remote, "refused connection: {} connections already", limits.max_connections);
            incoming.refuse();
            continue;
        };
        let Some(ip_slot) = IpSlot::take(&per_ip, remote.ip(), limits.max_connections_per_ip)
        else {
            warn!(
                %remote,
                "refused connection: {} connections from this address already",
                limits.max_connections_per_ip
            );
            incoming.refuse();
            continue;
        };
        let handler = handler.clone();
        let (budget, deny) = (budget.clone(), opts.deny.clone());
        tokio::spawn(async move {
            let _slots = (slot, ip_slot);
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    // A peer without a certificate from our CA, or a revoked one, ends
                    // up here (or, with TLS 1.3, at its first stream: see below).
                    warn!(%remote, "refused connection: {e}");
                    return;
                }
            };
            let peer = Peer {
                addr: remote,
                roles: peer_roles(&conn),
            };
            let conn_ctx = ConnCtx {
                limits,
                budget,
                deny,
                cert: peer_certificate(&conn),
            };
            serve_connection(conn, peer, handler, conn_ctx)
                .instrument(info_span!("conn", %remote))
                .await;
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
}

/// One connection's place in the per-address count; given back when dropped.
struct IpSlot {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(map: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// What every stream of one connection needs besides the handler.
struct ConnCtx {
    limits: Limits,
    budget: Arc<Semaphore>,
    deny: Arc<DenyList>,
    /// The peer's certificate, checked against the deny list at every request.
    cert: Option<CertificateDer<'static>>,
}

async fn serve_connection<Req, Resp, H>(
    conn: quinn::Connection,
    peer: Peer,
    handler: Arc<H>,
    ctx: ConnCtx,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    // Streams of this connection still running, so that an idle timer never closes a
    // connection in the middle of a long request.
    let running = Arc::new(());
    loop {
        let accepted =
            tokio::time::timeout(ctx.limits.idle_connection_timeout, conn.accept_bi()).await;
        let (mut send, mut recv) = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!("connection ended: {e}");
                return;
            }
            Err(_) if Arc::strong_count(&running) > 1 => continue,
            Err(_) => {
                debug!("closing idle connection");
                conn.close(0u32.into(), b"idle");
                return;
            }
        };
        // Revoked while connected: cut the connection off at its next request.
        if ctx.cert.as_ref().is_some_and(|c| ctx.deny.is_revoked(c)) {
            warn!(peer = %peer.addr, "closing connection: certificate revoked");
            conn.close(1u32.into(), b"certificate revoked");
            return;
        }
        let handler = handler.clone();
        let peer = peer.clone();
        let (budget, limits, running) = (ctx.budget.clone(), ctx.limits, running.clone());
        tokio::spawn(async move {
            let _running = running;
            let read = tokio::time::timeout(
                limits.request_timeout,
                read_request::<Req>(&mut recv, &budget),
            )
            .await
            .unwrap_or(Err(FrameError::Timeout(limits.request_timeout)));
            let resp: WireResult<Resp> = match read {
                // The permit (the request's share of the memory budget) is held until
                // the handler is done with the request's bytes.
                Ok((req, _permit)) => handler.handle(&peer, req).await,
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
            // Handed to quinn as `Bytes`, which it keeps without copying (`write_all(&buf)`
            // would copy the whole frame, a megabyte for a shard, into its send buffer).
            if let Err(e) = send.write_chunk(Bytes::from(buf)).await {
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

/// Reads one request frame, taking its bytes from `budget` as they arrive.
async fn read_request<Req: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    budget: &Arc<Semaphore>,
) -> Result<(Req, Option<OwnedSemaphorePermit>), FrameError> {
    let len = read_len(recv, MAX_FRAME).await?;
    let mut buf = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut left = len;
    while left > 0 {
        // Reserve a chunk, then read it: memory never runs ahead of the budget.
        let chunk = left.min(CHUNK);
        let permit = budget
            .clone()
            .acquire_many_owned(chunk)
            .await
            .map_err(|_| FrameError::Io(std::io::Error::other("server shutting down")))?;
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        read_payload(recv, chunk, &mut buf).await?;
        left -= chunk;
    }
    Ok((decode(&buf)?, held))
}

/// Request bytes reserved from the budget at a time.
const CHUNK: u32 = 64 * 1024;

/// A client for one kind of server (coordinator or storage node), keeping one warm
/// connection per server address.
pub struct RpcClient {
    endpoint: quinn::Endpoint,
    server_role: Role,
    conns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Warm>>>>>,
}

/// How a call failed on the way, as opposed to an answer (possibly an error) from the
/// server: it decides whether the call may be repeated.
enum Failure {
    /// Nothing reached the server: no connection could be made.
    NotSent(WireError),
    /// The request may have reached the server, but no answer came back.
    Lost(WireError),
}

/// A cached connection and when a request last went out on it.
struct Warm {
    conn: quinn::Connection,
    used: std::time::Instant,
}

/// A client stops reusing a connection it has not used for this long, well before the
/// server's idle timeout ([`Limits::idle_connection_timeout`], 300 s) closes it: a request
/// sent in the instant the server closes the connection would fail, and could not safely
/// be retried.
const CLIENT_IDLE: Duration = Duration::from_secs(240);

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
        match self.attempt(addr, req, deadline).await {
            Ok(answer) => answer,
            Err(Failure::NotSent(e) | Failure::Lost(e)) => Err(e),
        }
    }

    /// Like [`call`](Self::call), but a call that fails in transport (no connection, a
    /// connection reset by a restarted server, no answer in time) is tried again on a
    /// fresh connection, with a short backoff, until `window` has passed. This is what
    /// lets a mount ride out a coordinator restart instead of failing with EIO.
    ///
    /// A request that may have reached the server is only repeated if `idempotent`:
    /// repeating it must give the same result (a lookup, a commit of the same shards, a
    /// truncate to the same size). Others are repeated only when they were never sent,
    /// i.e. no connection could be made. Answers from the server, errors included, are
    /// returned as they are: only the transport is retried.
    pub async fn call_patiently<Req, Resp>(
        &self,
        addr: &str,
        req: &Req,
        deadline: Duration,
        window: Duration,
        idempotent: bool,
    ) -> WireResult<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let give_up = tokio::time::Instant::now() + window;
        let mut backoff = Duration::from_millis(20);
        loop {
            let left = give_up.saturating_duration_since(tokio::time::Instant::now());
            // Every attempt gets a useful slice of time, even the last.
            let this = deadline.min(left).max(Duration::from_millis(200));
            let e = match self.attempt(addr, req, this).await {
                Ok(answer) => return answer,
                Err(Failure::NotSent(e)) => e,
                Err(Failure::Lost(e)) if idempotent => e,
                Err(Failure::Lost(e)) => return Err(e),
            };
            if tokio::time::Instant::now() + backoff >= give_up {
                return Err(e);
            }
            debug!(%addr, "retrying after a transport failure: {e}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// One try: the server's answer, or how the transport failed.
    async fn attempt<Req, Resp>(
        &self,
        addr: &str,
        req: &Req,
        deadline: Duration,
    ) -> Result<WireResult<Resp>, Failure>
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
                Err(Failure::Lost(WireError::unavailable(format!(
                    "no answer from {addr} within {deadline:?}"
                ))))
            }
        }
    }

    async fn call_inner<Req, Resp>(
        &self,
        addr: &str,
        req: &Req,
    ) -> Result<WireResult<Resp>, Failure>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        // A cached connection may have died since its last use; opening a stream on it
        // fails before anything is sent, so retrying once on a fresh one is safe even for
        // requests that are not idempotent.
        let (mut send, mut recv) = {
            let conn = self.connection(addr).await.map_err(Failure::NotSent)?;
            match conn.open_bi().await {
                Ok(s) => s,
                Err(_) => {
                    self.forget(addr);
                    let conn = self.connection(addr).await.map_err(Failure::NotSent)?;
                    conn.open_bi().await.map_err(|e| {
                        Failure::NotSent(WireError::unavailable(format!(
                            "open stream to {addr}: {e}"
                        )))
                    })?
                }
            }
        };
        // Encoding cannot fail for our message types; it is not the connection's fault.
        let buf = match encode(req) {
            Ok(b) => b,
            Err(e) => return Ok(Err(WireError::from(e))),
        };
        // As `Bytes`, which quinn sends without copying them into its own buffer first.
        // From here on the server may have received the request.
        send.write_chunk(Bytes::from(buf)).await.map_err(|e| {
            self.forget(addr);
            Failure::Lost(WireError::unavailable(format!(
                "send request to {addr}: {e}"
            )))
        })?;
        let _ = send.finish();
        match read_msg::<_, WireResult<Resp>>(&mut recv, MAX_FRAME).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.forget(addr);
                Err(Failure::Lost(WireError::unavailable(format!(
                    "read response from {addr}: {e}"
                ))))
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
        if let Some(w) = guard.as_mut() {
            if w.conn.close_reason().is_none() && w.used.elapsed() < CLIENT_IDLE {
                w.used = std::time::Instant::now();
                return Ok(w.conn.clone());
            }
            w.conn.close(0u32.into(), b"idle");
        }
        let sock = resolve(addr).await?;
        let connecting = self
            .endpoint
            .connect(sock, self.server_role.san())
            .map_err(|e| WireError::unavailable(format!("connect to {addr}: {e}")))?;
        let conn = connecting
            .await
            .map_err(|e| WireError::unavailable(format!("connect to {addr}: {e}")))?;
        *guard = Some(Warm {
            conn: conn.clone(),
            used: std::time::Instant::now(),
        });
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
                if let Some(w) = g.take() {
                    w.conn.close(0u32.into(), b"dropped");
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
        dfs_pki::init_dir(d.path(), "t", 1).unwrap();
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
        dfs_pki::init_dir(other.path(), "other", 0).unwrap();
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

    /// A server killed outright (its runtime dropped: no CONNECTION_CLOSE goes out, as
    /// with kill -9) and started again on the same port with the same reset key: the
    /// client's next call on its old connection is reset by the new process and redone
    /// on a fresh connection at once, not after its deadline.
    #[test]
    fn a_restarted_server_with_the_same_reset_key_is_found_at_once() {
        let d = certs();
        let key = crate::reset_key::load_or_create(d.path()).unwrap();
        let server_tls = ClusterTls::load_dir(d.path(), "coord").unwrap();
        let first = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = first.block_on(async {
            let ep =
                server_endpoint_keeping_resets(&server_tls, "127.0.0.1:0".parse().unwrap(), &key)
                    .unwrap();
            let addr = ep.local_addr().unwrap();
            tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));
            addr
        });
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client_tls = ClusterTls::load_dir(d.path(), "client").unwrap();
        let c = rt
            .block_on(async { RpcClient::new(client_endpoint(&client_tls).unwrap(), Role::Coord) });
        let a = addr.to_string();
        let hi = "hi".to_string();
        rt.block_on(async {
            let r: String = c.call(&a, &hi, Duration::from_secs(5)).await.unwrap();
            assert_eq!(r, "hi from [Client]");
        });
        // "kill -9": the process's tasks and socket vanish without a word.
        drop(first);
        rt.block_on(async {
            let ep = server_endpoint_keeping_resets(&server_tls, addr, &key).unwrap();
            tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));
            let t = std::time::Instant::now();
            let r: String = c
                .call_patiently(
                    &a,
                    &hi,
                    Duration::from_secs(8),
                    Duration::from_secs(8),
                    true,
                )
                .await
                .unwrap();
            assert_eq!(r, "hi from [Client]");
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        });
    }
}
