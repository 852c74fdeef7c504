//! Rendering `dfs-coord status` and `dfs-coord fsck`: text for people, JSON for scripts.
//!
//! The JSON is built by hand (no serde_json in this crate); strings go through
//! [`json_string`], which escapes everything JSON requires.

use dfs_proto::coord_msg::{ClusterStatus, FsckReport, NodeInfo, NodeState, ShardIssue};
use std::fmt::Write as _;

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `up`, `down`, or `draining` for a draining node that is up (a draining node that is
/// down shows `down`; the JSON's `draining` field tells both apart).
pub fn state_name(n: &NodeInfo) -> &'static str {
    match (n.state, n.draining) {
        (NodeState::Up, false) => "up",
        (NodeState::Up, true) => "draining",
        (NodeState::Down, _) => "down",
    }
}

fn last_seen(n: &NodeInfo) -> String {
    if n.last_seen_ms == u64::MAX {
        "never".to_string()
    } else {
        format!("{:.1}s ago", n.last_seen_ms as f64 / 1000.0)
    }
}

/// A fixed-width table of nodes followed by cluster totals.
pub fn render_table(s: &ClusterStatus) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 8]> = s
        .nodes
        .iter()
        .map(|n| {
            [
                n.id.to_string(),
                n.addr.clone(),
                state_name(n).to_string(),
                human_bytes(n.stats.capacity),
                human_bytes(n.stats.used),
                human_bytes(n.stats.free),
                n.stats.shards.to_string(),
                last_seen(n),
            ]
        })
        .collect();
    let header = [
        "NODE",
        "ADDRESS",
        "STATE",
        "CAPACITY",
        "USED",
        "FREE",
        "SHARDS",
        "LAST SEEN",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{c:<w$}");
        }
        l.trim_end().to_string()
    };
    out.push_str(&line(header.to_vec()));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    let t = totals(s);
    let _ = writeln!(
        out,
        "\n{} of {} nodes up; raw capacity {}, used {}, free {}",
        t.up,
        s.nodes.len(),
        human_bytes(t.capacity),
        human_bytes(t.used),
        human_bytes(t.free)
    );
    let _ = writeln!(
        out,
        "{} shards in use, {} under-replicated (replicas {}); {} inodes; shard size {}",
        s.shards,
        s.under_replicated,
        s.replicas,
        s.inodes,
        human_bytes(u64::from(s.shard_size))
    );
    for n in s.nodes.iter().filter(|n| n.draining) {
        let _ = writeln!(
            out,
            "node {} draining: {} shards ({}) left to move off it{}",
            n.id,
            n.drain_shards_left,
            human_bytes(n.drain_bytes_left),
            if n.drain_shards_left == 0 {
                "; it can be removed"
            } else {
                ""
            }
        );
    }
    let r = &s.repair;
    let _ = writeln!(
        out,
        "repair: {} copies in flight, {} left to copy; {} shards repaired, {} collected \
         since start",
        r.in_flight,
        human_bytes(r.bytes_left),
        r.repaired,
        r.collected
    );
    out
}

