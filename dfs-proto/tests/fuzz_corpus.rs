//! Replays the saved fuzz corpus (`fuzz/corpus/{frame,coord_msg,node_msg}`) through the
//! decoders, so every input the fuzzers ever found interesting stays a regression test in
//! an ordinary `cargo test`, with no nightly toolchain and no libFuzzer. The checks are
//! those of `fuzz/src/lib.rs`: decoding never panics, and what decodes re-encodes.
//!
//! `cargo test -p dfs-proto --test fuzz_corpus -- --ignored` (re)writes the seed inputs:
//! one valid encoding of every message, the starting point the fuzzers mutate.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use dfs_proto::coord_msg::*;
use dfs_proto::frame::{self, read_msg, FrameError, MAX_FRAME};
use dfs_proto::node_msg::{ByteRange, NodeRequest, NodeResponse, NodeStats, NodeStatus};
use dfs_proto::{ErrorCode, NodeId, ShardId, WireError, WireResult, ROOT_INO};
use serde::{de::DeserializeOwned, Serialize};
use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

fn round_trip<T: DeserializeOwned + Serialize>(payload: &[u8]) -> bool {
    match frame::decode::<T>(payload) {
        Ok(msg) => {
            let again = frame::encode(&msg).unwrap();
            let _: T = frame::decode(&again[4..]).unwrap();
            true
        }
        Err(FrameError::Decode(_) | FrameError::Version { .. } | FrameError::Truncated) => false,
        Err(e) => panic!("unexpected decode error {e}"),
    }
}

#[tokio::test]
async fn frame_corpus_never_panics() {
    let (mut decoded, all) = (0, inputs("frame"));
    for (name, data) in &all {
        // The async reader too: cap, truncation and version on the real read path.
        let _: Result<NodeRequest, _> = read_msg(&mut &data[..], MAX_FRAME).await;
        let _: Result<CoordRequest, _> = read_msg(&mut &data[..], MAX_FRAME).await;
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            continue;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_FRAME as usize || rest.len() < len {
            continue;
        }
        let p = &rest[..len];
        let any = round_trip::<NodeRequest>(p)
            | round_trip::<CoordRequest>(p)
            | round_trip::<WireResult<NodeResponse>>(p)
            | round_trip::<WireResult<CoordResponse>>(p);
        decoded += usize::from(any);
        let _ = name;
    }
    eprintln!(
        "{} frame inputs, {decoded} decode as some message",
        all.len()
    );
}

#[test]
fn message_corpora_never_panic() {
    for target in ["coord_msg", "node_msg"] {
        let all = inputs(target);
        for (_, data) in &all {
            let _ = postcard::from_bytes::<CoordRequest>(data);
            let _ = postcard::from_bytes::<WireResult<CoordResponse>>(data);
            let _ = postcard::from_bytes::<NodeRequest>(data);
            let _ = postcard::from_bytes::<WireResult<NodeResponse>>(data);
        }
        eprintln!("{target}: {} inputs", all.len());
    }
}

