//! Power loss and crashes, simulated the way Jepsen's LazyFS does it: a storage device
//! that keeps what was written apart from what was synced. A *crash* of the process keeps
//! everything written (the page cache outlives the process); a *power loss* keeps only
//! what was synced, plus, for the append-only log, a random prefix of the rest (the disk
//! may have written some of it on its own, up to a torn record).
//!
//! The test runs random transactions against a real [`Store`] on two such devices (redb's
//! file and the log), fsyncs now and then, checkpoints now and then, and then crashes or
//! cuts the power at a random moment. The store reopened from what survived must be
//! exactly the state after some acknowledged transaction: after the last one for a crash,
//! and not before the last one a `sync` returned for after a power loss. The seed is
//! printed; `DFS_POWER_LOSS_SEED=N` replays one.

use super::wal::LogDevice;
use super::{Dirent, Inode, Store};
use dfs_proto::coord_msg::FileKind;
use dfs_proto::ShardId;
use std::io;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone)]
struct Disk {
    /// What the device would still hold after a power loss.
    durable: Vec<u8>,
    /// What a reader sees now (written, synced or not).
    current: Vec<u8>,
}

/// A file-like device in memory, shared by clones.
#[derive(Debug, Default, Clone)]
pub(crate) struct SimFile(Arc<Mutex<Disk>>);

impl SimFile {
    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device as a restarted process finds it after a crash of this one.
    pub fn after_crash(&self) -> SimFile {
        let c = self.disk().current.clone();
        SimFile(Arc::new(Mutex::new(Disk {
            durable: c.clone(),
            current: c,
        })))
    }

    /// The device after a power loss. `keep_tail` (a fraction of the unsynced appended
    /// bytes, 0.0..=1.0) models a disk that wrote part of an append on its own; it only
    /// applies when everything unsynced is an append past the durable bytes.
    pub fn after_power_loss(&self, keep_tail: f64) -> SimFile {
        let d = self.disk();
        let mut kept = d.durable.clone();
        if d.current.len() > d.durable.len() && d.current.starts_with(&d.durable) {
            let extra = d.current.len() - d.durable.len();
            let n = ((extra as f64) * keep_tail) as usize;
            kept.extend_from_slice(&d.current[d.durable.len()..d.durable.len() + n]);
        }
        SimFile(Arc::new(Mutex::new(Disk {
            durable: kept.clone(),
            current: kept,
        })))
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "read past the end")
}

impl redb::StorageBackend for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.disk().current.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let d = self.disk();
        let at = usize::try_from(offset).map_err(|_| out_of_range())?;
        let src = d.current.get(at..at + out.len()).ok_or_else(out_of_range)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.disk().current.resize(len, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut d = self.disk();
        d.durable = d.current.clone();
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut d = self.disk();
        let at = usize::try_from(offset).map_err(|_| out_of_range())?;
        let dst = d
            .current
            .get_mut(at..at + data.len())
            .ok_or_else(out_of_range)?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

impl LogDevice for SimFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.disk().current.extend_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut d = self.disk();
        d.durable = d.current.clone();
        Ok(())
    }
    fn truncate(&self) -> io::Result<()> {
        self.disk().current.clear();
        Ok(())
    }
    fn read_all(&self) -> io::Result<Vec<u8>> {
        Ok(self.disk().current.clone())
    }
}

/// xorshift64*: enough randomness for a test, and replayable from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dump(store: &Store) -> Vec<String> {
    store.read(|r| r.dump()).expect("dump")
}

/// One random transaction: a few changes across the tables, like a create, a rename, a
/// commit or an unlink would make.
fn random_txn(store: &Store, rng: &mut Rng, step: u64) {
    let n = 1 + rng.below(4);
    let choices: Vec<u64> = (0..n).map(|_| rng.below(7)).collect();
    let keys: Vec<u64> = (0..n).map(|_| 2 + rng.below(40)).collect();
    store
        .write(|t| {
            for (c, k) in choices.iter().zip(&keys) {
                match c {
                    0 => {
                        let ino = t.alloc_ino()?;
                        let mut i = Inode::fresh(FileKind::File, 0o644, 0, 0, step as i64);
                        i.size = step;
                        t.put_inode(ino, &i)?;
                        t.put_dirent(
                            1,
                            &format!("f{k}"),
                            Dirent {
                                ino,
                                kind: FileKind::File,
                            },
                        )?;
                    }
                    1 => t.remove_dirent(1, &format!("f{k}"))?,
                    2 => t.put_layout(*k, step % 3, &ShardId([step as u8; 32]), step as u32)?,
                    3 => t.remove_layout(*k, step % 3)?,
                    4 => t.put_xattr(*k, "user.x", &step.to_le_bytes())?,
                    5 => {
                        t.remove_xattr(*k, "user.x")?;
                    }
                    _ => t.set_orphan(*k, step.is_multiple_of(2))?,
                }
            }
            Ok(())
        })
        .expect("transaction");
}

