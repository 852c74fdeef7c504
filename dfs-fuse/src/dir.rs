//! Directory listings: the snapshot taken at opendir, and the paging that hands it to the
//! kernel, for readdir and readdirplus alike.
//!
//! The kernel reads a directory in pieces: each READDIR request comes with a buffer of a
//! few KiB and the offset to resume from, and we add entries until the buffer is full.
//! Every entry carries the offset of the *next* position, which the kernel hands back in
//! its next request (and which `telldir`/`seekdir` expose to programs). Positions here are
//! 0 for `.`, 1 for `..`, and `k` for the listing's entry `k - 2`.
//!
//! Why a snapshot: positions only mean something if the list they index does not move.
//! The whole listing is fetched at opendir (all pages) and kept with the handle, so a
//! program walking a directory while entries are created or removed (`rm -r`, a build)
//! sees every entry of the snapshot exactly once, never one twice and never skips one.
//! POSIX allows less (an entry added or removed after opendir may or may not be seen);
//! the new state is seen by the next opendir (`rewinddir` in glibc reopens).
//!
//! The paging is written once ([`fill`]) against a small [`DirReplier`] trait: `fuse.rs`
//! implements it over fuser's two reply types, and the tests below over a `Vec`, so the
//! paging is tested without a kernel (the same design as mountpoint-s3's).

use crate::backend::Backend;
use dfs_proto::coord_msg::{Attr, CoordRequest, CoordResponse, DirEntry, FileKind, MAX_DIR_PAGE};
use dfs_proto::{Ino, WireError, WireResult};
use std::future::Future;

/// A directory listing taken at opendir, served to readdir by position.
pub struct DirSnapshot {
    pub ino: Ino,
    pub parent: Ino,
    pub entries: Vec<DirEntry>,
    /// The lookup cache's generation before the listing was fetched: what the listing
    /// says stops counting once anything changes through this mount.
    pub generation: u64,
}

impl DirSnapshot {
    /// Takes a snapshot of the directory (all pages), so a listing is consistent even if
    /// entries change while a program walks it.
    pub async fn fetch<B: Backend>(backend: &B, ino: Ino, generation: u64) -> WireResult<Self> {
        let mut entries = Vec::new();
        let mut after = None;
        let parent = loop {
            let page = match backend
                .meta(CoordRequest::ReadDir {
                    ino,
                    after: after.clone(),
                    limit: MAX_DIR_PAGE,
                })
                .await?
            {
                CoordResponse::Dir(page) => page,
                _ => return Err(WireError::unexpected("ReadDir")),
            };
            after = page.entries.last().map(|e| e.name.clone());
            entries.extend(page.entries);
            if !page.more || after.is_none() {
                break page.parent;
            }
        };
        Ok(DirSnapshot {
            ino,
            parent,
            entries,
            generation,
        })
    }

    /// Number of positions: `.`, `..` and the entries.
    fn positions(&self) -> u64 {
        self.entries.len() as u64 + 2
    }
}

/// Where a page of a listing goes: fuser's reply buffers in `fuse.rs`, a `Vec` in tests.
pub trait DirReplier {
    /// Adds the entry at one position. `offset` is the position after it (where the next
    /// request resumes); `attr` is given for readdirplus only. Returns true if the reply
    /// is full: the entry was *not* added, and the kernel will ask for it again.
    fn add(
        &mut self,
        ino: Ino,
        offset: u64,
        kind: FileKind,
        name: &str,
        attr: Option<&Attr>,
    ) -> bool;
}

/// Where readdirplus gets the attributes of a listed entry (the filesystem core, which
/// overlays this mount's uncommitted writes on the listing's).
pub trait ListedAttrs {
    fn listed_attr(
        &self,
        snap: &DirSnapshot,
        entry: &DirEntry,
    ) -> impl Future<Output = Attr> + Send;
}

/// The attributes readdirplus gives `.` and `..`. The kernel links no dentry for them, so
/// only the inode and the type need to be right.
pub fn dot_attr(ino: Ino) -> Attr {
    Attr {
        ino,
        kind: FileKind::Dir,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        size: 0,
        atime: 0,
        mtime: 0,
        ctime: 0,
        crtime: 0,
        generation: 0,
    }
}

