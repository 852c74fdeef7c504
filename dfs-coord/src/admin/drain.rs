//! `dfs node drain ID` and `dfs node remove ID`: emptying a node and then forgetting it.
//!
//! The coordinator does the work (see `decommission.rs`); this side starts the drain,
//! then polls `Status` for the node's `drain_shards_left` and shows progress until it
//! reaches zero: every shard the node held has been copied to other nodes and its copy
//! there deleted. Then `dfs node remove` loses nothing; the coordinator refuses a removal
//! that would lose the only copy of some shard unless forced.

use super::conn::{unexpected, Admin, DEADLINE, SCAN_DEADLINE};
use crate::status::{human_bytes, json_string, state_name};
use anyhow::Result;
use dfs_proto::coord_msg::{ClusterStatus, CoordRequest, CoordResponse, NodeInfo};
use dfs_proto::{NodeId, WireError};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Exit code: `--timeout` passed before the drain finished.
pub const EXIT_TIMED_OUT: u8 = 5;

/// The node an argument names: its full 16-digit id, or a prefix of exactly one known id.
pub fn resolve_node(status: &ClusterStatus, arg: &str) -> Result<NodeId> {
    let arg = arg.trim().to_ascii_lowercase();
    if let Ok(id) = arg.parse::<NodeId>() {
        return Ok(id);
    }
    let matches: Vec<NodeId> = status
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| !arg.is_empty() && id.to_string().starts_with(&arg))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(WireError::not_found(format!(
            "no node with id {arg:?} (ids are 16 hex digits; `dfs status` lists them)"
        ))
        .into()),
        _ => Err(WireError::invalid(format!(
            "{arg:?} matches {} nodes; give more digits",
            matches.len()
        ))
        .into()),
    }
}

fn find(status: &ClusterStatus, id: NodeId) -> Option<&NodeInfo> {
    status.nodes.iter().find(|n| n.id == id)
}

/// How `drain` waits.
pub struct DrainOptions {
    pub wait: bool,
    pub timeout: Option<Duration>,
    pub interval: Duration,
    pub json: bool,
}

/// Starts draining `arg`'s node and (unless told not to) waits until nothing depends on
/// it. Returns the exit code.
pub async fn drain(admin: &Admin, arg: &str, o: &DrainOptions) -> Result<u8> {
    let before = admin.status().await?;
    let id = resolve_node(&before, arg)?;
    // Shards can only move to Up nodes that stay: with fewer than `replicas` of those, some
    // shard has nowhere to go and the drain cannot finish. Say so instead of hanging.
    let targets = before
        .nodes
        .iter()
        .filter(|n| n.id != id && state_name(n) == "up")
        .count();
    if targets < before.replicas as usize {
        eprintln!(
            "dfs: warning: only {targets} other node(s) are up and not draining, and every \
             shard needs {} copies: the drain cannot finish until more nodes are up",
            before.replicas
        );
    }
    match admin
        .ask(CoordRequest::DrainNode { node: id }, DEADLINE)
        .await?
    {
        CoordResponse::Unit => {}
        other => return Err(unexpected("DrainNode", &other)),
    }
    let started = Instant::now();
    let mut bar = Progress::new(!o.json && std::io::stderr().is_terminal());
    loop {
        let st = admin.status().await?;
        let Some(n) = find(&st, id) else {
            return Err(WireError::not_found(format!(
                "node {id} disappeared from the cluster during the drain (removed?)"
            ))
            .into());
        };
        let (shards, bytes) = (n.drain_shards_left, n.drain_bytes_left);
        if shards == 0 || !o.wait {
            bar.finish();
            report(o.json, id, shards, bytes, started.elapsed());
            return Ok(0);
        }
        bar.show(id, shards, bytes, &st);
        if o.timeout.is_some_and(|t| started.elapsed() >= t) {
            bar.finish();
            eprintln!(
                "dfs: gave up waiting after {:.0?}: {shards} shards ({}) still to move off node \
                 {id}; the drain goes on in the coordinator",
                started.elapsed(),
                human_bytes(bytes)
            );
            report(o.json, id, shards, bytes, started.elapsed());
            return Ok(EXIT_TIMED_OUT);
        }
        tokio::time::sleep(o.interval).await;
    }
}

