//! `dfs where PATH`: how a file is cut into shards and which nodes hold each one.
//!
//! A file is a list of content-addressed shards of `shard_size` bytes (`layout.rs`): shard
//! `i` covers the file's bytes from `i * shard_size`, and its ID is the SHA-256 of its
//! content. This command shows that list, with every node the coordinator records a copy
//! on, Up or not, so an operator can watch a drain or a repair move copies around.
//!
//! It asks exactly what a mount asks to read the file (`Lookup` from the root, then pages
//! of `GetLayout`), plus `Locate`, because `GetLayout` only names the Up holders a reader
//! may use, and `Status`, for each node's address and state.

use super::conn::{unexpected, Ask, DEADLINE};
use crate::status::{human_bytes, json_string, state_name};
use anyhow::Result;
use dfs_proto::coord_msg::{
    Attr, ClusterStatus, CoordRequest, CoordResponse, FileKind, LayoutShard, MAX_LAYOUT_PAGE,
};
use dfs_proto::{NodeId, WireError, ROOT_INO};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Component, Path};

/// One copy of a shard as shown: node id, address and state (`unknown` for a node the
/// coordinator no longer knows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub node: NodeId,
    pub address: String,
    pub state: String,
}

/// One shard of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub offset: u64,
    pub length: u32,
    pub id: dfs_proto::ShardId,
    pub copies: Vec<Copy>,
}

/// What `dfs where` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMap {
    pub path: String,
    pub attr: Attr,
    pub shard_size: u32,
    pub shards: Vec<ShardRow>,
}

/// The path inside the filesystem that `arg` names. A path under a local dfs mount (a
/// `/proc/mounts` entry of type `fuse.dfs` or whose source starts with `dfs@`; a relative `arg` is taken from
/// `cwd` for this check) loses the mount point; anything else is taken as a path inside
/// the filesystem already. `.` and `..` are resolved here, without asking the coordinator.
pub fn fs_path(arg: &str, cwd: &Path, mounts: &str) -> String {
    let p = Path::new(arg);
    let local = cwd.join(p);
    let inside = mount_points(mounts)
        .into_iter()
        .filter(|m| local.starts_with(m))
        .max_by_key(|m| m.len())
        .and_then(|m| local.strip_prefix(&m).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    let mut parts: Vec<String> = Vec::new();
    for c in inside.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Mount points of dfs mounts in `/proc/mounts` text. Fields there escape spaces and a few
/// other characters as `\ooo` octal.
fn mount_points(mounts: &str) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let source = f.next()?;
            let point = f.next()?;
            // Mounts made through mount.fuse.dfs have the mount source itself as their
            // source (host:port, see dfs_fuse::HELPER_ENV); every dfs mount has the type.
            let fstype = f.next().unwrap_or("");
            (source.starts_with("dfs@") || fstype == "fuse.dfs").then(|| unescape(point))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], octal) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves `path` (inside the filesystem) and gathers its shard map.
pub async fn file_map<A: Ask>(admin: &A, path: &str) -> Result<FileMap> {
    let mut attr = match admin
        .ask(CoordRequest::GetAttr { ino: ROOT_INO }, DEADLINE)
        .await?
    {
        CoordResponse::Attr(a) => a,
        other => return Err(unexpected("GetAttr", &other)),
    };
    for name in path.split('/').filter(|n| !n.is_empty()) {
        let req = CoordRequest::Lookup {
            parent: attr.ino,
            name: name.to_string(),
        };
        attr = match admin.ask(req, DEADLINE).await {
            Ok(CoordResponse::Attr(a)) => a,
            Ok(other) => return Err(unexpected("Lookup", &other)),
            Err(e) => return Err(e.context(format!("look up {name:?} in {path}"))),
        };
    }
    if attr.kind != FileKind::File {
        return Err(WireError::invalid(format!(
            "{path} is a {:?}, not a regular file: only files have shards",
            attr.kind
        ))
        .into());
    }

    // Page through the layout, as a mount does for a big file.
    let mut layout: Vec<LayoutShard> = Vec::new();
    let mut shard_size: u32;
    let mut from = 0;
    loop {
        let req = CoordRequest::GetLayout {
            ino: attr.ino,
            from,
            limit: MAX_LAYOUT_PAGE,
        };
        let page = match admin.ask(req, DEADLINE).await? {
            CoordResponse::Layout(l) => l,
            other => return Err(unexpected("GetLayout", &other)),
        };
        shard_size = page.shard_size;
        attr = page.attr;
        from = from.saturating_add(u64::from(MAX_LAYOUT_PAGE));
        layout.extend(page.shards);
        if !page.more {
            break;
        }
    }

    // Every recorded copy, whatever its node's state.
    let mut locations: Vec<Vec<NodeId>> = Vec::with_capacity(layout.len());
    for chunk in layout.chunks(MAX_LAYOUT_PAGE as usize) {
        let req = CoordRequest::Locate {
            shards: chunk.iter().map(|s| s.id).collect(),
        };
        match admin.ask(req, DEADLINE).await? {
            CoordResponse::Locations(l) if l.len() == chunk.len() => locations.extend(l),
            other => return Err(unexpected("Locate", &other)),
        }
    }
    let status = admin.status().await?;
    let shards = layout
        .into_iter()
        .zip(locations)
        .map(|(s, nodes)| ShardRow {
            offset: s.index.saturating_mul(u64::from(shard_size)),
            length: s.len,
            id: s.id,
            copies: copies(&status, &nodes),
        })
        .collect();
    Ok(FileMap {
        path: path.to_string(),
        attr,
        shard_size,
        shards,
    })
}

