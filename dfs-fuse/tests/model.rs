#![allow(clippy::unwrap_used)]
//! The mount's file core against a reference model: a plain byte vector.
//!
//! proptest generates random sequences of open, write (any offset and length, past the
//! end too), read, truncate (down and up, through a handle or by path), fsync, close,
//! reopen and remount, runs them against `Fs` on the in-process cluster (`common`), and
//! after every step compares the size and the bytes read with the model. When a sequence
//! fails, proptest shrinks it to a minimal one and prints it; `PROPTEST_CASES=N` runs more
//! cases (CI sets it), and a failure is replayed from the seed proptest prints and saves.
//!
//! Shards are 64 KiB here (not 1 MiB) and the dirty budgets a few shards, so short
//! sequences cross shard boundaries, sparse buffers, background uploads and commits, the
//! places where the bugs were.
//!
//! The kernel sends `release` asynchronously: `close()` returns after `flush`, and the
//! release may reach the mount after the program's next `open`. `CloseLazily` does the
//! same, so the model also covers a release racing the next request.

mod common;
use common::{Cluster, ME};
use dfs_coord::{CoordSettings, Coordinator};
use dfs_fuse::fs::{Fs, FsConfig};
use dfs_proto::coord_msg::SetAttrs;
use dfs_proto::ROOT_INO;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const SHARD: u32 = 64 * 1024;
/// Offsets and lengths reach a little past four shards.
const SPAN: u32 = 4 * SHARD + SHARD / 2;

#[derive(Debug, Clone)]
enum Op {
    /// Opens one more handle (at most three are open).
    Open,
    Write {
        h: usize,
        off: u32,
        len: u32,
        seed: u8,
    },
    Read {
        h: usize,
        off: u32,
        len: u32,
    },
    /// ftruncate through a handle (`Some`), or truncate(2) by path (`None`).
    Truncate {
        h: Option<usize>,
        size: u32,
    },
    Fsync {
        h: usize,
    },
    /// close(): flush, then release, in order.
    Close {
        h: usize,
    },
    /// close() as the kernel does it: flush, then a release that races the next step.
    CloseLazily {
        h: usize,
    },
    /// Every handle closed, the mount dropped, a new one started on the same cluster.
    Remount,
}

fn offset() -> impl Strategy<Value = u32> {
    // Favour the edges where bugs live: shard boundaries and their neighbours.
    prop_oneof![
        3 => 0..SPAN,
        1 => (0..5u32, -2i32..=2).prop_map(|(k, d)| (k * SHARD).saturating_add_signed(d)),
    ]
}

fn length() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => 1..4096u32,
        2 => 1..(2 * SHARD),
        1 => (1..3u32).prop_map(|k| k * SHARD),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..3usize;
    prop_oneof![
        1 => Just(Op::Open),
        6 => (h.clone(), offset(), length(), any::<u8>())
            .prop_map(|(h, off, len, seed)| Op::Write { h, off, len, seed }),
        4 => (h.clone(), offset(), length()).prop_map(|(h, off, len)| Op::Read { h, off, len }),
        3 => (prop::option::weighted(0.8, h.clone()), offset())
            .prop_map(|(h, size)| Op::Truncate { h, size }),
        1 => h.clone().prop_map(|h| Op::Fsync { h }),
        1 => h.clone().prop_map(|h| Op::Close { h }),
        1 => h.prop_map(|h| Op::CloseLazily { h }),
        1 => Just(Op::Remount),
    ]
}

/// Bytes no two writes share, so a stale byte shows which write it came from.
fn bytes(len: u32, seed: u8, step: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (step as u8).wrapping_mul(7) | 1)
        .collect()
}

fn mount(c: &Arc<Cluster>) -> Arc<Fs<Cluster>> {
    Arc::new(Fs::new(
        c.clone(),
        FsConfig {
            cache_bytes: 4 * SHARD as usize,
            upload_slots: 2,
            // A few shards: writes start background uploads well before a flush.
            max_dirty: 2 * SHARD as usize,
            max_dirty_total: 3 * SHARD as usize,
            node_deadline: Duration::from_secs(5),
            ..FsConfig::default()
        },
    ))
}

struct Run {
    cluster: Arc<Cluster>,
    fs: Arc<Fs<Cluster>>,
    ino: u64,
    handles: Vec<u64>,
    /// Releases the "kernel" has sent but the mount may not have finished.
    releases: Vec<tokio::task::JoinHandle<()>>,
    model: Vec<u8>,
}

impl Run {
    async fn new() -> Run {
        let coord = Coordinator::open_in_memory(CoordSettings {
            replicas: 2,
            min_copies: 2,
            shard_size: SHARD,
            ..Default::default()
        })
        .unwrap();
        let cluster = Cluster::with_coord(coord, 3).await;
        let fs = mount(&cluster);
        let (a, fh) = fs.create(ROOT_INO, "f", 0o644, ME).await.unwrap();
        Run {
            cluster,
            fs,
            ino: a.ino,
            handles: vec![fh],
            releases: Vec::new(),
            model: Vec::new(),
        }
    }

    /// The handle an operation names; opens one if none is open.
    async fn handle(&mut self, h: usize) -> Result<u64, String> {
        if self.handles.is_empty() {
            self.open().await?;
        }
        Ok(self.handles[h % self.handles.len()])
    }

