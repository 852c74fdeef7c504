//! The client side of the request/response transport: one warm connection per server,
//! a deadline on every call, and retries that never apply a request twice.

use super::close;
use crate::access::Role;
use crate::frame::{read_end, read_msg, Frame, MAX_FRAME};
use crate::tls::ClusterTls;
use crate::{WireError, WireResult};
use anyhow::{Context, Result};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::debug;

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
/// server's idle timeout ([`super::Limits::idle_connection_timeout`], 300 s) closes it: a
/// request sent in the instant the server closes the connection would fail (it never ran,
/// and the close code says so, but the caller would pay a round trip to learn it).
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

    /// Closes every connection of this client's endpoint (shared by every `RpcClient`
    /// made from it) and waits briefly for the close to reach the servers. Called when a
    /// process stops: a process that just exits leaves its servers waiting for it until
    /// their idle timeout, and a server that is itself stopping gracefully would wait too.
    pub async fn close(&self) {
        self.endpoint
            .close(close::CLIENT_STOPPING.into(), b"client stopping");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
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
        // Encoding cannot fail for our message types; it is not the connection's fault.
        let frame = Frame::of(req).map_err(WireError::from)?;
        self.call_frame(addr, &frame, deadline).await
    }

    /// [`call`](Self::call) with a request already encoded: a sender that sends the same
    /// request to several servers (a shard to R nodes) encodes it once.
    pub async fn call_frame<Resp>(
        &self,
        addr: &str,
        frame: &Frame,
        deadline: Duration,
    ) -> WireResult<Resp>
    where
        Resp: DeserializeOwned,
    {
        match self.attempt(addr, frame, deadline).await {
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
        let frame = Frame::of(req).map_err(WireError::from)?;
        let give_up = tokio::time::Instant::now() + window;
        let mut backoff = Duration::from_millis(20);
        loop {
            let left = give_up.saturating_duration_since(tokio::time::Instant::now());
            // Every attempt gets a useful slice of time, even the last.
            let this = deadline.min(left).max(Duration::from_millis(200));
            let e = match self.attempt(addr, &frame, this).await {
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
    async fn attempt<Resp>(
        &self,
        addr: &str,
        frame: &Frame,
        deadline: Duration,
    ) -> Result<WireResult<Resp>, Failure>
    where
        Resp: DeserializeOwned,
    {
        match tokio::time::timeout(deadline, self.call_inner(addr, frame)).await {
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

    async fn call_inner<Resp>(&self, addr: &str, frame: &Frame) -> Result<WireResult<Resp>, Failure>
    where
        Resp: DeserializeOwned,
    {
        // A cached connection may have died since its last use; opening a stream on it
        // fails before anything is sent, so retrying once on a fresh one is safe even for
        // requests that are not idempotent.
        let (conn, (mut send, mut recv)) = {
            let conn = self.connection(addr).await.map_err(Failure::NotSent)?;
            match conn.open_bi().await {
                Ok(s) => (conn, s),
                Err(_) => {
                    self.forget(addr);
                    let conn = self.connection(addr).await.map_err(Failure::NotSent)?;
                    let s = conn.open_bi().await.map_err(|e| {
                        Failure::NotSent(WireError::unavailable(format!(
                            "open stream to {addr}: {e}"
                        )))
                    })?;
                    (conn, s)
                }
            }
        };
        // As `Bytes`, which quinn sends without copying them into its own buffer first
        // (cloning them clones reference counts). From here on the server may have
        // received the request.
        // (The close code is read before `forget`, whose local close would replace it.)
        let mut pieces: Vec<Bytes> = frame.pieces().to_vec();
        if let Err(e) = send.write_all_chunks(&mut pieces).await {
            let failure = lost_or_unread(&conn, format!("send request to {addr}: {e}"));
            self.forget(addr);
            return Err(failure);
        }
        let _ = send.finish();
        let resp = match read_msg::<_, WireResult<Resp>>(&mut recv, MAX_FRAME).await {
            Ok(r) => read_end(&mut recv).await.map(|()| r),
            Err(e) => Err(e),
        };
        match resp {
            Ok(r) => Ok(r),
            Err(e) => {
                let failure = lost_or_unread(&conn, format!("read response from {addr}: {e}"));
                self.forget(addr);
                Err(failure)
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
            close_unless_closed(&w.conn, b"idle");
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
                    close_unless_closed(&w.conn, b"dropped");
                }
            }
        }
    }
}

/// Closes `conn` from our side, unless it is closed already. Closing again would replace
/// the reason the server gave (its close code), which other requests still in flight on
/// the connection read to learn whether they ran ([`lost_or_unread`]).
fn close_unless_closed(conn: &quinn::Connection, why: &'static [u8]) {
    if conn.close_reason().is_none() {
        conn.close(0u32.into(), why);
    }
}

/// How a request that got no answer failed: if the server closed the connection saying
/// it read nothing more on it (it was stopping, or closing an idle connection; see
/// [`close`]), the request never ran and counts as not sent, so even a request that is
/// not idempotent may be repeated. Otherwise it may have run.
fn lost_or_unread(conn: &quinn::Connection, what: String) -> Failure {
    let e = WireError::unavailable(what);
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if close::unread(c.error_code.into_inner()) =>
        {
            Failure::NotSent(e)
        }
        // The request may have run: say how the connection ended, which the stream's
        // own error ("connection lost") does not.
        Some(reason) => Failure::Lost(WireError::unavailable(format!("{} ({reason})", e.message))),
        None => Failure::Lost(e),
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
