//! Request/response over QUIC: one bidirectional stream per request.
//!
//! A client opens a stream, writes one request frame and finishes its side; the server
//! reads that frame (size-capped), runs the handler, writes one response frame
//! (`Result<Resp, WireError>`) and finishes. One stream per request means requests never
//! queue behind each other (no head-of-line blocking between a 1 MiB shard and a tiny
//! `GetAttr`), and a broken request fails only its own stream.
//!
//! Every client call has a deadline: a peer that is frozen or cut off costs at most that
//! long, then the caller gets `Unavailable` and can try elsewhere (`client.rs`).
//!
//! Servers defend themselves the same way ([`Limits`], [`serve_with`] in `server.rs`): a
//! cap on connections, a deadline for receiving each request, an idle timeout, and a
//! budget of request bytes in memory, so that peers that connect and then send nothing,
//! or send one byte a second, cannot crowd out everyone else. They also check the deny
//! list of revoked certificates on every new stream (see `revocation.rs`).
//!
//! A server that stops (a `systemctl restart`) does not cut requests off: it stops
//! accepting, lets the requests it has read finish, and then closes each connection with
//! a code that tells the client that whatever got no answer was never read
//! ([`close::DRAINED`]), so the client may send it again, to the next process, even if
//! it is not idempotent.

mod client;
mod server;

pub use client::{client_endpoint, RpcClient};
pub use server::{
    serve, serve_with, server_endpoint, server_endpoint_keeping_resets, Limits, ServerOptions,
};

use crate::access::Role;
use crate::WireResult;
use std::future::Future;
use std::net::SocketAddr;

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

/// The application error codes a server closes a connection with. They are part of the
/// contract: a client decides from them whether a request that got no answer may have
/// run.
pub mod close {
    /// No request for a long time ([`super::Limits::idle_connection_timeout`]). The server
    /// closes only when no request is running, and reads none after deciding to: an
    /// unanswered request was never read.
    pub const IDLE: u32 = 0;
    /// The peer's certificate was revoked while it was connected.
    pub const REVOKED: u32 = 1;
    /// The server is stopping and has answered every request it read on this connection:
    /// an unanswered request was never read, and may be sent again.
    pub const DRAINED: u32 = 2;
    /// The server stopped with requests still running after its grace period: they may or
    /// may not have taken effect.
    pub const CUT: u32 = 3;
    /// Sent by a client whose process is stopping ([`super::RpcClient::close`]): the server
    /// stops waiting at once for it to acknowledge answers, instead of until the
    /// connection times out (which would hold up the server's own graceful stop).
    pub const CLIENT_STOPPING: u32 = 4;

    /// Whether a connection closed by the server with `code` left every unanswered
    /// request unread (so repeating it cannot apply it twice).
    pub fn unread(code: u64) -> bool {
        code == u64::from(IDLE) || code == u64::from(DRAINED)
    }
}
