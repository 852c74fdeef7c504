//! What each fuzz target checks, as plain functions: the targets in `fuzz_targets/` only
//! hand libFuzzer's bytes to these. Each must return normally for every input; a panic
//! (or, under the sanitizer, a memory error) is a finding.
//!
//! The corpus replay that CI runs (`dfs-proto/tests/fuzz_corpus.rs`,
//! `dfs-node/tests/fuzz_corpus.rs`) calls the same decoders on every saved input.

use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::frame::{self, FrameError, MAX_FRAME};
use dfs_proto::node_msg::{NodeRequest, NodeResponse};
use dfs_proto::{ShardId, WireResult};
use std::path::{Component, Path};

/// A whole frame as a server or client reads it: length prefix, cap, version, body, for
/// every message type that crosses the wire. Also checks that what decodes re-encodes to
/// something that decodes again (no message the encoder cannot carry).
pub fn frame(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = u32::from_le_bytes(*len);
    if len > MAX_FRAME || rest.len() < len as usize {
        return; // refused before allocation / truncated: read_msg's job, tested there
    }
    let payload = &rest[..len as usize];
    round_trip::<NodeRequest>(payload);
    round_trip::<CoordRequest>(payload);
    round_trip::<WireResult<NodeResponse>>(payload);
    round_trip::<WireResult<CoordResponse>>(payload);
    round_trip::<String>(payload);
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(payload: &[u8]) {
    match frame::decode::<T>(payload) {
        Ok(msg) => {
            let again = frame::encode(&msg).expect("a decoded message re-encodes");
            let _: T = frame::decode(&again[4..]).expect("a re-encoded message decodes");
        }
        Err(FrameError::Decode(_) | FrameError::Version { .. } | FrameError::Truncated) => {}
        Err(e) => panic!("unexpected decode error {e}"),
    }
}

/// Coordinator messages as bare postcard bodies (no frame), to spend the fuzzer's effort
/// on the message structure rather than on the header.
pub fn coord_msg(data: &[u8]) {
    let _ = postcard::from_bytes::<CoordRequest>(data);
    let _ = postcard::from_bytes::<WireResult<CoordResponse>>(data);
}

/// Storage-node messages as bare postcard bodies.
pub fn node_msg(data: &[u8]) {
    let _ = postcard::from_bytes::<NodeRequest>(data);
    let _ = postcard::from_bytes::<WireResult<NodeResponse>>(data);
}

/// The node's shard paths: from any 32 bytes (an ID off the wire) and from any string (a
/// file name found on disk), the path is three plain components below `shards/`.
pub fn shard_path(data: &[u8]) {
    if let Some(raw) = data.first_chunk::<32>() {
        check_path(ShardId(*raw));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(id) = ShardId::from_hex(s) {
            assert_eq!(id.to_hex(), s, "from_hex accepted a non-canonical name");
            check_path(id);
        }
    }
}

fn check_path(id: ShardId) {
    let rel = dfs_node::shard_store::relative_path(id);
    let parts: Vec<Component> = rel.components().collect();
    assert_eq!(parts.len(), 3, "{rel:?}");
    assert!(
        parts.iter().all(|c| matches!(c, Component::Normal(_))),
        "{rel:?} has a component that is not a plain name"
    );
    let root = Path::new("/data/shards");
    assert!(root.join(&rel).starts_with(root));
}
