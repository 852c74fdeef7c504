//! The bytes written to an open file since they were last stored: one buffer per shard
//! ([`DirtyShard`]), and the file's set of them ([`Buffers`]), whose memory counts against
//! the file's and the mount's dirty budgets.
//!
//! Shards are content-addressed and immutable: changing 4 KiB of a 1 MiB shard means
//! storing a new 1 MiB shard, so its other bytes must be read from the nodes first. Doing
//! that read inside `write()` made every small write into a shard cost a 1 MiB round trip
//! (read-modify-write), ~50 random writes per second. So a shard is buffered in one of two
//! forms:
//! - [`DirtyShard::Full`]: every byte of the shard (a new shard, an append, or a write that
//!   replaces all of the stored content). Uploading it needs nothing else.
//! - [`DirtyShard::Sparse`]: only the byte ranges written (patches); the rest still lives
//!   in the stored shard (the *base*). `write()` returns at memory speed; the base is
//!   fetched once, patched, hashed and stored only when the shard is flushed (eviction
//!   under the dirty budget, fsync, close). Reads overlay the patches on the base.
//!
//! Which stored shard is the base is decided by the owner (`file.rs`): it is whatever the
//! shard index holds once earlier uploads of that index have finished. What this file
//! records is how many of the base's bytes still belong to the file (`valid`): a truncate
//! followed by an extension must read zeros, not the old bytes, past the cut.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The written ranges of one shard whose other bytes are in a stored base shard.
#[derive(Debug, Clone, Default)]
pub struct Sparse {
    /// Bytes of the base (from its start) that are part of the file; past them, and up
    /// to `len`, unwritten bytes read as zeros (a hole).
    valid: usize,
    /// Length of the shard's content: `valid`, or the end of the last patch if further.
    len: usize,
    /// Written bytes by offset in the shard. Invariant: extents neither overlap nor touch
    /// (touching ones are merged), so a sequential writer builds one growing extent.
    patches: BTreeMap<usize, Vec<u8>>,
    /// Sum of the patches' lengths: the memory this buffer accounts for.
    mem: usize,
}

impl Sparse {
    /// A shard whose first `valid` bytes are in its base, with nothing written yet.
    pub fn new(valid: usize) -> Sparse {
        Sparse {
            valid,
            len: valid,
            ..Sparse::default()
        }
    }

    pub fn valid(&self) -> usize {
        self.valid
    }

    /// Records `data` written at `at`; later writes win over earlier ones where they
    /// overlap.
    pub fn write(&mut self, at: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = at + data.len();
        let mut freed = 0;
        // An extent that starts at or before `at` and reaches it absorbs the write (a
        // sequential writer appends to its one extent without copying it again).
        let mut start = at;
        let mut ext = Vec::new();
        if let Some((&s, v)) = self.patches.range(..=at).next_back() {
            if s + v.len() >= at {
                start = s;
                ext = self.patches.remove(&s).unwrap_or_default();
                freed += ext.len();
            }
        }
        // Extents starting inside (at, end] are swallowed; only the part of one of them
        // past `end` survives.
        let later: Vec<usize> = self.patches.range(at..=end).map(|(&s, _)| s).collect();
        let mut tail: Option<(usize, Vec<u8>)> = None;
        for s in later {
            if let Some(v) = self.patches.remove(&s) {
                freed += v.len();
                if s + v.len() > end {
                    tail = Some((s, v));
                }
            }
        }
        let tail_end = tail.as_ref().map_or(end, |(s, v)| s + v.len());
        let new_len = ext.len().max(tail_end - start);
        ext.resize(new_len, 0);
        if let Some((s, v)) = tail {
            let keep = &v[end - s..];
            ext[end - start..end - start + keep.len()].copy_from_slice(keep);
        }
        ext[at - start..end - start].copy_from_slice(data);
        self.mem = self.mem - freed + ext.len();
        self.patches.insert(start, ext);
        self.len = self.len.max(end);
    }

