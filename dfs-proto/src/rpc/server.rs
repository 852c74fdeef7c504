//! The server side of the request/response transport: accepting connections within
//! [`Limits`], reading each request against a memory budget, answering it, and stopping
//! without cutting off what is running.

use super::{close, Handler, Peer};
use crate::frame::{read_end, read_len, read_payload, FrameError, FromFrame, ToFrame, MAX_FRAME};
use crate::revocation::DenyList;
use crate::tls::{peer_certificate, peer_roles, ClusterTls};
use crate::WireResult;
use anyhow::{Context, Result};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, warn, Instrument};

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
    /// How long a stopping server lets the requests it has read run before it closes
    /// their connections anyway (see [`serve_with`]).
    pub grace: Duration,
}

/// Long enough for any ordinary request (a shard is written in milliseconds, a
/// metadata change in less); well inside systemd's default stop timeout of 90 s.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl ServerOptions {
    /// Default limits and the deny list of the server's certificate directory.
    pub fn new(tls: &ClusterTls) -> ServerOptions {
        ServerOptions {
            limits: Limits::default(),
            deny: tls.deny_list(),
            grace: DEFAULT_GRACE,
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            deny: Arc::new(DenyList::empty()),
            grace: DEFAULT_GRACE,
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
    Req: FromFrame + Send + 'static,
    Resp: ToFrame + Send + 'static,
    H: Handler<Req, Resp>,
{
    serve_with(endpoint, handler, ServerOptions::default(), shutdown).await
}

/// Accepts connections until `shutdown` resolves, serving each request stream with
/// `handler` within `opts.limits`; then stops gracefully and returns.
///
/// Stopping happens in three steps, so that a restart costs clients a pause and never an
/// error: (1) no new connection is accepted (a client dialling gets a refusal at once and
/// tries again, later, against the next process), and no new request is read on the open
/// ones; (2) the requests already read run to the end and are answered, for at most
/// `opts.grace`; (3) each connection is closed as soon as its last request is answered,
/// with [`close::DRAINED`], which tells the client that any request it sent and got no
/// answer for was never read. Connections still busy when the grace period ends are
/// closed with [`close::CUT`].
pub async fn serve_with<Req, Resp, H>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) where
    Req: FromFrame + Send + 'static,
    Resp: ToFrame + Send + 'static,
    H: Handler<Req, Resp>,
{
    let limits = opts.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let budget = Arc::new(Semaphore::new(limits.max_request_bytes));
    // `None` while serving; when stopping, the instant the grace period ends.
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connection tasks, so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
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
        let conn_ctx = ConnCtx {
            limits,
            budget: budget.clone(),
            deny: opts.deny.clone(),
            cert: None,
            stop: stop_rx.clone(),
        };
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let _slots = (slot, ip_slot);
            let connecting = incoming.into_future();
            tokio::pin!(connecting);
            let handshake = tokio::select! {
                h = &mut connecting => h,
                // A handshake still going on when the server stops is finished (it takes
                // a round trip), so that the connection can be closed with DRAINED like
                // the others: the client may already have sent a request on it, and must
                // learn that it was not read. A client that has vanished is not waited
                // for beyond the grace period.
                deadline = stopping(&mut stop) => {
                    match tokio::time::timeout_at(deadline.into(), &mut connecting).await {
                        Ok(h) => h,
                        Err(_) => return,
                    }
                }
            };
            let conn = match handshake {
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
                cert: peer_certificate(&conn),
                ..conn_ctx
            };
            serve_connection(conn, peer, handler, conn_ctx)
                .instrument(info_span!("conn", %remote))
                .await;
        });
    }
    let started = Instant::now();
    let deadline = started + opts.grace;
    let busy = conns.len();
    // Every connection task sees this at once and starts draining.
    let _ = stop_tx.send(Some(deadline));
    if busy > 0 {
        info!(
            connections = busy,
            "stopping: answering the requests already read (grace {:?})", opts.grace
        );
    }
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            // A connection that arrives now would be served by nobody: refuse it, so
            // its client learns at once and tries again (against the next process).
            Some(inc) = endpoint.accept() => inc.refuse(),
            _ = tokio::time::sleep_until(deadline.into()) => {
                warn!(connections = conns.len(), "grace period over: closing connections with requests still running");
                break;
            }
        }
    }
    info!(
        "stopped serving: connections drained in {:?}",
        started.elapsed()
    );
    endpoint.close(close::CUT.into(), b"shutting down");
    // Give the CONNECTION_CLOSE frames a moment to leave; a peer that misses them learns
    // from the stateless reset of the next process, or from its deadline.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
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
    /// Becomes `Some(end of grace)` when the server stops.
    stop: watch::Receiver<Option<Instant>>,
}

