//! Request metrics for any `dfs_proto::rpc` server: a [`Metered`] handler wraps the real
//! one and records, per request type, how many arrived, how long they took, how many
//! failed and with which error code, and the shard bytes that came in and went out.
//!
//! Wrapping (rather than adding lines to each server's `match`) keeps the measurement in
//! one place and the request handlers about what requests do. Requests whose frame cannot
//! even be decoded never reach a handler and are not counted here (`rpc.rs` logs them).

use crate::metrics::{Counter, Histogram, Registry};
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::rpc::{Handler, Peer};
use dfs_proto::{ErrorCode, WireResult};
use std::sync::Arc;
use std::time::Instant;

/// A message that carries shard data, and how much.
pub trait Payload {
    /// Shard bytes inside the message (0 for metadata).
    fn payload_bytes(&self) -> u64 {
        0
    }
}

/// A request, named for the `op` label.
pub trait Operation: Payload {
    /// The request type in snake_case, e.g. `get_attr`.
    fn op(&self) -> &'static str;
}

/// The request metrics of one server.
pub struct RpcMetrics {
    requests: Arc<Counter>,
    duration: Arc<Histogram>,
    errors: Arc<Counter>,
    received: Arc<Counter>,
    sent: Arc<Counter>,
}

impl RpcMetrics {
    pub fn new(registry: &Registry) -> RpcMetrics {
        RpcMetrics {
            requests: registry.counter(
                "dfs_rpc_requests_total",
                "Requests handled, by request type.",
                &["op"],
            ),
            duration: registry.histogram(
                "dfs_rpc_request_duration_seconds",
                "Time from a decoded request to its answer, by request type.",
                &["op"],
            ),
            errors: registry.counter(
                "dfs_rpc_errors_total",
                "Requests answered with an error, by request type and error code.",
                &["op", "code"],
            ),
            received: registry.counter(
                "dfs_rpc_received_bytes_total",
                "Shard data bytes received in requests, by request type.",
                &["op"],
            ),
            sent: registry.counter(
                "dfs_rpc_sent_bytes_total",
                "Shard data bytes sent in responses, by request type.",
                &["op"],
            ),
        }
    }
}

/// `inner`, measured.
/// A request that takes this long is logged (at info level) with its name and peer.
const SLOW: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Metered<H> {
    inner: Arc<H>,
    metrics: RpcMetrics,
}

impl<H> Metered<H> {
    pub fn new(inner: Arc<H>, metrics: RpcMetrics) -> Metered<H> {
        Metered { inner, metrics }
    }
}

impl<Req, Resp, H> Handler<Req, Resp> for Metered<H>
where
    Req: Operation + Send + 'static,
    Resp: Payload + Send + 'static,
    H: Handler<Req, Resp>,
{
    async fn handle(&self, peer: &Peer, req: Req) -> WireResult<Resp> {
        let (op, received) = (req.op(), req.payload_bytes());
        let start = Instant::now();
        let result = self.inner.handle(peer, req).await;
        let m = &self.metrics;
        let took = start.elapsed();
        m.duration.observe(&[op], took);
        // The histogram says how many; the log says which, when one stands out.
        if took >= SLOW {
            tracing::info!(op, ?took, peer = %peer.addr, "slow request");
        }
        m.requests.inc(&[op]);
        if received > 0 {
            m.received.add(&[op], received);
        }
        match &result {
            Ok(resp) => {
                let sent = resp.payload_bytes();
                if sent > 0 {
                    m.sent.add(&[op], sent);
                }
            }
            Err(e) => m.errors.inc(&[op, code_name(e.code)]),
        }
        result
    }
}

/// The `code` label of an error.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "not_found",
        ErrorCode::Exists => "exists",
        ErrorCode::NoSpace => "no_space",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Corrupt => "corrupt",
        ErrorCode::Invalid => "invalid",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::Internal => "internal",
        ErrorCode::NotEmpty => "not_empty",
        ErrorCode::NotDir => "not_dir",
        ErrorCode::IsDir => "is_dir",
        ErrorCode::NameTooLong => "name_too_long",
        ErrorCode::NotPermitted => "not_permitted",
        ErrorCode::NoAttr => "no_attr",
        ErrorCode::TooBig => "too_big",
    }
}

impl Payload for NodeRequest {
    fn payload_bytes(&self) -> u64 {
        match self {
            NodeRequest::Put { data, .. } => data.len() as u64,
            _ => 0,
        }
    }
}

impl Operation for NodeRequest {
    fn op(&self) -> &'static str {
        self.name()
    }
}

impl Payload for NodeResponse {
    fn payload_bytes(&self) -> u64 {
        match self {
            NodeResponse::Data(d) => d.len() as u64,
            _ => 0,
        }
    }
}

// File contents never pass through the coordinator: its messages carry no shard data.
impl Payload for CoordRequest {}
impl Payload for CoordResponse {}

impl Operation for CoordRequest {
    fn op(&self) -> &'static str {
        self.name()
    }
}
