//! Scrub passes over real shard files. The coordinator address is dead: reports of corrupt
//! copies fail quietly in the background, which is what the node does when its
//! coordinator is down.

use super::*;
use crate::shard_store::ShardStore;
use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::ShardId;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

struct Fixture {
    _certs: tempfile::TempDir,
    data: tempfile::TempDir,
    store: Arc<ShardStore>,
    corruption: CorruptionHandler,
}

fn fixture() -> Fixture {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 1).unwrap();
    let tls = ClusterTls::load_dir(certs.path(), "node-1").unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(ShardStore::open(data.path(), Some(1 << 30), 0).unwrap());
    let client = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    let corruption = CorruptionHandler::new(store.clone(), client, "127.0.0.1:1".into());
    Fixture {
        _certs: certs,
        data,
        store,
        corruption,
    }
}

fn scrubber(f: &Fixture, rate: u64) -> Scrubber {
    Scrubber::new(
        f.store.clone(),
        f.corruption.clone(),
        rate,
        Duration::from_secs(3600),
    )
}

fn shard_path(root: &Path, id: ShardId) -> PathBuf {
    let hex = id.to_hex();
    root.join("shards")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(hex)
}

/// Stores three shards of different sizes; returns their ids and total length.
fn fill(store: &ShardStore) -> (Vec<ShardId>, u64) {
    let mut ids = Vec::new();
    let mut total = 0;
    for (k, len) in [1000usize, 70_000, 200_000].into_iter().enumerate() {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + k * 7 + i / 991) as u8).collect();
        let id = ShardId::of(&data);
        store.put(id, &data).unwrap();
        ids.push(id);
        total += len as u64;
    }
    (ids, total)
}

#[tokio::test]
async fn healthy_store_scrubs_clean() {
    let f = fixture();
    let (_, total) = fill(&f.store);
    let r = scrubber(&f, u64::MAX).pass().await.unwrap();
    assert_eq!((r.shards, r.bytes, r.corrupt), (3, total, 0), "{r:?}");
    assert_eq!(f.store.stats().shards, 3);
}

#[tokio::test]
async fn empty_store_scrubs_clean() {
    let f = fixture();
    let r = scrubber(&f, u64::MAX).pass().await.unwrap();
    assert_eq!((r.shards, r.bytes, r.corrupt), (0, 0, 0));
}

#[tokio::test]
async fn flipped_byte_is_found_counted_and_deleted() {
    let f = fixture();
    let (ids, total) = fill(&f.store);
    let victim = ids[2];
    let path = shard_path(f.data.path(), victim);
    // A byte in the last block of the 200 000-byte shard (4 blocks: header + 4 sums first).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let at = crate::shard_file::Header::new(200_000).data_offset() + 199_000;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 1], at).unwrap();
    drop(file);

    let s = scrubber(&f, u64::MAX);
    let r = s.pass().await.unwrap();
    assert_eq!((r.shards, r.corrupt), (3, 1), "{r:?}");
    assert_eq!(
        r.bytes,
        total - 200_000,
        "only good bytes count as verified"
    );
    assert!(!path.exists(), "the corrupt copy must be deleted");
    assert_eq!(f.store.stats().shards, 2);
    assert_eq!(
        f.store.get(victim, None).unwrap_err().code,
        ErrorCode::NotFound
    );

    // The next pass finds a clean store.
    let r = s.pass().await.unwrap();
    assert_eq!((r.shards, r.corrupt), (2, 0), "{r:?}");
}

#[tokio::test]
async fn rate_limits_the_pass() {
    let f = fixture();
    let (_, total) = fill(&f.store); // 271 000 bytes
                                     // At 1 MB/s the pass must take at least 0.27 s; unthrottled it takes milliseconds.
    let r = scrubber(&f, 1_000_000).pass().await.unwrap();
    let floor = Duration::from_secs_f64(total as f64 / 1e6);
    assert!(r.elapsed >= floor, "{:?} < {floor:?}", r.elapsed);
}

#[tokio::test]
async fn zero_rate_disables_the_scrubber() {
    let f = fixture();
    // run() must return at once rather than loop forever.
    tokio::time::timeout(Duration::from_secs(5), scrubber(&f, 0).run())
        .await
        .unwrap();
}
