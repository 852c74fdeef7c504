//! The mount's tables of what is open: regular files by inode (one shared state each,
//! however many handles), file handles, directory handles, and the content generation
//! each file had at its last open.
//!
//! The kernel names an open file by the handle number (`fh`) we gave it at open; every
//! handle of one inode on this mount shares one [`FileState`], so a write through one
//! handle is read back through another.

use crate::dir::DirSnapshot;
use crate::file::FileState;
use crate::readahead::ReadPattern;
use dfs_proto::{Ino, WireError, WireResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The state of one open regular file, shared by its handles.
pub type Shared = Arc<tokio::sync::Mutex<FileState>>;

/// Entries in the per-inode memories (`seen` here, the names in `fs.rs`) before they are
/// simply cleared (a forgotten entry only costs a cache refill or a vaguer log line, never
/// a wrong answer).
pub const MAX_SEEN: usize = 100_000;

/// A regular file open on this mount.
///
/// The handle count lives here, under the `files` lock, and not in the `FileState`: an
/// open that finds the file and a release that drops its last handle must agree, in one
/// critical section, on whether the state is still the mount's. (With the count inside
/// the state, a release could take it to zero and drop the entry while an open that had
/// already found the entry waited for the state's lock; that open then wrote into a state
/// nothing else could see, and a later truncate or stat went to a fresh one: lost sizes
/// and stale bytes under fsx. The kernel sends release asynchronously, after close()
/// has returned, so the next open of the same file races it.)
struct OpenFile {
    state: Shared,
    handles: u32,
}

/// One open file handle.
pub struct Handle {
    pub ino: Ino,
    pub file: Shared,
    /// Whether its reads are sequential, for readahead.
    pub reads: ReadPattern,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct Handles {
    /// Open regular files by inode, with their number of open handles on this mount.
    files: Mutex<HashMap<Ino, OpenFile>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirSnapshot>>>,
    /// File and directory handles share one numbering (starting at 1).
    next_fh: AtomicU64,
    /// Content generation of each file as of its last open on this mount. If a new open
    /// finds the same generation, the kernel's cached pages are still right.
    seen: Mutex<HashMap<Ino, u64>>,
}

impl Handles {
    fn next_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The state of `ino` if it is open on this mount.
    pub fn open_file(&self, ino: Ino) -> Option<Shared> {
        lock(&self.files).get(&ino).map(|f| f.state.clone())
    }

    /// True if no regular file is open on this mount.
    pub fn no_open_files(&self) -> bool {
        lock(&self.files).is_empty()
    }

    /// Every open file's state, with its inode.
    pub fn open_files(&self) -> Vec<(Ino, Shared)> {
        lock(&self.files)
            .iter()
            .map(|(ino, f)| (*ino, f.state.clone()))
            .collect()
    }

    /// One more handle on `ino`'s state, if it is open on this mount.
    pub fn join_open(&self, ino: Ino) -> Option<Shared> {
        let mut files = lock(&self.files);
        let f = files.get_mut(&ino)?;
        f.handles += 1;
        Some(f.state.clone())
    }

    /// Makes `st`, just loaded for a first open, the state of `st.ino` with one handle.
    /// If another open of the same file won the race, this joins its state instead.
    pub fn first_open(&self, st: FileState) -> Shared {
        let ino = st.ino;
        let f = Arc::new(tokio::sync::Mutex::new(st));
        let mut files = lock(&self.files);
        let entry = files.entry(ino).or_insert_with(|| OpenFile {
            state: f,
            handles: 0,
        });
        entry.handles += 1;
        entry.state.clone()
    }

    /// Notes that `ino` was opened with content `generation`; true if the previous open
    /// on this mount saw the same one (so the kernel's cache of it is still right).
    pub fn same_generation(&self, ino: Ino, generation: u64) -> bool {
        let mut seen = lock(&self.seen);
        if seen.len() >= MAX_SEEN {
            seen.clear();
        }
        seen.insert(ino, generation) == Some(generation)
    }

    /// A new handle on `file`.
    pub fn add_handle(&self, ino: Ino, file: Shared) -> u64 {
        let fh = self.next_fh();
        lock(&self.handles).insert(
            fh,
            Arc::new(Handle {
                ino,
                file,
                reads: ReadPattern::default(),
            }),
        );
        fh
    }

    pub fn handle(&self, fh: u64) -> WireResult<Arc<Handle>> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| WireError::invalid(format!("no open file handle {fh}")))
    }

    /// Forgets handle `fh` (its last close); the file keeps its state until
    /// [`Handles::drop_handle`].
    pub fn remove_handle(&self, fh: u64) -> Option<Arc<Handle>> {
        lock(&self.handles).remove(&fh)
    }

    /// Counts one handle of `h`'s file less; true if it was the last, and the file is no
    /// longer open on this mount.
    pub fn drop_handle(&self, h: &Handle) -> bool {
        let mut files = lock(&self.files);
        match files.get_mut(&h.ino) {
            Some(f) if Arc::ptr_eq(&f.state, &h.file) => {
                f.handles = f.handles.saturating_sub(1);
                let last = f.handles == 0;
                if last {
                    files.remove(&h.ino);
                }
                last
            }
            _ => false,
        }
    }

    /// A new directory handle serving `snap`.
    pub fn add_dir(&self, snap: Arc<DirSnapshot>) -> u64 {
        let fh = self.next_fh();
        lock(&self.dirs).insert(fh, snap);
        fh
    }

    pub fn dir(&self, fh: u64) -> WireResult<Arc<DirSnapshot>> {
        lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or_else(|| WireError::invalid(format!("no open directory handle {fh}")))
    }

    pub fn remove_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}
