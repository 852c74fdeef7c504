//! Unit tests of the shard store against real files in temporary directories.

use super::*;
use dfs_proto::ErrorCode;

/// Deterministic bytes that differ from block to block (xorshift), so a read from the wrong
/// offset cannot pass by accident.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed * 2 + 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn open(dir: &Path) -> ShardStore {
    ShardStore::open(dir, None, 0).unwrap()
}

fn range(offset: u32, len: u32) -> Option<ByteRange> {
    Some(ByteRange { offset, len })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Flips one bit of the file at `offset`.
fn flip(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn put_get_round_trip_and_layout() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(1 << 20, 1);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    assert_eq!(s.get(id, None).unwrap(), data);

    let hex = id.to_hex();
    let path = d
        .path()
        .join("shards")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex);
    let raw = fs::read(&path).unwrap();
    assert_eq!(&raw[..8], b"DFSSHRD1");
    assert_eq!(&raw[8..12], &2u32.to_le_bytes(), "format version");
    assert_eq!(raw.len(), 20 + 16 * 4 + (1 << 20));
    assert_eq!(&raw[raw.len() - data.len()..], &data[..]);

    // Idempotent: a second put changes nothing.
    s.put(id, &data).unwrap();
    let st = s.stats();
    assert_eq!((st.shards, st.used), (1, raw.len() as u64));
    assert_eq!(s.list().unwrap(), vec![id]);

    // Empty shards are legal too.
    let empty = ShardId::of(b"");
    s.put(empty, b"").unwrap();
    assert_eq!(s.get(empty, None).unwrap(), b"");
    assert_eq!(s.get(empty, range(0, 0)).unwrap(), b"");
}

#[test]
fn range_reads() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(1 << 20, 2);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    let n = data.len() as u32;
    for (off, len) in [
        (500_000, 4096),        // middle of a block
        (65536 - 2048, 4096),   // across a block boundary
        (n - 4096, 4096),       // the end
        (0, n),                 // everything
        (n - 1, 1),             // last byte
        (3 * 65536, 2 * 65536), // exactly two whole blocks
        (n, 0),                 // empty, at the end
    ] {
        let got = s.get(id, range(off, len)).unwrap();
        assert_eq!(
            got,
            &data[off as usize..(off + len) as usize],
            "{off}+{len}"
        );
    }
    for (off, len) in [(n - 10, 20), (n + 1, 0), (u32::MAX, u32::MAX)] {
        let e = s.get(id, range(off, len)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid, "{off}+{len}: {e}");
    }
}

#[test]
fn flipped_byte_is_corrupt_for_whole_and_covering_range_reads() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(200_000, 3); // blocks 0..=3, the last one short
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    let data_offset = Header::new(200_000).data_offset();
    flip(&s.shard_path(id), data_offset + 70_000); // in block 1

    let e = s.get(id, None).unwrap_err();
    assert_eq!(e.code, ErrorCode::Corrupt, "{e}");
    for (off, len) in [(70_000, 1), (65_000, 1000), (0, 200_000)] {
        let e = s.get(id, range(off, len)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Corrupt, "{off}+{len}");
    }
    // Blocks 0, 2 and 3 are intact and still readable.
    assert_eq!(s.get(id, range(0, 65536)).unwrap(), &data[..65536]);
    assert_eq!(s.get(id, range(140_000, 60_000)).unwrap(), &data[140_000..]);

    // A put of the good bytes repairs the damaged copy.
    s.put(id, &data).unwrap();
    assert_eq!(s.get(id, None).unwrap(), data);
    assert_eq!(s.stats().shards, 1);
}

#[test]
fn damaged_checksum_is_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(100_000, 4);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    flip(&s.shard_path(id), 20 + 4 + 1); // checksum (CRC-32) of block 1
    assert_eq!(s.get(id, None).unwrap_err().code, ErrorCode::Corrupt);
    assert_eq!(
        s.get(id, range(90_000, 10)).unwrap_err().code,
        ErrorCode::Corrupt
    );
    assert_eq!(s.get(id, range(0, 10)).unwrap(), &data[..10]);
}

#[test]
fn hash_mismatch_is_refused_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let e = s.put(ShardId::of(b"one thing"), b"another").unwrap_err();
    assert_eq!(e.code, ErrorCode::Corrupt);
    assert!(e.message.contains("does not match its id"), "{e}");
    assert!(files_under(&d.path().join("shards")).is_empty());
    assert!(files_under(&d.path().join("tmp")).is_empty());
    assert_eq!(s.stats().shards, 0);
}

