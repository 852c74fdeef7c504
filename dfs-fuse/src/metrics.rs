//! The mount's metrics (`--metrics-listen`): every request it sends to the coordinator
//! and to storage nodes, measured from the client's side, by wrapping its [`Backend`].
//!
//! The mount's side is the one a user feels: its latencies include the network and the
//! failovers to another holder, which the servers' own metrics cannot see.

use crate::backend::Backend;
use dfs_ops::metrics::{Counter, Histogram, Registry};
use dfs_ops::rpc_metrics::{code_name, Operation, Payload};
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::WireResult;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `inner`, with each request counted and timed.
pub struct MeteredBackend<B> {
    inner: B,
    requests: Arc<Counter>,
    duration: Arc<Histogram>,
    errors: Arc<Counter>,
    sent: Arc<Counter>,
    received: Arc<Counter>,
}

impl<B: Backend> MeteredBackend<B> {
    pub fn new(inner: B, r: &Registry) -> MeteredBackend<B> {
        MeteredBackend {
            inner,
            requests: r.counter(
                "dfs_client_requests_total",
                "Requests the mount sent, by server kind (coord, node) and request type.",
                &["server", "op"],
            ),
            duration: r.histogram(
                "dfs_client_request_duration_seconds",
                "Time until the answer (or the deadline), as the mount saw it.",
                &["server", "op"],
            ),
            errors: r.counter(
                "dfs_client_errors_total",
                "Requests that failed, by server kind, request type and error code.",
                &["server", "op", "code"],
            ),
            sent: r.counter(
                "dfs_client_sent_bytes_total",
                "Shard data bytes the mount uploaded to nodes.",
                &[],
            ),
            received: r.counter(
                "dfs_client_received_bytes_total",
                "Shard data bytes the mount downloaded from nodes.",
                &[],
            ),
        }
    }

    fn record<T>(&self, server: &str, op: &str, elapsed: Duration, r: &WireResult<T>) {
        self.requests.inc(&[server, op]);
        self.duration.observe(&[server, op], elapsed);
        if let Err(e) = r {
            self.errors.inc(&[server, op, code_name(e.code)]);
        }
    }
}

impl<B: Backend> Backend for MeteredBackend<B> {
    async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
        let op = req.op();
        let start = Instant::now();
        let r = self.inner.meta(req).await;
        self.record("coord", op, start.elapsed(), &r);
        r
    }

    async fn node(
        &self,
        addr: &str,
        req: &NodeRequest,
        deadline: Duration,
    ) -> WireResult<NodeResponse> {
        let start = Instant::now();
        let r = self.inner.node(addr, req, deadline).await;
        self.record("node", req.op(), start.elapsed(), &r);
        if let Ok(resp) = &r {
            // Count uploads only once a node has them: a failed put is retried elsewhere.
            self.sent.add(&[], req.payload_bytes());
            self.received.add(&[], resp.payload_bytes());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dfs_proto::{ShardId, WireError, ROOT_INO};

    /// Answers Lookup with NotFound, everything else with success; nodes return 10 bytes.
    struct Fake;
    impl Backend for Fake {
        async fn meta(&self, req: CoordRequest) -> WireResult<CoordResponse> {
            match req {
                CoordRequest::Lookup { .. } => Err(WireError::not_found("no")),
                _ => Ok(CoordResponse::Unit),
            }
        }
        async fn node(
            &self,
            _addr: &str,
            req: &NodeRequest,
            _deadline: Duration,
        ) -> WireResult<NodeResponse> {
            Ok(match req {
                NodeRequest::Get { .. } => NodeResponse::Data(vec![0; 10]),
                _ => NodeResponse::Stored,
            })
        }
    }

    #[tokio::test]
    async fn requests_errors_and_bytes_are_counted() {
        let r = Registry::new();
        let b = MeteredBackend::new(Fake, &r);
        let lookup = CoordRequest::Lookup {
            parent: ROOT_INO,
            name: "x".into(),
        };
        assert!(b.meta(lookup).await.is_err());
        b.meta(CoordRequest::StatFs).await.unwrap();
        let id = ShardId::of(b"abc");
        let d = Duration::from_secs(1);
        let put = NodeRequest::Put {
            id,
            data: b"abc".to_vec().into(),
        };
        b.node("n:1", &put, d).await.unwrap();
        b.node("n:1", &NodeRequest::Get { id, range: None }, d)
            .await
            .unwrap();
        let text = r.render();
        for line in [
            "dfs_client_requests_total{server=\"coord\",op=\"lookup\"} 1",
            "dfs_client_requests_total{server=\"coord\",op=\"stat_fs\"} 1",
            "dfs_client_requests_total{server=\"node\",op=\"put\"} 1",
            "dfs_client_errors_total{server=\"coord\",op=\"lookup\",code=\"not_found\"} 1",
            "dfs_client_request_duration_seconds_count{server=\"node\",op=\"get\"} 1",
            "dfs_client_sent_bytes_total 3",
            "dfs_client_received_bytes_total 10",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