async fn serve_connection<Req, Resp, H>(
    conn: quinn::Connection,
    peer: Peer,
    handler: Arc<H>,
    mut ctx: ConnCtx,
) where
    Req: FromFrame + Send + 'static,
    Resp: ToFrame + Send + 'static,
    H: Handler<Req, Resp>,
{
    // This connection's running requests: the idle timer never closes a connection in
    // the middle of one, and a stopping server waits for them.
    let mut streams = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            deadline = stopping(&mut ctx.stop) => {
                drain(&conn, &mut streams, deadline).await;
                return;
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
            a = tokio::time::timeout(ctx.limits.idle_connection_timeout, conn.accept_bi()) => a,
        };
        let (mut send, mut recv) = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!("connection ended: {e}");
                // Requests still running finish on their own (their answers go nowhere,
                // but a handler is never cancelled half-way through a change).
                streams.detach_all();
                return;
            }
            Err(_) if !streams.is_empty() => continue,
            Err(_) => {
                debug!("closing idle connection");
                conn.close(close::IDLE.into(), b"idle");
                return;
            }
        };
        // Revoked while connected: cut the connection off at its next request.
        if ctx.cert.as_ref().is_some_and(|c| ctx.deny.is_revoked(c)) {
            warn!(peer = %peer.addr, "closing connection: certificate revoked");
            conn.close(close::REVOKED.into(), b"certificate revoked");
            streams.detach_all();
            return;
        }
        let handler = handler.clone();
        let peer = peer.clone();
        let (budget, limits) = (ctx.budget.clone(), ctx.limits);
        streams.spawn(async move {
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
            let frame = match Resp::answer_frame(resp) {
                Ok(f) => f,
                Err(e) => {
                    warn!("failed to encode response: {e}");
                    return;
                }
            };
            // Handed to quinn as `Bytes`, which it keeps without copying (`write_all(&buf)`
            // would copy the whole frame, a megabyte for a shard, into its send buffer).
            let mut pieces = frame.into_pieces();
            if let Err(e) = send.write_all_chunks(&mut pieces).await {
                debug!("failed to send response: {e}");
                return;
            }
            let _ = send.finish();
            // Wait until the peer has read everything or gone: dropping the stream
            // earlier could cut the tail off a large response (and a stopping server
            // must not close the connection before the answer is through).
            let _ = send.stopped().await;
        });
    }
}

/// Resolves with the end of the grace period once the server is stopping.
async fn stopping(stop: &mut watch::Receiver<Option<Instant>>) -> Instant {
    loop {
        if let Some(deadline) = *stop.borrow_and_update() {
            return deadline;
        }
        if stop.changed().await.is_err() {
            // The server is gone without saying stop (it cannot happen while the accept
            // loop runs); behave as if asked to stop at once.
            return Instant::now();
        }
    }
}

/// Lets the requests already read on `conn` finish (until `deadline`), reading no new
/// ones, then closes it with a code that tells the client what became of the others.
async fn drain(conn: &quinn::Connection, streams: &mut JoinSet<()>, deadline: Instant) {
    let all_answered = tokio::time::timeout_at(deadline.into(), async {
        while streams.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if all_answered {
        conn.close(close::DRAINED.into(), b"server stopping");
    } else {
        conn.close(close::CUT.into(), b"server stopped before answering");
        streams.detach_all();
    }
}

/// Reads one request frame, taking its bytes from `budget` as they arrive.
async fn read_request<Req: FromFrame>(
    recv: &mut quinn::RecvStream,
    budget: &Arc<Semaphore>,
) -> Result<(Req, Option<OwnedSemaphorePermit>), FrameError> {
    let len = read_len(recv, MAX_FRAME).await?;
    // Capacity for the whole frame up front, so the buffer is never moved as it grows
    // (growing by doubling to 1 MiB copies about another megabyte per shard). This does
    // not let memory run ahead of the budget: capacity not yet written costs address
    // space, not memory (the kernel backs a page only when it is first written), and
    // bytes are read only within permits.
    let mut buf = Vec::with_capacity(len as usize);
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
    read_end(recv).await?;
    Ok((Req::from_frame(buf)?, held))
}

/// Request bytes reserved from the budget at a time.
const CHUNK: u32 = 64 * 1024;