/// Adds the positions of `snap` from `offset` on to `out`, until it is full or the
/// listing ends. With `attrs` (readdirplus) every entry comes with its attributes.
pub async fn fill<R: DirReplier, A: ListedAttrs>(
    snap: &DirSnapshot,
    offset: u64,
    out: &mut R,
    attrs: Option<&A>,
) {
    for k in offset..snap.positions() {
        let (ino, kind, name, entry) = match k {
            0 => (snap.ino, FileKind::Dir, ".", None),
            1 => (snap.parent, FileKind::Dir, "..", None),
            _ => {
                // In range: k < positions() = entries.len() + 2.
                let Some(e) = usize::try_from(k - 2)
                    .ok()
                    .and_then(|i| snap.entries.get(i))
                else {
                    break;
                };
                (e.attr.ino, e.attr.kind, e.name.as_str(), Some(e))
            }
        };
        let attr = match (attrs, entry) {
            (None, _) => None,
            (Some(_), None) => Some(dot_attr(ino)),
            (Some(a), Some(e)) => Some(a.listed_attr(snap, e).await),
        };
        if out.add(ino, k + 1, kind, name, attr.as_ref()) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A reply buffer with room for `room` entries, like the kernel's few KiB.
    struct VecReplier {
        room: usize,
        got: Vec<(Ino, u64, FileKind, String, Option<Attr>)>,
    }

    impl VecReplier {
        fn new(room: usize) -> Self {
            VecReplier {
                room,
                got: Vec::new(),
            }
        }
    }

    impl DirReplier for VecReplier {
        fn add(
            &mut self,
            ino: Ino,
            offset: u64,
            kind: FileKind,
            name: &str,
            attr: Option<&Attr>,
        ) -> bool {
            if self.got.len() == self.room {
                return true;
            }
            self.got
                .push((ino, offset, kind, name.to_string(), attr.cloned()));
            false
        }
    }

    /// The listing's attributes, as they are (no open files to overlay).
    struct AsListed;
    impl ListedAttrs for AsListed {
        async fn listed_attr(&self, _snap: &DirSnapshot, entry: &DirEntry) -> Attr {
            entry.attr.clone()
        }
    }

    fn snapshot(n: usize) -> DirSnapshot {
        let entries = (0..n)
            .map(|i| {
                let mut attr = dot_attr(100 + i as u64);
                attr.kind = if i % 3 == 0 {
                    FileKind::Dir
                } else {
                    FileKind::File
                };
                DirEntry {
                    name: format!("e{i:03}"),
                    attr,
                    xattrs: false,
                }
            })
            .collect();
        DirSnapshot {
            ino: 7,
            parent: 1,
            entries,
            generation: 0,
        }
    }

    /// Reads the whole listing as the kernel does: pages of `room` entries, each request
    /// resuming at the offset of the last entry received. Returns the pages.
    async fn walk(snap: &DirSnapshot, room: usize, plus: bool) -> Vec<Vec<(Ino, u64, String)>> {
        let mut pages = Vec::new();
        let mut offset = 0;
        loop {
            let mut r = VecReplier::new(room);
            if plus {
                fill(snap, offset, &mut r, Some(&AsListed)).await;
            } else {
                fill::<_, AsListed>(snap, offset, &mut r, None).await;
            }
            if r.got.is_empty() {
                return pages;
            }
            for (ino, _, _, _, attr) in &r.got {
                assert_eq!(attr.is_some(), plus);
                if let Some(a) = attr {
                    assert_eq!(a.ino, *ino);
                }
            }
            offset = r.got.last().unwrap().1;
            pages.push(r.got.into_iter().map(|(i, o, _, n, _)| (i, o, n)).collect());
        }
    }

    fn names(pages: &[Vec<(Ino, u64, String)>]) -> Vec<String> {
        pages.iter().flatten().map(|(_, _, n)| n.clone()).collect()
    }

    #[tokio::test]
    async fn pages_resume_at_the_offset_the_kernel_hands_back() {
        let snap = snapshot(10);
        let pages = walk(&snap, 3, false).await;
        let mut want = vec![".".to_string(), "..".to_string()];
        want.extend((0..10).map(|i| format!("e{i:03}")));
        assert_eq!(names(&pages), want);
        // 12 positions in pages of 3; offsets count up by one with no gap or repeat.
        assert_eq!(pages.len(), 4);
        let offsets: Vec<u64> = pages.iter().flatten().map(|(_, o, _)| *o).collect();
        assert_eq!(offsets, (1..=12).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn a_full_buffer_stops_and_the_next_call_starts_with_the_refused_entry() {
        let snap = snapshot(4);
        let mut r = VecReplier::new(2);
        fill::<_, AsListed>(&snap, 3, &mut r, None).await;
        let got: Vec<&str> = r.got.iter().map(|g| g.3.as_str()).collect();
        // Position 3 is the listing's second entry; room for two, so e001 and e002.
        assert_eq!(got, ["e001", "e002"]);
        let mut next = VecReplier::new(2);
        fill::<_, AsListed>(&snap, r.got[1].1, &mut next, None).await;
        let got: Vec<&str> = next.got.iter().map(|g| g.3.as_str()).collect();
        assert_eq!(got, ["e003"]);
        // Past the end: nothing, which tells the kernel the listing is over.
        let mut end = VecReplier::new(2);
        fill::<_, AsListed>(&snap, 6, &mut end, None).await;
        fill::<_, AsListed>(&snap, 600, &mut end, None).await;
        assert!(end.got.is_empty());
    }

    #[tokio::test]
    async fn dot_and_dotdot_come_first_with_the_dir_and_its_parent() {
        let snap = snapshot(2);
        for plus in [false, true] {
            let pages = walk(&snap, 1, plus).await;
            assert_eq!(pages[0], [(7, 1, ".".to_string())]);
            assert_eq!(pages[1], [(1, 2, "..".to_string())]);
        }
        // An empty directory still has both.
        let pages = walk(&snapshot(0), 10, true).await;
        assert_eq!(names(&pages), [".", ".."]);
    }

    #[tokio::test]
    async fn readdir_and_readdirplus_give_the_same_entries() {
        let snap = snapshot(25);
        for room in [1, 2, 7, 100] {
            let plain = walk(&snap, room, false).await;
            let plus = walk(&snap, room, true).await;
            assert_eq!(plain, plus, "room {room}");
        }
        let mut r = VecReplier::new(100);
        fill(&snap, 0, &mut r, Some(&AsListed)).await;
        for (i, (ino, _, kind, _, attr)) in r.got.iter().enumerate().skip(2) {
            let e = &snap.entries[i - 2];
            assert_eq!((*ino, *kind), (e.attr.ino, e.attr.kind));
            assert_eq!(attr.as_ref(), Some(&e.attr));
        }
    }
}
