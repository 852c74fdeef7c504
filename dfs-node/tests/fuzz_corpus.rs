//! Replays the saved fuzz corpus of the `shard_path` target (`fuzz/corpus/shard_path`)
//! with the same checks as `fuzz/src/lib.rs`: whatever the bytes, a shard's path is three
//! plain names below `shards/`, and only canonical hex names are accepted from disk.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use dfs_node::shard_store::relative_path;
use dfs_proto::ShardId;
use std::path::{Component, Path, PathBuf};

fn check_path(id: ShardId) {
    let rel = relative_path(id);
    let parts: Vec<Component> = rel.components().collect();
    assert_eq!(parts.len(), 3, "{rel:?}");
    assert!(
        parts.iter().all(|c| matches!(c, Component::Normal(_))),
        "{rel:?}"
    );
    let root = Path::new("/data/shards");
    assert!(root.join(&rel).starts_with(root));
}

#[test]
fn shard_path_corpus_stays_inside_the_data_directory() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/shard_path");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        if let Some(raw) = data.first_chunk::<32>() {
            check_path(ShardId(*raw));
        }
        if let Ok(s) = std::str::from_utf8(&data) {
            if let Some(id) = ShardId::from_hex(s) {
                assert_eq!(id.to_hex(), s);
                check_path(id);
            }
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
    eprintln!("{n} shard_path inputs");
}

#[test]
fn names_that_try_to_escape_are_not_shard_ids() {
    for bad in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "..",
        "",
        &"A".repeat(64),
        &format!("{}/", "a".repeat(63)),
        &format!("{}\0", "a".repeat(63)),
    ] {
        assert!(ShardId::from_hex(bad).is_none(), "{bad:?}");
    }
}