fn report(json: bool, id: NodeId, shards: u64, bytes: u64, took: Duration) {
    if json {
        println!(
            "{{\"node\":{},\"draining\":true,\"drained\":{},\"shards_left\":{shards},\
             \"bytes_left\":{bytes},\"seconds\":{:.1}}}",
            json_string(&id.to_string()),
            shards == 0,
            took.as_secs_f64()
        );
    } else if shards == 0 {
        println!(
            "node {id} is drained: every shard it held was moved to other nodes \
             ({:.1} s). Remove it with `dfs node remove {id}`.",
            took.as_secs_f64()
        );
    } else {
        println!(
            "node {id} is draining: {shards} shards ({}) still to move off it; \
             `dfs status` shows the progress",
            human_bytes(bytes)
        );
    }
}

/// The drain's progress on stderr: one line rewritten in place on a terminal, a plain
/// line whenever the figures change otherwise (a log file should not fill with `\r`).
struct Progress {
    tty: bool,
    /// The most shards seen left: the bar's 100 %.
    total: u64,
    last: Option<(u64, u64)>,
    drew: bool,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress {
            tty,
            total: 0,
            last: None,
            drew: false,
        }
    }

    fn show(&mut self, id: NodeId, shards: u64, bytes: u64, st: &ClusterStatus) {
        self.total = self.total.max(shards);
        let done = self.total - shards;
        let line = format!(
            "draining node {id}: {} {done}/{} shards copied, {} left, {} copies in flight",
            bar(done, self.total, 24),
            self.total,
            human_bytes(bytes),
            st.repair.in_flight
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            // \r back to the line's start, \x1b[K clears what a longer line left behind.
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
            self.drew = true;
        } else if self.last != Some((shards, bytes)) {
            let _ = writeln!(err, "{line}");
        }
        self.last = Some((shards, bytes));
    }

    fn finish(&mut self) {
        if self.drew {
            eprintln!();
            self.drew = false;
        }
    }
}

/// `[#######.................]`
fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        let f = (done as f64 / total as f64 * width as f64).round() as usize;
        f.min(width)
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// Forgets `arg`'s node. Returns the exit code.
pub async fn remove(admin: &Admin, arg: &str, force: bool, json: bool) -> Result<u8> {
    let id = resolve_node(&admin.status().await?, arg)?;
    let req = CoordRequest::RemoveNode { node: id, force };
    let (locations, only_copies) = match admin.ask(req, SCAN_DEADLINE).await {
        Ok(CoordResponse::Removed {
            locations,
            only_copies,
        }) => (locations, only_copies),
        Ok(other) => return Err(unexpected("RemoveNode", &other)),
        Err(e) => return Err(e.context(format!("remove node {id}"))),
    };
    if json {
        println!(
            "{{\"node\":{},\"removed\":true,\"locations\":{locations},\
             \"only_copies\":{only_copies}}}",
            json_string(&id.to_string())
        );
    } else {
        println!(
            "node {id} removed: {locations} shard locations forgotten. Stop its dfs-node; \
             if it starts again it is refused until its data directory is wiped."
        );
        if only_copies > 0 {
            println!(
                "WARNING: {only_copies} shards had their only copy on it and are now missing \
                 (`dfs fsck` lists them)"
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_node_prefixes() {
        assert_eq!(bar(0, 4, 4), "[....]");
        assert_eq!(bar(2, 4, 4), "[##..]");
        assert_eq!(bar(0, 0, 4), "[####]");
        let node = |id| NodeInfo {
            id: NodeId(id),
            addr: String::new(),
            state: dfs_proto::coord_msg::NodeState::Up,
            stats: Default::default(),
            last_seen_ms: 0,
            draining: false,
            drain_shards_left: 0,
            drain_bytes_left: 0,
        };
        let st = ClusterStatus {
            nodes: vec![node(0xab00_0000_0000_0001), node(0xab00_0000_0000_0002)],
            replicas: 2,
            shard_size: 1,
            under_replicated: 0,
            shards: 0,
            inodes: 0,
            repair: Default::default(),
        };
        assert_eq!(
            resolve_node(&st, "ab00000000000002").unwrap(),
            NodeId(0xab00_0000_0000_0002)
        );
        assert_eq!(
            resolve_node(&st, "AB00000000000001").unwrap(),
            NodeId(0xab00_0000_0000_0001)
        );
        assert!(resolve_node(&st, "ab").is_err(), "ambiguous");
        assert!(resolve_node(&st, "cd").is_err(), "unknown");
        assert!(resolve_node(&st, "").is_err());
    }
}