#[test]
fn no_space_leaves_nothing_and_used_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let s = ShardStore::open(d.path(), Some(150_000), 0).unwrap();
    let a = bytes(100_000, 5);
    s.put(ShardId::of(&a), &a).unwrap();
    let before = s.stats();
    assert_eq!(before.capacity, 150_000);
    assert_eq!(before.free, 150_000 - before.used);

    let b = bytes(100_000, 6);
    let e = s.put(ShardId::of(&b), &b).unwrap_err();
    assert_eq!(e.code, ErrorCode::NoSpace, "{e}");
    assert_eq!(s.stats(), before);
    assert_eq!(files_under(&d.path().join("shards")).len(), 1);
    assert!(files_under(&d.path().join("tmp")).is_empty());
    // The failed put released its reservation: a small shard still fits.
    let c = bytes(1000, 7);
    s.put(ShardId::of(&c), &c).unwrap();
}

#[test]
fn concurrent_puts_do_not_overcommit() {
    let d = tempfile::tempdir().unwrap();
    // Room for three 100 KB shard files, not four.
    let s = ShardStore::open(d.path(), Some(3 * 100_200 + 50_000), 0).unwrap();
    let shards: Vec<Vec<u8>> = (0..8).map(|k| bytes(100_000, 100 + k)).collect();
    let ok = std::thread::scope(|t| {
        let handles: Vec<_> = shards
            .iter()
            .map(|b| t.spawn(|| s.put(ShardId::of(b), b).is_ok()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    let st = s.stats();
    assert_eq!(ok, 3);
    assert_eq!(st.shards, 3);
    assert!(st.used <= st.capacity);
}

#[test]
fn not_found() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let id = ShardId::of(b"absent");
    assert_eq!(s.get(id, None).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(
        s.get(id, range(0, 1)).unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(s.delete(id).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn delete_frees_space() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(10_000, 8);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    s.delete(id).unwrap();
    assert_eq!(s.get(id, None).unwrap_err().code, ErrorCode::NotFound);
    let st = s.stats();
    assert_eq!((st.used, st.shards), (0, 0));
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn a_put_recreates_a_fanout_directory_removed_behind_the_stores_back() {
    let d = tempfile::tempdir().unwrap();
    for durable in [false, true] {
        let s = open(&d.path().join(format!("durable-{durable}"))).with_durable_puts(durable);
        let a = bytes(5_000, 21);
        let id_a = ShardId::of(&a);
        s.put(id_a, &a).unwrap();
        // The store remembers shards/aa/bb now. Remove the directory with its shard, as an
        // operator cleaning up by hand might, then put the same shard again: the rename
        // finds no directory, and the put must make it again rather than fail.
        let dir = s.shard_path(id_a).parent().unwrap().to_path_buf();
        fs::remove_dir_all(&dir).unwrap();
        s.put(id_a, &a).unwrap();
        assert_eq!(s.get(id_a, None).unwrap(), a);
        assert!(dir.is_dir());
    }
}

#[test]
fn reopen_rebuilds_counters_cleans_tmp_and_keeps_node_id() {
    let d = tempfile::tempdir().unwrap();
    let (node, stats, id) = {
        let s = open(d.path());
        let data = bytes(70_000, 9);
        let id = ShardId::of(&data);
        s.put(id, &data).unwrap();
        (s.node_id(), s.stats(), id)
    };
    let id_file = fs::read_to_string(d.path().join("node.id")).unwrap();
    assert_eq!(id_file.trim(), node.to_string());
    assert_eq!(id_file.trim().len(), 16);

    // Leftovers of a crash mid-write, and a stray file in the shard tree.
    fs::write(d.path().join("tmp").join("half-written"), b"xx").unwrap();
    fs::create_dir(d.path().join("tmp").join("dir")).unwrap();
    let hex = id.to_hex();
    let stray = d.path().join("shards").join(&hex[..2]).join(&hex[2..4]);
    fs::write(stray.join("not-a-shard"), b"?").unwrap();

    let s = open(d.path());
    assert_eq!(s.node_id(), node);
    assert!(files_under(&d.path().join("tmp")).is_empty());
    assert!(fs::read_dir(d.path().join("tmp")).unwrap().next().is_none());
    let again = s.stats();
    assert_eq!((again.used, again.shards), (stats.used, stats.shards));
    assert_eq!(s.list().unwrap(), vec![id]);
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let _s = open(d.path());
    let e = ShardStore::open(d.path(), None, 0).err().unwrap();
    assert!(format!("{e:#}").contains("in use"), "{e:#}");
}

#[test]
fn malformed_node_id_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("node.id"), "not hex\n").unwrap();
    assert!(ShardStore::open(d.path(), None, 0).is_err());
}

#[test]
fn malformed_shard_files_are_corrupt_not_panics() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(150_000, 10);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    let path = s.shard_path(id);
    let good = fs::read(&path).unwrap();

    let mut huge = good.clone();
    huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut small = good.clone();
    small[12..16].copy_from_slice(&10u32.to_le_bytes());
    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"NOTSHARD");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("short header", good[..7].to_vec()),
        ("header only", good[..20].to_vec()),
        ("truncated data", good[..good.len() - 1].to_vec()),
        ("trailing garbage", [&good[..], b"x"].concat()),
        ("huge length", huge),
        ("length too small", small),
        ("bad magic", magic),
    ];
    for (what, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        for r in [None, range(0, 10), range(140_000, 10)] {
            let e = s.get(id, r).unwrap_err();
            assert_eq!(e.code, ErrorCode::Corrupt, "{what} {r:?}: {e}");
        }
    }
}

#[test]
fn capacity_from_filesystem_minus_reserve() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let st = s.stats();
    assert!(st.capacity > 0);
    assert_eq!(st.free, st.capacity - st.used);
    drop(s);
    // A reserve larger than any disk leaves no room.
    let s = ShardStore::open(d.path(), None, u64::MAX).unwrap();
    assert_eq!(s.stats().capacity, 0);
    let e = s.put(ShardId::of(b"x"), b"x").unwrap_err();
    assert_eq!(e.code, ErrorCode::NoSpace);
}

#[test]
fn read_names_the_bad_block_and_discard_removes_only_that_file() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(200_000, 11);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    flip(&s.shard_path(id), 20 + 4 * 4 + 70_000); // in block 1

    let Err(ReadError::Corrupt(c)) = s.read(id, range(65_000, 1000)) else {
        panic!("damage not found");
    };
    assert_eq!((c.id, &c.defect), (id, &Defect::Block(1)));
    assert_eq!(c.defect.to_string(), "block 1 failed verification");

    // A put renamed a good copy over the damaged one since: discard must keep it.
    s.put(id, &data).unwrap();
    assert!(!s.discard(&c).unwrap());
    assert_eq!(s.get(id, None).unwrap(), data);

    flip(&s.shard_path(id), 20 + 4 * 4 + 70_000);
    let Err(ReadError::Corrupt(c)) = s.read(id, None) else {
        panic!("damage not found");
    };
    assert!(s.discard(&c).unwrap());
    assert!(!s.shard_path(id).exists());
    assert_eq!((s.stats().shards, s.stats().used), (0, 0));
    // A second discard (a concurrent reader found the same damage) is harmless.
    assert!(!s.discard(&c).unwrap());
    assert_eq!(s.get(id, None).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn damaged_checksums_with_their_data_are_a_content_defect() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(1000, 12);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    // Rewrite data and its checksum consistently: only the shard's name can tell.
    let mut other = data.clone();
    other[0] ^= 1;
    let path = s.shard_path(id);
    fs::write(&path, [shard_file::encode(&other).0, other].concat()).unwrap();
    match s.read(id, None) {
        Err(ReadError::Corrupt(c)) => assert_eq!(c.defect, Defect::Content),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_whole_read_checking_blocks_only_skips_the_id_check_and_a_put_still_repairs() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(100_000, 13);
    let id = ShardId::of(&data);
    s.put(id, &data).unwrap();
    assert_eq!(s.read_with(id, None, Verify::Blocks).unwrap(), data);
    // Other bytes with consistent checksums under this name: the block checks pass (the
    // caller of such a read hashes the bytes itself), the full check does not.
    let mut other = data.clone();
    other[99_999] ^= 1;
    let path = s.shard_path(id);
    fs::write(
        &path,
        [shard_file::encode(&other).0, other.clone()].concat(),
    )
    .unwrap();
    assert_eq!(s.read_with(id, None, Verify::Blocks).unwrap(), other);
    assert!(matches!(
        s.read_with(id, None, Verify::Content),
        Err(ReadError::Corrupt(Corruption {
            defect: Defect::Content,
            ..
        }))
    ));
    // A put of the right bytes does not take that copy for "already here": it compares
    // the copy with the verified bytes and replaces it.
    s.put(id, &data).unwrap();
    assert_eq!(s.read(id, None).unwrap(), data);
    assert_eq!(s.stats().shards, 1);
}

/// A shard file of format version 1 (SHA-256 per block) exactly as the first release wrote
/// it: 70,000 bytes, so two blocks, the second one short. Written by `ShardStore::put` at
/// commit 544dcd3, before version 2 existed.
const V1_FIXTURE: &str = "40e2a200e78375a96c3ce35df7348d179c49885c18c1115f81b73017faff98b2";

fn v1_fixture_data() -> Vec<u8> {
    (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

/// Installs the checked-in version 1 file into a fresh store.
fn store_with_v1_fixture(dir: &Path) -> (ShardStore, ShardId) {
    let id = ShardId::from_hex(V1_FIXTURE).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{V1_FIXTURE}.v1"));
    let raw = fs::read(&src).unwrap();
    assert_eq!(&raw[8..12], &1u32.to_le_bytes(), "the fixture is version 1");
    let dst = dir.join("shards").join(relative_path(id));
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::write(&dst, raw).unwrap();
    // Opened after the file is in place, as a node restarted on the new release would be.
    (open(dir), id)
}

#[test]
fn version_1_files_from_the_first_release_stay_readable_and_verified() {
    let d = tempfile::tempdir().unwrap();
    let (s, id) = store_with_v1_fixture(d.path());
    let data = v1_fixture_data();
    assert_eq!(ShardId::of(&data), id);
    assert_eq!(s.list().unwrap(), vec![id]);
    assert_eq!(s.stats().used, 20 + 2 * 32 + 70_000);
    for verify in [Verify::Blocks, Verify::Content] {
        assert_eq!(s.read_with(id, None, verify).unwrap(), data);
    }
    assert_eq!(
        s.get(id, range(65_000, 2_000)).unwrap(),
        &data[65_000..67_000]
    );
    assert_eq!(s.get(id, range(69_999, 1)).unwrap(), &data[69_999..]);
    // A put of the same bytes is a no-op: the old file stays as it is.
    s.put(id, &data).unwrap();
    assert_eq!(s.stats().used, 20 + 2 * 32 + 70_000);

    // Damage in block 1 is found by whole and range reads, and named.
    flip(&s.shard_path(id), 20 + 2 * 32 + 66_000);
    for verify in [Verify::Blocks, Verify::Content] {
        match s.read_with(id, None, verify) {
            Err(ReadError::Corrupt(c)) => assert_eq!(c.defect, Defect::Block(1)),
            other => panic!("{other:?}"),
        }
    }
    match s.read(id, range(66_000, 1)) {
        Err(ReadError::Corrupt(c)) => assert_eq!(c.defect, Defect::Block(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.get(id, range(0, 65_536)).unwrap(), &data[..65_536]);
    // Damage in a version 1 checksum too.
    flip(&s.shard_path(id), 20 + 2 * 32 + 66_000);
    flip(&s.shard_path(id), 20 + 3);
    assert_eq!(s.get(id, range(0, 1)).unwrap_err().code, ErrorCode::Corrupt);

    // A put of the good bytes replaces the damaged old copy with a version 2 file.
    s.put(id, &data).unwrap();
    let raw = fs::read(s.shard_path(id)).unwrap();
    assert_eq!(&raw[8..12], &2u32.to_le_bytes());
    assert_eq!(s.stats().used, 20 + 2 * 4 + 70_000);
    assert_eq!(s.get(id, None).unwrap(), data);
}

#[test]
fn version_1_content_defect_is_found() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let data = bytes(1000, 14);
    let id = ShardId::of(&data);
    let mut other = data.clone();
    other[0] ^= 1;
    let path = d.path().join("shards").join(relative_path(id));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, [shard_file::prefix_v1(&other), other].concat()).unwrap();
    match s.read(id, None) {
        Err(ReadError::Corrupt(c)) => assert_eq!(c.defect, Defect::Content),
        other => panic!("{other:?}"),
    }
}