    async fn open(&mut self) -> Result<(), String> {
        let (fh, _) = self
            .fs
            .open(self.ino)
            .await
            .map_err(|e| format!("open: {e}"))?;
        self.handles.push(fh);
        Ok(())
    }

    /// Every handle closed (flush, then release), pending releases finished, and a new
    /// mount started on the same cluster.
    async fn remount(&mut self) -> Result<(), String> {
        for fh in std::mem::take(&mut self.handles) {
            self.fs
                .flush(fh, ME)
                .await
                .map_err(|e| format!("flush: {e}"))?;
            self.fs
                .release(fh, ME)
                .await
                .map_err(|e| format!("release: {e}"))?;
        }
        self.settle_releases().await;
        self.fs = mount(&self.cluster);
        Ok(())
    }

    async fn settle_releases(&mut self) {
        for r in self.releases.drain(..) {
            r.await.unwrap();
        }
    }

    async fn step(&mut self, i: usize, op: &Op) -> Result<(), String> {
        match *op {
            Op::Open => {
                if self.handles.len() < 3 {
                    self.open().await?;
                }
            }
            Op::Write { h, off, len, seed } => {
                let fh = self.handle(h).await?;
                let data = bytes(len, seed, i);
                let n = self
                    .fs
                    .write(fh, u64::from(off), &data)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                if n != len {
                    return Err(format!("write returned {n}, not {len}"));
                }
                let end = (off + len) as usize;
                if self.model.len() < end {
                    self.model.resize(end, 0);
                }
                self.model[off as usize..end].copy_from_slice(&data);
            }
            Op::Read { h, off, len } => {
                let fh = self.handle(h).await?;
                self.check_read(fh, off, len).await?;
            }
            Op::Truncate { h, size } => {
                let set = SetAttrs {
                    size: Some(u64::from(size)),
                    ..SetAttrs::default()
                };
                if let Some(h) = h {
                    // ftruncate needs an open file.
                    self.handle(h).await?;
                }
                let a = self
                    .fs
                    .setattr(self.ino, ME, set)
                    .await
                    .map_err(|e| format!("truncate: {e}"))?;
                self.model.resize(size as usize, 0);
                if a.size != u64::from(size) {
                    return Err(format!("truncate to {size} answered size {}", a.size));
                }
            }
            Op::Fsync { h } => {
                let fh = self.handle(h).await?;
                self.fs
                    .flush(fh, ME)
                    .await
                    .map_err(|e| format!("fsync: {e}"))?;
            }
            Op::Close { h } | Op::CloseLazily { h } => {
                if self.handles.is_empty() {
                    return Ok(());
                }
                let fh = self.handles.remove(h % self.handles.len());
                self.fs
                    .flush(fh, ME)
                    .await
                    .map_err(|e| format!("flush: {e}"))?;
                if matches!(op, Op::Close { .. }) {
                    self.fs
                        .release(fh, ME)
                        .await
                        .map_err(|e| format!("release: {e}"))?;
                } else {
                    let fs = self.fs.clone();
                    self.releases.push(tokio::spawn(async move {
                        fs.release(fh, ME).await.unwrap();
                    }));
                }
            }
            Op::Remount => {
                self.remount().await?;
            }
        }
        self.check_size().await
    }

    async fn check_size(&self) -> Result<(), String> {
        let a = self
            .fs
            .getattr(self.ino)
            .await
            .map_err(|e| format!("getattr: {e}"))?;
        if a.size != self.model.len() as u64 {
            return Err(format!(
                "size is {}, the model says {}",
                a.size,
                self.model.len()
            ));
        }
        Ok(())
    }

    async fn check_read(&self, fh: u64, off: u32, len: u32) -> Result<(), String> {
        let got = self
            .fs
            .read(fh, u64::from(off), len)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let from = (off as usize).min(self.model.len());
        let to = (off as usize + len as usize).min(self.model.len());
        let want = &self.model[from..to];
        if got != want {
            let first = got
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            return Err(format!(
                "read {off}+{len}: {} bytes, the model has {}; first difference at file \
                 offset {} (got {:?}, want {:?})",
                got.len(),
                want.len(),
                off as usize + first,
                got.get(first),
                want.get(first)
            ));
        }
        Ok(())
    }

    /// The whole file, read through a fresh handle and through a fresh mount.
    async fn check_all(&mut self) -> Result<(), String> {
        let len = self.model.len() as u32 + 1;
        let (fh, _) = self
            .fs
            .open(self.ino)
            .await
            .map_err(|e| format!("open: {e}"))?;
        self.check_read(fh, 0, len).await?;
        self.fs
            .release(fh, ME)
            .await
            .map_err(|e| format!("release: {e}"))?;
        self.remount().await?;
        self.check_size().await?;
        let (fh, _) = self
            .fs
            .open(self.ino)
            .await
            .map_err(|e| format!("open: {e}"))?;
        self.check_read(fh, 0, len).await
    }
}

fn run(ops: &[Op]) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = Run::new().await;
        for (i, op) in ops.iter().enumerate() {
            r.step(i, op)
                .await
                .map_err(|e| format!("step {i} ({op:?}): {e}"))?;
        }
        r.check_all().await.map_err(|e| format!("at the end: {e}"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_file_core_behaves_like_a_byte_vector(ops in prop::collection::vec(op(), 1..60)) {
        if let Err(e) = run(&ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}