/// A JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The status as one JSON object.
pub fn render_json(s: &ClusterStatus) -> String {
    let nodes: Vec<String> = s
        .nodes
        .iter()
        .map(|n| {
            let seen = if n.last_seen_ms == u64::MAX {
                "null".to_string()
            } else {
                n.last_seen_ms.to_string()
            };
            format!(
                "{{\"id\":{},\"address\":{},\"state\":{},\"capacity\":{},\"used\":{},\
                 \"free\":{},\"shards\":{},\"last_seen_ms\":{seen},\"draining\":{},\
                 \"drain_shards_left\":{},\"drain_bytes_left\":{}}}",
                json_string(&n.id.to_string()),
                json_string(&n.addr),
                json_string(state_name(n)),
                n.stats.capacity,
                n.stats.used,
                n.stats.free,
                n.stats.shards,
                n.draining,
                n.drain_shards_left,
                n.drain_bytes_left,
            )
        })
        .collect();
    let r = &s.repair;
    let t = totals(s);
    format!(
        "{{\"nodes\":[{}],\"under_replicated\":{},\"shards\":{},\"inodes\":{},\
         \"replicas\":{},\"shard_size\":{},\"repair\":{{\"in_flight\":{},\
         \"bytes_left\":{},\"repaired\":{},\"collected\":{}}},\"totals\":{{\"nodes\":{},\
         \"up\":{},\"capacity\":{},\"used\":{},\"free\":{}}}}}",
        nodes.join(","),
        s.under_replicated,
        s.shards,
        s.inodes,
        s.replicas,
        s.shard_size,
        r.in_flight,
        r.bytes_left,
        r.repaired,
        r.collected,
        s.nodes.len(),
        t.up,
        t.capacity,
        t.used,
        t.free
    )
}

/// Sums over all nodes, for the table's and the JSON's totals.
struct Totals {
    up: usize,
    capacity: u64,
    used: u64,
    free: u64,
}

fn totals(s: &ClusterStatus) -> Totals {
    let sum = |f: fn(&NodeInfo) -> u64| s.nodes.iter().map(f).fold(0u64, u64::saturating_add);
    Totals {
        up: s.nodes.iter().filter(|n| n.state == NodeState::Up).count(),
        capacity: sum(|n| n.stats.capacity),
        used: sum(|n| n.stats.used),
        free: sum(|n| n.stats.free),
    }
}

/// `dfs-coord fsck`'s exit code: 2 if data is missing, 1 if at risk, 0 if healthy.
pub fn fsck_exit_code(r: &FsckReport) -> u8 {
    if !r.missing.is_empty() {
        2
    } else if !r.under_replicated.is_empty() {
        1
    } else {
        0
    }
}

/// How many issues of each list the text report shows.
const SHOWN_ISSUES: usize = 10;

fn issue_lines(out: &mut String, what: &str, issues: &[ShardIssue]) {
    for i in issues.iter().take(SHOWN_ISSUES) {
        let files: Vec<String> = i.files.iter().map(|f| f.to_string()).collect();
        let _ = writeln!(
            out,
            "  {what} {} ({} live copies), used by inode(s) {}",
            i.id,
            i.live_copies,
            if files.is_empty() {
                "-".to_string()
            } else {
                files.join(", ")
            }
        );
    }
    if issues.len() > SHOWN_ISSUES {
        let _ = writeln!(out, "  ... and {} more", issues.len() - SHOWN_ISSUES);
    }
}

/// The fsck report for people: counts, then the first issues of each kind.
pub fn render_fsck(r: &FsckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} shards in use: {} missing, {} under-replicated; {} orphaned (awaiting garbage \
         collection); {} corrupt copies reported since the coordinator started",
        r.shards,
        r.missing.len(),
        r.under_replicated.len(),
        r.orphaned,
        r.corrupt
    );
    issue_lines(&mut out, "missing", &r.missing);
    issue_lines(&mut out, "under-replicated", &r.under_replicated);
    let verdict = match fsck_exit_code(r) {
        2 => "DATA MISSING: some shards have no copy on a live node",
        1 => "data at risk: some shards have fewer copies than the replication factor",
        _ => "healthy",
    };
    let _ = writeln!(out, "{verdict}");
    out
}