fn one_run(seed: u64) {
    let mut rng = Rng(seed | 1);
    let (db, log) = (SimFile::default(), SimFile::default());
    let strict = rng.below(4) == 0;
    let store = Store::open_on(db.clone(), log.clone(), strict).expect("open");
    let mut states = vec![dump(&store)];
    let mut synced = 0usize;
    let steps = 20 + rng.below(200);
    for step in 0..steps {
        random_txn(&store, &mut rng, step);
        states.push(dump(&store));
        if strict {
            synced = states.len() - 1;
        }
        match rng.below(20) {
            0 => {
                store.sync().expect("sync");
                synced = states.len() - 1;
            }
            1 => {
                store.checkpoint().expect("checkpoint");
                synced = states.len() - 1;
            }
            _ => {}
        }
    }
    let power_loss = rng.below(3) != 0;
    let keep_tail = (rng.below(101) as f64) / 100.0;
    let (db2, log2) = if power_loss {
        (db.after_power_loss(0.0), log.after_power_loss(keep_tail))
    } else {
        (db.after_crash(), log.after_crash())
    };
    // The old process is gone: what it does from here on cannot reach the copies.
    drop(store);
    let (db2_copy, log2_copy) = (db2.clone(), log2.clone());
    let reopened = Store::open_on(db2, log2, false).expect("reopen");
    let got = dump(&reopened);
    let at = states
        .iter()
        .rposition(|s| *s == got)
        .unwrap_or_else(|| panic!("seed {seed}: the recovered store is no acknowledged state"));
    if power_loss {
        assert!(
            at >= synced,
            "seed {seed}: power loss went back to state {at}, before the synced state {synced}"
        );
    } else {
        assert_eq!(
            at,
            states.len() - 1,
            "seed {seed}: a crash lost acknowledged changes"
        );
    }
    // And it goes on from there: a change after recovery is logged and survives a crash.
    reopened
        .write(|t| {
            let ino = t.alloc_ino()?;
            t.put_inode(ino, &Inode::fresh(FileKind::Dir, 0o755, 0, 0, 0))
        })
        .expect("write after recovery");
    let after = dump(&reopened);
    assert_ne!(after, got);
    let again = Store::open_on(db2_copy.after_crash(), log2_copy.after_crash(), false)
        .expect("reopen after recovery");
    assert_eq!(
        dump(&again),
        after,
        "seed {seed}: a change after recovery was lost"
    );
}

#[test]
fn the_store_after_a_crash_or_power_loss_is_an_acknowledged_state_and_keeps_what_was_synced() {
    let seeds: Vec<u64> = match std::env::var("DFS_POWER_LOSS_SEED") {
        Ok(s) => vec![s.parse().expect("DFS_POWER_LOSS_SEED: a number")],
        Err(_) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            (0..64).map(|i| base.wrapping_add(i * 7919)).collect()
        }
    };
    for seed in seeds {
        eprintln!("power-loss seed {seed}");
        one_run(seed);
    }
}

#[test]
fn stale_records_left_by_a_lost_truncate_are_not_applied_over_newer_state() {
    let (db, log) = (SimFile::default(), SimFile::default());
    let store = Store::open_on(db.clone(), log.clone(), false).expect("open");
    let mut rng = Rng(42);
    for step in 0..30 {
        random_txn(&store, &mut rng, step);
    }
    store.sync().expect("sync");
    let old_log = log.read_all().expect("read");
    let old_state = dump(&store);
    for step in 30..60 {
        random_txn(&store, &mut rng, step);
    }
    store.checkpoint().expect("checkpoint");
    let want = dump(&store);
    assert_ne!(want, old_state);
    // The truncate did not reach the disk and the device still holds the older records:
    // applied again, they would take back keys the last 30 transactions changed.
    let db2 = db.after_power_loss(0.0);
    let log2 = SimFile::default();
    log2.append(&old_log).expect("append");
    log2.sync().expect("sync");
    drop(store);
    let reopened = Store::open_on(db2, log2, false).expect("reopen");
    assert_eq!(dump(&reopened), want);
}
