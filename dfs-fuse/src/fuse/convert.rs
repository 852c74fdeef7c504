//! Conversions between the core's types and fuser's, and the small reply helpers the
//! adapter's callbacks share: kept apart from `fuse.rs` so that file reads as one callback
//! per kernel request and nothing else.

use crate::dir::{dot_attr, DirReplier};
use crate::errno::errno;
use dfs_proto::coord_msg::{Attr, Caller, FileKind, SetTime};
use dfs_proto::{Ino, WireError};
use fuser::{
    Errno, FileAttr, FileType, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyXattr, Request, TimeOrNow,
};
use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn err(e: &WireError) -> Errno {
    Errno::from_i32(errno(e))
}

pub(super) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// Names cross the wire as UTF-8; other byte strings are refused with EINVAL.
pub(super) fn name_of(name: &OsStr) -> Result<String, Errno> {
    name.to_str().map(str::to_owned).ok_or(Errno::EINVAL)
}

pub(super) fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub(super) fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => SetTime::At(match st.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        }),
    }
}

pub(super) fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

pub fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.crtime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 1 << 20,
        flags: 0,
    }
}

/// The file type encoded in a mknod mode.
pub(super) fn kind_of_mode(mode: u32) -> Option<FileKind> {
    match mode & libc::S_IFMT {
        libc::S_IFREG | 0 => Some(FileKind::File),
        libc::S_IFIFO => Some(FileKind::Fifo),
        libc::S_IFSOCK => Some(FileKind::Socket),
        libc::S_IFCHR => Some(FileKind::CharDev),
        libc::S_IFBLK => Some(FileKind::BlockDev),
        _ => None,
    }
}

pub(super) fn reply_entry(reply: ReplyEntry, ttl: &Duration, r: Result<Attr, WireError>) {
    match r {
        Ok(a) => reply.entry(ttl, &file_attr(&a), Generation(0)),
        Err(e) => reply.error(err(&e)),
    }
}

pub(super) fn reply_empty(reply: ReplyEmpty, r: Result<(), WireError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(err(&e)),
    }
}

/// readdir's reply buffer, as the core's [`DirReplier`] (the paging itself is in
/// `dir.rs`, tested without a kernel).
pub(super) struct Plain(pub ReplyDirectory);

impl DirReplier for Plain {
    fn add(&mut self, ino: Ino, offset: u64, kind: FileKind, name: &str, _: Option<&Attr>) -> bool {
        self.0.add(INodeNo(ino), offset, file_type(kind), name)
    }
}

/// readdirplus's reply buffer: each entry with its attributes, cached by the kernel for
/// `ttl` as a lookup's would be.
pub(super) struct Plus {
    pub reply: ReplyDirectoryPlus,
    pub ttl: Duration,
}

impl DirReplier for Plus {
    fn add(
        &mut self,
        ino: Ino,
        offset: u64,
        kind: FileKind,
        name: &str,
        attr: Option<&Attr>,
    ) -> bool {
        // The core always gives attributes to readdirplus; should one be missing, the
        // placeholder `.` and `..` get is still a valid answer.
        let attr = match attr {
            Some(a) => file_attr(a),
            None => file_attr(&Attr {
                kind,
                ..dot_attr(ino)
            }),
        };
        self.reply
            .add(INodeNo(ino), offset, name, &self.ttl, &attr, Generation(0))
    }
}

/// getxattr/listxattr protocol: size 0 asks for the length; too small a buffer is ERANGE.
pub(super) fn xattr_reply(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}