/// One valid value of every request and response, for the seed corpus.
fn samples() -> (
    Vec<NodeRequest>,
    Vec<WireResult<NodeResponse>>,
    Vec<CoordRequest>,
) {
    let id = ShardId::of(b"seed");
    let caller = Caller {
        uid: 1000,
        gid: 1000,
    };
    let node = vec![
        NodeRequest::Put {
            id,
            data: b"seed".to_vec().into(),
        },
        NodeRequest::Get { id, range: None },
        NodeRequest::Get {
            id,
            range: Some(ByteRange { offset: 1, len: 2 }),
        },
        NodeRequest::Delete { id },
        NodeRequest::Replicate {
            id,
            sources: vec!["127.0.0.1:7001".into()],
        },
        NodeRequest::Status,
    ];
    let node_resp = vec![
        Ok(NodeResponse::Stored),
        Ok(NodeResponse::Data(b"seed".to_vec())),
        Ok(NodeResponse::Deleted),
        Ok(NodeResponse::Status(NodeStatus {
            node: NodeId(1),
            stats: NodeStats {
                capacity: 10,
                used: 1,
                free: 9,
                shards: 1,
            },
        })),
        Err(WireError::new(ErrorCode::Unauthorized, "no")),
    ];
    let q = |name: &str| name.to_string();
    let coord = vec![
        CoordRequest::Lookup {
            parent: ROOT_INO,
            name: q("a"),
        },
        CoordRequest::GetAttr { ino: ROOT_INO },
        CoordRequest::SetAttr {
            ino: ROOT_INO,
            caller,
            set: SetAttrs {
                perm: Some(0o600),
                size: Some(3),
                mtime: Some(SetTime::Now),
                ..Default::default()
            },
        },
        CoordRequest::Create {
            parent: ROOT_INO,
            name: q("f"),
            kind: FileKind::File,
            perm: 0o644,
            rdev: 0,
            caller,
        },
        CoordRequest::Symlink {
            parent: ROOT_INO,
            name: q("l"),
            target: q("t"),
            caller,
        },
        CoordRequest::Rename {
            parent: ROOT_INO,
            name: q("a"),
            new_parent: ROOT_INO,
            new_name: q("b"),
            flags: RenameFlags::default(),
        },
        CoordRequest::ReadDir {
            ino: ROOT_INO,
            after: Some(q("a")),
            limit: 10,
        },
        CoordRequest::SetXattr {
            ino: ROOT_INO,
            name: q("user.x"),
            value: b"v".to_vec(),
            mode: XattrMode::Create,
        },
        CoordRequest::GetLayout {
            ino: ROOT_INO,
            from: 0,
            limit: 4,
        },
        CoordRequest::Place {
            shards: vec![(id, 4)],
        },
        CoordRequest::Commit {
            ino: ROOT_INO,
            size: 4,
            mtime: 1,
            caller,
            set: SetAttrs {
                perm: Some(0o640),
                atime: Some(SetTime::Now),
                ..SetAttrs::default()
            },
            shards: vec![CommitShard {
                index: 0,
                id,
                len: 4,
                shard_len: 4,
                stored_on: vec![NodeId(1)],
            }],
        },
        CoordRequest::Register {
            node: NodeId(1),
            addr: q("127.0.0.1:7001"),
            stats: NodeStats::default(),
        },
        CoordRequest::Inventory {
            node: NodeId(1),
            shards: vec![id],
            first: true,
            last: true,
        },
        CoordRequest::Touch {
            shards: vec![id],
            open: vec![7],
        },
        CoordRequest::Status,
        CoordRequest::Fsck,
    ];
    (node, node_resp, coord)
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let (node, node_resp, coord) = samples();
    let write = |target: &str, name: String, bytes: Vec<u8>| {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (i, m) in node.iter().enumerate() {
        write(
            "frame",
            format!("seed-node-req-{i}"),
            frame::encode(m).unwrap(),
        );
        write(
            "node_msg",
            format!("seed-req-{i}"),
            postcard::to_stdvec(m).unwrap(),
        );
    }
    for (i, m) in node_resp.iter().enumerate() {
        write(
            "frame",
            format!("seed-node-resp-{i}"),
            frame::encode(m).unwrap(),
        );
        write(
            "node_msg",
            format!("seed-resp-{i}"),
            postcard::to_stdvec(m).unwrap(),
        );
    }
    for (i, m) in coord.iter().enumerate() {
        write(
            "frame",
            format!("seed-coord-req-{i}"),
            frame::encode(m).unwrap(),
        );
        write(
            "coord_msg",
            format!("seed-req-{i}"),
            postcard::to_stdvec(m).unwrap(),
        );
    }
    // Hand-made edge cases: the header alone, a frame over the cap, a wrong version.
    write("frame", "edge-header-only".into(), vec![2, 0, 0, 0, 2, 0]);
    write(
        "frame",
        "edge-over-cap".into(),
        u32::MAX.to_le_bytes().to_vec(),
    );
    write(
        "frame",
        "edge-version-99".into(),
        vec![3, 0, 0, 0, 99, 0, 5],
    );
    write("shard_path", "seed-hex".into(), id_hex().into_bytes());
    write(
        "shard_path",
        "seed-dotdot".into(),
        b"../../../../etc/passwd".to_vec(),
    );
}

fn id_hex() -> String {
    ShardId::of(b"seed").to_hex()
}