fn copies(status: &ClusterStatus, nodes: &[NodeId]) -> Vec<Copy> {
    let known: HashMap<NodeId, _> = status.nodes.iter().map(|n| (n.id, n)).collect();
    nodes
        .iter()
        .map(|id| match known.get(id) {
            Some(n) => Copy {
                node: *id,
                address: n.addr.clone(),
                state: state_name(n).to_string(),
            },
            None => Copy {
                node: *id,
                address: String::new(),
                state: "unknown".to_string(),
            },
        })
        .collect()
}

/// The table for people: a summary line, then one row per shard.
pub fn render_table(m: &FileMap) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: inode {}, {} ({} bytes) in {} shards of up to {}",
        m.path,
        m.attr.ino,
        human_bytes(m.attr.size),
        m.attr.size,
        m.shards.len(),
        human_bytes(u64::from(m.shard_size))
    );
    let rows: Vec<[String; 4]> = m
        .shards
        .iter()
        .map(|s| {
            let nodes: Vec<String> = s
                .copies
                .iter()
                .map(|c| {
                    if c.address.is_empty() {
                        format!("{} ({})", c.node, c.state)
                    } else {
                        format!("{} {} ({})", c.node, c.address, c.state)
                    }
                })
                .collect();
            [
                s.offset.to_string(),
                s.length.to_string(),
                // The first 12 hex digits name a shard unambiguously in practice; the JSON
                // has the full ID.
                s.id.to_hex().chars().take(12).collect(),
                if nodes.is_empty() {
                    "(no copy recorded)".to_string()
                } else {
                    nodes.join(", ")
                },
            ]
        })
        .collect();
    let header = ["OFFSET", "LENGTH", "SHARD", "NODES"];
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 4]| {
        format!(
            "{:>w0$}  {:>w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        )
        .trim_end()
        .to_string()
    };
    let _ = writeln!(out, "{}", line(header));
    for r in &rows {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

/// The JSON for scripts: `{"path", "ino", "size", "shard_size", "shards": [{"index",
/// "offset", "length", "id", "nodes": [{"id", "address", "state"}]}]}`.
pub fn render_json(m: &FileMap) -> String {
    let ss = u64::from(m.shard_size.max(1));
    let shards: Vec<String> = m
        .shards
        .iter()
        .map(|s| {
            let nodes: Vec<String> = s
                .copies
                .iter()
                .map(|c| {
                    format!(
                        "{{\"id\":{},\"address\":{},\"state\":{}}}",
                        json_string(&c.node.to_string()),
                        json_string(&c.address),
                        json_string(&c.state)
                    )
                })
                .collect();
            format!(
                "{{\"index\":{},\"offset\":{},\"length\":{},\"id\":{},\"nodes\":[{}]}}",
                s.offset / ss,
                s.offset,
                s.length,
                json_string(&s.id.to_hex()),
                nodes.join(",")
            )
        })
        .collect();
    format!(
        "{{\"path\":{},\"ino\":{},\"size\":{},\"shard_size\":{},\"shards\":[{}]}}",
        json_string(&m.path),
        m.attr.ino,
        m.attr.size,
        m.shard_size,
        shards.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "proc /proc proc rw 0 0\n\
        dfs@127.0.0.1:7000 /tmp/c/mnt fuse rw,nosuid 0 0\n\
        dfs@127.0.0.1:7001 /mnt/my\\040dfs fuse rw 0 0\n\
        other /tmp/c/mnt/not-dfs ext4 rw 0 0\n\
        10.0.0.1:7000 /srv/fstab fuse.dfs rw 0 0\n";

    #[test]
    fn paths_under_a_dfs_mount_lose_the_mount_point() {
        let home = Path::new("/home/me");
        assert_eq!(fs_path("/tmp/c/mnt/dir/f", home, MOUNTS), "/dir/f");
        assert_eq!(fs_path("/tmp/c/mnt", home, MOUNTS), "/");
        assert_eq!(fs_path("/mnt/my dfs/x", home, MOUNTS), "/x");
        assert_eq!(fs_path("mnt/d/f", Path::new("/tmp/c"), MOUNTS), "/d/f");
        // A mount made by mount.fuse.dfs (fstab), known by its type.
        assert_eq!(fs_path("/srv/fstab/a", home, MOUNTS), "/a");
        // Not under a dfs mount: already a path inside the filesystem.
        assert_eq!(fs_path("/dir/f", home, MOUNTS), "/dir/f");
        assert_eq!(fs_path("/tmp/c/mntx/f", home, MOUNTS), "/tmp/c/mntx/f");
        assert_eq!(fs_path("dir/./a/../f", home, MOUNTS), "/dir/f");
        assert_eq!(fs_path("/../..", home, MOUNTS), "/");
    }
}