    /// Bytes held in memory.
    pub fn mem(&self) -> usize {
        self.mem
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if some byte of `a..b` (clamped to the base's valid bytes) is not written,
    /// i.e. a read or an upload of that range needs the base.
    pub fn needs_base(&self, a: usize, b: usize) -> bool {
        let b = b.min(self.valid);
        if a >= b {
            return false;
        }
        let mut pos = a;
        let first = self.patches.range(..=a).next_back().map_or(a, |(&s, _)| s);
        for (&s, v) in self.patches.range(first..b) {
            if s > pos {
                return true;
            }
            pos = pos.max(s + v.len());
            if pos >= b {
                return false;
            }
        }
        pos < b
    }

    /// The written bytes inside `a..b`, as (offset from `a`, bytes), in order.
    pub fn patches_in(&self, a: usize, b: usize) -> Vec<(usize, Vec<u8>)> {
        let first = self.patches.range(..=a).next_back().map_or(a, |(&s, _)| s);
        self.patches
            .range(first..b)
            .filter_map(|(&s, v)| {
                let (from, to) = (s.max(a), (s + v.len()).min(b));
                (from < to).then(|| (from - a, v[from - s..to - s].to_vec()))
            })
            .collect()
    }

    /// The shard's full content: the base's valid bytes, zeros up to `len`, the patches
    /// on top. `base` must hold at least `valid` bytes when `needs_base(0, len)`.
    pub fn merge(&self, base: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        out.extend_from_slice(&base[..self.valid.min(base.len())]);
        out.resize(self.len, 0);
        for (&s, v) in &self.patches {
            out[s..s + v.len()].copy_from_slice(v);
        }
        out
    }

    /// Forgets everything at or past `n` (content that a later state of the shard no
    /// longer has).
    pub fn cut(&mut self, n: usize) {
        let gone: Vec<usize> = self.patches.range(n..).map(|(&s, _)| s).collect();
        for s in gone {
            if let Some(v) = self.patches.remove(&s) {
                self.mem -= v.len();
            }
        }
        if let Some((&s, v)) = self.patches.range_mut(..n).next_back() {
            if s + v.len() > n {
                self.mem -= s + v.len() - n;
                v.truncate(n - s);
            }
        }
        self.valid = self.valid.min(n);
        self.len = self.len.min(n);
    }

    /// If one extent from offset 0 covers every valid base byte, the base is not needed
    /// any more: that extent is the whole shard.
    fn take_whole(&mut self) -> Option<Vec<u8>> {
        let whole = self.patches.len() == 1
            && self
                .patches
                .get(&0)
                .is_some_and(|v| v.len() >= self.valid && v.len() == self.len);
        if whole {
            self.mem = 0;
            return self.patches.remove(&0);
        }
        None
    }
}

/// One shard's buffered writes.
#[derive(Debug)]
pub enum DirtyShard {
    /// All of the shard's bytes.
    Full(Vec<u8>),
    /// Written ranges over a stored base.
    Sparse(Sparse),
}

impl DirtyShard {
    /// Bytes held in memory (what the dirty budgets count).
    pub fn mem(&self) -> usize {
        match self {
            DirtyShard::Full(b) => b.len(),
            DirtyShard::Sparse(s) => s.mem(),
        }
    }

    /// Length of the shard's content.
    pub fn len(&self) -> usize {
        match self {
            DirtyShard::Full(b) => b.len(),
            DirtyShard::Sparse(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a write of `data` at `at` (offset inside the shard).
    pub fn write(&mut self, at: usize, data: &[u8]) {
        match self {
            DirtyShard::Full(buf) => {
                if buf.len() < at + data.len() {
                    buf.resize(at + data.len(), 0);
                }
                buf[at..at + data.len()].copy_from_slice(data);
            }
            DirtyShard::Sparse(s) => {
                s.write(at, data);
                if let Some(full) = s.take_whole() {
                    *self = DirtyShard::Full(full);
                }
            }
        }
    }

    /// Layers `newer` (written after `self` was taken for an upload that then failed) on
    /// top of `self`, so that neither's bytes are lost.
    pub fn combine(self, newer: DirtyShard) -> DirtyShard {
        let n = match newer {
            // A full buffer never depends on what was there before.
            DirtyShard::Full(_) => return newer,
            DirtyShard::Sparse(n) => n,
        };
        match self {
            DirtyShard::Full(old) => DirtyShard::Full(n.merge(&old)),
            DirtyShard::Sparse(mut old) => {
                // `n.valid` bytes of the old content were still part of the file when
                // `n` began; what lay past them was cut (a truncate) and must not return.
                old.cut(n.valid);
                for (s, v) in &n.patches {
                    old.write(*s, v);
                }
                old.len = old.len.max(n.len);
                DirtyShard::Sparse(old)
            }
        }
    }
}

/// The shard to flush when a file is over its dirty budget: the one holding the most
/// bytes, so one read-modify-write of a shard frees as much memory as possible (for
/// random writes, the most-patched shard; the oldest would be no fuller than average).
/// Ties go to the lowest index.
pub fn victim(dirty: &BTreeMap<u64, DirtyShard>) -> Option<u64> {
    let mut best: Option<(u64, usize)> = None;
    for (&i, d) in dirty {
        if best.is_none_or(|(_, m)| d.mem() > m) {
            best = Some((i, d.mem()));
        }
    }
    best.map(|(i, _)| i)
}

/// The dirty shards of one file by index, and the memory they hold. That memory is
/// counted twice: here, for the file's own budget, and in a total shared by every file of
/// the mount (`budget`), for the mount's.
#[derive(Debug, Default)]
pub struct Buffers {
    shards: BTreeMap<u64, DirtyShard>,
    /// Memory held by `shards`, also counted in the mount-wide `budget`.
    bytes: usize,
    budget: Arc<AtomicUsize>,
}

impl Buffers {
    /// Connects this file's dirty-byte count to the mount-wide one (at open).
    pub fn attach_budget(&mut self, total: Arc<AtomicUsize>) {
        total.fetch_add(self.bytes, Ordering::Relaxed);
        self.budget.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget = total;
    }

    /// Memory held by this file's buffers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Memory held by the buffers of every file of the mount.
    pub fn mount_bytes(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    pub fn contains(&self, idx: u64) -> bool {
        self.shards.contains_key(&idx)
    }

    pub fn get(&self, idx: u64) -> Option<&DirtyShard> {
        self.shards.get(&idx)
    }

    /// The indexes of the shards that have a buffer, in order.
    pub fn indexes(&self) -> Vec<u64> {
        self.shards.keys().copied().collect()
    }

    /// The shard to flush first when over budget (see [`victim`]).
    pub fn victim(&self) -> Option<u64> {
        victim(&self.shards)
    }

    fn add(&mut self, n: usize) {
        self.bytes += n;
        self.budget.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&mut self, n: usize) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        self.budget.fetch_sub(n, Ordering::Relaxed);
    }

    /// Puts a buffer in (replacing any), keeping the counts right.
    pub fn put(&mut self, idx: u64, d: DirtyShard) {
        self.add(d.mem());
        if let Some(old) = self.shards.insert(idx, d) {
            self.sub(old.mem());
        }
    }

    pub fn take(&mut self, idx: u64) -> Option<DirtyShard> {
        let d = self.shards.remove(&idx)?;
        self.sub(d.mem());
        Some(d)
    }

    /// Applies a write of `data` at `at` to the buffer of shard `idx`, which must exist
    /// (see [`Buffers::put`]). Returns the buffer's length if it now holds every byte of
    /// the shard (a `Full` buffer), so the caller can tell when a shard is complete.
    pub fn write(&mut self, idx: u64, at: usize, data: &[u8]) -> Option<usize> {
        let buf = self.shards.get_mut(&idx)?;
        let before = buf.mem();
        buf.write(at, data);
        let (after, full) = (
            buf.mem(),
            match buf {
                DirtyShard::Full(b) => Some(b.len()),
                DirtyShard::Sparse(_) => None,
            },
        );
        self.add(after.saturating_sub(before));
        self.sub(before.saturating_sub(after));
        full
    }
}

impl Drop for Buffers {
    /// Buffers dropped with the file (its last handle closed after a failed commit) give
    /// their share of the mount's budget back.
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The reference model: the shard as one plain byte vector.
    fn model(base: &[u8], valid: usize, writes: &[(usize, &[u8])]) -> Vec<u8> {
        let mut m = base[..valid].to_vec();
        for (at, d) in writes {
            if m.len() < at + d.len() {
                m.resize(at + d.len(), 0);
            }
            m[*at..at + d.len()].copy_from_slice(d);
        }
        m
    }

    fn extents(s: &Sparse) -> Vec<(usize, usize)> {
        s.patches.iter().map(|(&o, v)| (o, v.len())).collect()
    }

    #[test]
    fn overlapping_and_touching_writes_merge_into_disjoint_extents() {
        let base = vec![b'.'; 100];
        let mut s = Sparse::new(100);
        let writes: Vec<(usize, &[u8])> = vec![
            (10, b"aaaa"),
            (20, b"bbbb"),
            (14, b"cc"),       // touches the first extent: merged
            (18, b"dddddd"),   // overlaps the end of one and the start of another
            (30, b"eeee"),     // separate
            (5, b"ffffffff"),  // overlaps the start of the first
            (40, b"g"),        // separate
            (28, b"hhhhhhhh"), // swallows 30..34, leaves 40 alone (ends at 36)
            (24, b"ii"),       // touches 18..24 but not 28: merged with the first only
        ];
        for (at, d) in &writes {
            s.write(*at, d);
        }
        assert_eq!(extents(&s), vec![(5, 11), (18, 8), (28, 8), (40, 1)]);
        assert_eq!(s.mem(), 28);
        assert_eq!(s.merge(&base), model(&base, 100, &writes));
        // Later bytes win where writes overlap.
        assert_eq!(&s.merge(&base)[18..24], b"dddddd");
    }

    #[test]
    fn random_writes_match_the_model() {
        // xorshift: a fixed pseudo-random sequence of writes, checked against the model.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as usize
        };
        for round in 0..50 {
            let base: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
            let valid = next(4096);
            let mut s = Sparse::new(valid);
            let mut data = Vec::new();
            for k in 0..40 {
                let at = next(5000);
                let n = 1 + next(300);
                data.push((at, vec![(round * 40 + k) as u8; n]));
            }
            let writes: Vec<(usize, &[u8])> =
                data.iter().map(|(a, d)| (*a, d.as_slice())).collect();
            for (at, d) in &writes {
                s.write(*at, d);
            }
            let want = model(&base, valid, &writes);
            assert_eq!(s.len(), want.len());
            assert_eq!(s.merge(&base), want, "round {round}");
            // Every range read: patches over the base equal the model.
            for _ in 0..20 {
                let a = next(want.len() as u64);
                let b = a + next((want.len() - a) as u64 + 1);
                let mut got = base[..valid].to_vec();
                got.resize(want.len(), 0);
                let mut got = got[a..b].to_vec();
                for (o, p) in s.patches_in(a, b) {
                    got[o..o + p.len()].copy_from_slice(&p);
                }
                assert_eq!(got, want[a..b].to_vec());
                let written = |i: usize| s.patches.iter().any(|(&o, v)| o <= i && i < o + v.len());
                let need = (a..b.min(valid)).any(|i| !written(i));
                assert_eq!(s.needs_base(a, b), need, "{a}..{b} valid {valid}");
            }
            assert!(s
                .patches
                .iter()
                .zip(s.patches.iter().skip(1))
                .all(|(p, q)| p.0 + p.1.len() < *q.0));
        }
    }

    #[test]
    fn a_write_covering_the_base_makes_the_shard_full() {
        let mut d = DirtyShard::Sparse(Sparse::new(10));
        d.write(4, b"456789");
        assert!(matches!(d, DirtyShard::Sparse(_)));
        d.write(0, b"0123");
        match &d {
            DirtyShard::Full(b) => assert_eq!(b, b"0123456789"),
            _ => panic!("still sparse"),
        }
    }

    #[test]
    fn a_write_past_the_base_leaves_a_hole_of_zeros() {
        let mut s = Sparse::new(4);
        s.write(8, b"xy");
        assert_eq!(s.merge(b"abcdefgh"), b"abcd\0\0\0\0xy".to_vec());
        assert!(!s.needs_base(4, 10));
        assert!(s.needs_base(0, 10));
    }

    #[test]
    fn cut_drops_patches_past_the_cut() {
        let mut s = Sparse::new(100);
        s.write(10, &[1; 20]);
        s.write(50, &[2; 10]);
        s.cut(20);
        assert_eq!(extents(&s), vec![(10, 10)]);
        assert_eq!((s.mem(), s.len(), s.valid()), (10, 20, 20));
    }

    #[test]
    fn a_failed_upload_is_combined_with_newer_writes() {
        // Full + newer sparse: the newer patches win, bytes past its `valid` are gone.
        let old = DirtyShard::Full(b"abcdefgh".to_vec());
        let mut newer = Sparse::new(6);
        newer.write(1, b"X");
        newer.write(8, b"Z");
        match old.combine(DirtyShard::Sparse(newer)) {
            DirtyShard::Full(b) => assert_eq!(b, b"aXcdef\0\0Z".to_vec()),
            _ => panic!("not full"),
        }
        // Sparse + sparse stays sparse over the same base.
        let mut o = Sparse::new(8);
        o.write(0, b"AB");
        o.write(6, b"GH");
        let mut n = Sparse::new(8);
        n.write(1, b"b");
        match DirtyShard::Sparse(o).combine(DirtyShard::Sparse(n)) {
            DirtyShard::Sparse(s) => assert_eq!(s.merge(b"abcdefgh"), b"AbcdefGH".to_vec()),
            _ => panic!("not sparse"),
        }
    }

    #[test]
    fn the_victim_is_the_shard_holding_the_most_bytes() {
        let mut dirty = BTreeMap::new();
        let mut a = Sparse::new(1000);
        a.write(0, &[1; 10]);
        let mut b = Sparse::new(1000);
        b.write(100, &[1; 10]);
        b.write(300, &[1; 10]);
        b.write(500, &[1; 10]);
        let mut c = Sparse::new(1000);
        c.write(0, &[1; 30]);
        dirty.insert(0, DirtyShard::Sparse(a));
        dirty.insert(5, DirtyShard::Sparse(b));
        dirty.insert(7, DirtyShard::Sparse(c));
        // 5 and 7 both hold 30 bytes: the lower index goes first.
        assert_eq!(victim(&dirty), Some(5));
        dirty.insert(9, DirtyShard::Full(vec![0; 31]));
        assert_eq!(victim(&dirty), Some(9));
        assert_eq!(victim(&BTreeMap::new()), None);
    }
}
