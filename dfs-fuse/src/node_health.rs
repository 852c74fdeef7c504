//! This mount's memory of which storage nodes just failed it.
//!
//! When a node dies or freezes, every request to it costs the full deadline before the
//! client fails over. Without memory, each read of each shard would pay that again. So a
//! node that failed is *suspect* for a while: holders are tried healthy-first, and new
//! shards are not sent to it. The coordinator reaches the same verdict a few seconds
//! later (missed heartbeats) and stops listing the node at all; this covers the gap, and
//! the open files whose holder lists were fetched before the node died.

use dfs_proto::coord_msg::NodeAddr;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node that failed a request is tried last.
pub const SUSPECT_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct NodeHealth {
    until: Mutex<HashMap<String, Instant>>,
}

impl NodeHealth {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `addr` failed a request (timed out, refused, or served bad bytes).
    pub fn failed(&self, addr: &str) {
        self.map()
            .insert(addr.to_string(), Instant::now() + SUSPECT_FOR);
    }

    /// `addr` answered: it is healthy again.
    pub fn ok(&self, addr: &str) {
        let mut m = self.map();
        if !m.is_empty() {
            m.remove(addr);
        }
    }

    pub fn is_suspect(&self, addr: &str) -> bool {
        let mut m = self.map();
        match m.get(addr) {
            Some(&t) if t > Instant::now() => true,
            Some(_) => {
                m.remove(addr);
                false
            }
            None => false,
        }
    }

    /// `holders` with the healthy ones first, in their original order, then the suspects
    /// (still worth a try when nothing else works).
    pub fn order<'a>(&self, holders: &'a [NodeAddr]) -> Vec<&'a NodeAddr> {
        let (good, bad): (Vec<_>, Vec<_>) = holders.iter().partition(|h| !self.is_suspect(&h.addr));
        good.into_iter().chain(bad).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::NodeId;

    #[test]
    fn suspects_go_last_until_they_answer() {
        let h = NodeHealth::default();
        let hs: Vec<NodeAddr> = (1..=3)
            .map(|i| NodeAddr {
                id: NodeId(i),
                addr: format!("n{i}"),
            })
            .collect();
        h.failed("n1");
        let order: Vec<&str> = h.order(&hs).iter().map(|n| n.addr.as_str()).collect();
        assert_eq!(order, ["n2", "n3", "n1"]);
        h.ok("n1");
        let order: Vec<&str> = h.order(&hs).iter().map(|n| n.addr.as_str()).collect();
        assert_eq!(order, ["n1", "n2", "n3"]);
    }
}