fn issues_json(issues: &[ShardIssue]) -> String {
    let items: Vec<String> = issues
        .iter()
        .map(|i| {
            let files: Vec<String> = i.files.iter().map(|f| f.to_string()).collect();
            format!(
                "{{\"id\":{},\"live_copies\":{},\"files\":[{}]}}",
                json_string(&i.id.to_hex()),
                i.live_copies,
                files.join(",")
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// The fsck report as one JSON object.
pub fn render_fsck_json(r: &FsckReport) -> String {
    format!(
        "{{\"shards\":{},\"missing\":{},\"under_replicated\":{},\"orphaned\":{},\
         \"corrupt\":{}}}",
        r.shards,
        issues_json(&r.missing),
        issues_json(&r.under_replicated),
        r.orphaned,
        r.corrupt
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::node_msg::NodeStats;
    use dfs_proto::NodeId;

    fn sample() -> ClusterStatus {
        ClusterStatus {
            nodes: vec![NodeInfo {
                id: NodeId(0xab),
                addr: "host\"1\":7001".into(),
                state: NodeState::Up,
                stats: NodeStats {
                    capacity: 2048,
                    used: 1024,
                    free: 1024,
                    shards: 3,
                },
                last_seen_ms: 1500,
                draining: false,
                drain_shards_left: 0,
                drain_bytes_left: 0,
            }],
            replicas: 2,
            shard_size: 1 << 20,
            under_replicated: 1,
            shards: 3,
            inodes: 4,
            repair: Default::default(),
        }
    }

    #[test]
    fn json_escapes_and_shape() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        let j = render_json(&sample());
        assert_eq!(
            j,
            "{\"nodes\":[{\"id\":\"00000000000000ab\",\"address\":\"host\\\"1\\\":7001\",\
             \"state\":\"up\",\"capacity\":2048,\"used\":1024,\"free\":1024,\"shards\":3,\
             \"last_seen_ms\":1500,\"draining\":false,\"drain_shards_left\":0,\
             \"drain_bytes_left\":0}],\"under_replicated\":1,\"shards\":3,\"inodes\":4,\
             \"replicas\":2,\"shard_size\":1048576,\"repair\":{\"in_flight\":0,\
             \"bytes_left\":0,\"repaired\":0,\"collected\":0},\"totals\":{\"nodes\":1,\
             \"up\":1,\"capacity\":2048,\"used\":1024,\"free\":1024}}"
        );
    }

    #[test]
    fn table_mentions_every_node() {
        let t = render_table(&sample());
        assert!(t.contains("00000000000000ab"), "{t}");
        assert!(t.contains("1.0 KiB"), "{t}");
        assert!(t.contains("1 under-replicated"), "{t}");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 B");
        assert!(t.contains("repair: 0 copies in flight"), "{t}");
        assert!(!t.contains("draining"), "{t}");
        let mut d = sample();
        d.nodes[0].draining = true;
        d.nodes[0].drain_shards_left = 2;
        d.nodes[0].drain_bytes_left = 2048;
        let t = render_table(&d);
        assert!(t.contains("  draining  "), "{t}");
        assert!(t.contains("2 shards (2.0 KiB) left to move off it"), "{t}");
        assert!(render_json(&d).contains("\"state\":\"draining\""));
    }

    #[test]
    fn fsck_rendering_and_exit_codes() {
        let issue = |d: &[u8], live| ShardIssue {
            id: dfs_proto::ShardId::of(d),
            live_copies: live,
            files: vec![7, 9],
        };
        let mut r = FsckReport {
            shards: 5,
            orphaned: 2,
            corrupt: 1,
            ..Default::default()
        };
        assert_eq!(fsck_exit_code(&r), 0);
        assert_eq!(
            render_fsck_json(&r),
            "{\"shards\":5,\"missing\":[],\"under_replicated\":[],\"orphaned\":2,\"corrupt\":1}"
        );
        r.under_replicated.push(issue(b"u", 1));
        assert_eq!(fsck_exit_code(&r), 1);
        r.missing.push(issue(b"m", 0));
        assert_eq!(fsck_exit_code(&r), 2);
        let j = render_fsck_json(&r);
        assert!(j.contains("\"live_copies\":0,\"files\":[7,9]"), "{j}");
        let t = render_fsck(&r);
        assert!(t.contains("1 missing, 1 under-replicated"), "{t}");
        assert!(t.contains("used by inode(s) 7, 9"), "{t}");
    }
}
