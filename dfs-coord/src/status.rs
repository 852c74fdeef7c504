//! Rendering `dfs-coord status`: a table for people, JSON for scripts.
//!
//! The JSON is built by hand (no serde_json in this crate); strings go through
//! [`json_string`], which escapes everything JSON requires.

use dfs_proto::coord_msg::{ClusterStatus, NodeInfo, NodeState};
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

fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Up => "up",
        NodeState::Down => "down",
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
                state_name(n.state).to_string(),
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
    let up = s.nodes.iter().filter(|n| n.state == NodeState::Up).count();
    let cap: u64 = s.nodes.iter().map(|n| n.stats.capacity).sum();
    let free: u64 = s.nodes.iter().map(|n| n.stats.free).sum();
    let _ = writeln!(
        out,
        "\n{up} of {} nodes up; raw capacity {}, free {}",
        s.nodes.len(),
        human_bytes(cap),
        human_bytes(free)
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
                 \"free\":{},\"shards\":{},\"last_seen_ms\":{seen}}}",
                json_string(&n.id.to_string()),
                json_string(&n.addr),
                json_string(state_name(n.state)),
                n.stats.capacity,
                n.stats.used,
                n.stats.free,
                n.stats.shards,
            )
        })
        .collect();
    format!(
        "{{\"nodes\":[{}],\"under_replicated\":{},\"shards\":{},\"inodes\":{},\
         \"replicas\":{},\"shard_size\":{}}}",
        nodes.join(","),
        s.under_replicated,
        s.shards,
        s.inodes,
        s.replicas,
        s.shard_size
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
             \"last_seen_ms\":1500}],\"under_replicated\":1,\"shards\":3,\"inodes\":4,\
             \"replicas\":2,\"shard_size\":1048576}"
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
    }
}
