//! The only file that speaks fuser: a thin adapter from kernel requests to [`Fs`].
//!
//! Each callback converts its arguments and runs the async core: on the FUSE thread while
//! it needs nothing but memory, on a tokio task from its first wait (see `run`), answering
//! the kernel from wherever it finishes. So the FUSE request loop never waits on the
//! network: a slow read in one shell cannot stall `ls` in another.

use crate::backend::Backend;
use crate::fs::Fs;
use dfs_proto::coord_msg::{FileKind, RenameFlags as WireRename, SetAttrs, XattrMode};
use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod convert;
pub use convert::file_attr;
use convert::*;

pub struct FuseAdapter<B: Backend> {
    fs: Arc<Fs<B>>,
    /// Set once the session exists; used to make the kernel drop stale cached data.
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    rt: tokio::runtime::Handle,
    /// How long the kernel may cache attributes and names. Short, because other mounts
    /// change files too; on open we revalidate anyway (close-to-open).
    ttl: Duration,
}

impl<B: Backend> FuseAdapter<B> {
    pub fn new(
        fs: Arc<Fs<B>>,
        rt: tokio::runtime::Handle,
        ttl: Duration,
        notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    ) -> Self {
        FuseAdapter {
            fs,
            rt,
            ttl,
            notifier,
        }
    }
}

/// Converts a name to UTF-8, or answers the kernel with EINVAL and returns.
macro_rules! name_or_reply {
    ($name:expr, $reply:ident) => {
        match name_of($name) {
            Ok(n) => n,
            Err(e) => return $reply.error(e),
        }
    };
}

/// Runs `$body` (an async block that answers the kernel) on the runtime, so the FUSE
/// thread goes straight back to reading requests: for requests that mostly go to the
/// network.
macro_rules! spawn {
    ($self:ident, $body:expr) => {{
        $self.rt.spawn($body);
    }};
}

/// Runs `$body` to its end right here if it never has to wait, otherwise on the runtime
/// (see [`run`]): for requests the mount mostly answers from its own state.
macro_rules! answer {
    ($self:ident, $body:expr) => {{
        run(&$self.rt, $body);
    }};
}

/// Polls `body` once on this FUSE thread. A request the mount answers from its own state
/// (a write into the dirty buffer, a setattr folded into the next commit, a lookup of a
/// name known to be absent, a queued unlink, ...) is then answered before this returns,
/// and no other thread is woken. Anything that must wait (for the network, a lock, a
/// timer) is handed to the runtime at its first wait, and the FUSE thread goes back to
/// reading requests: a slow read in one shell still cannot stall `ls` in another.
///
/// Why: waking the runtime's worker costs about 100 µs on a small virtual machine when its
/// vCPU is idle (docs/PERFORMANCE.md), several times what answering from memory costs;
/// `tar -x` makes four or five such requests per file (measured, release, /usr/include's
/// 8,758 entries on a fresh cluster: 15.9 s before, 13.2-14.0 s after). Only requests
/// that are mostly local come here: one that sends a request first wakes the worker to
/// drive the connection and then hands the task over, which saves nothing, and keeping
/// network work on the worker keeps it off the FUSE threads.
///
/// The first poll uses a waker that does nothing; that is sound because the spawned task
/// is polled again at once with the runtime's waker, and a future must register the waker
/// of its latest poll. `enter` gives the poll the runtime's context (timers, spawning).
fn run<F>(rt: &tokio::runtime::Handle, body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut body = Box::pin(body);
    let _in_runtime = rt.enter();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if body.as_mut().poll(&mut cx).is_pending() {
        rt.spawn(body);
    }
}

impl<B: Backend> Filesystem for FuseAdapter<B> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Let the kernel send writes of up to 1 MiB (one shard) in one request.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        // readdirplus: a listing carries each entry's attributes (the coordinator's ReadDir
        // pages have them anyway), so `ls -l` of N files costs one listing instead of one
        // listing plus N lookups. AUTO lets the kernel use it only when lookups follow.
        if let Err(e) = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        ) {
            tracing::debug!("kernel lacks readdirplus ({e:?}); plain readdir it is");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        // Unmount: nothing buffered may be lost.
        let fs = self.fs.clone();
        let _ = self.rt.block_on(async move { fs.flush_all().await });
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        let ttl = self.ttl;
        answer!(self, async move {
            reply_entry(reply, &ttl, fs.lookup(parent.0, &name).await);
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = self.fs.clone();
        let ttl = self.ttl;
        answer!(self, async move {
            match fs.getattr(ino.0).await {
                Ok(a) => reply.attr(&ttl, &file_attr(&a)),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttrs {
            perm: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
        };
        let fs = self.fs.clone();
        let ttl = self.ttl;
        let c = caller(req);
        answer!(self, async move {
            match fs.setattr(ino.0, c, set).await {
                Ok(a) => reply.attr(&ttl, &file_attr(&a)),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.fs.clone();
        answer!(self, async move {
            match fs.readlink(ino.0).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (name, kind) = match (name_of(name), kind_of_mode(mode)) {
            (Ok(n), Some(k)) => (n, k),
            (Err(e), _) => return reply.error(e),
            (_, None) => return reply.error(Errno::EINVAL),
        };
        let fs = self.fs.clone();
        let c = caller(req);
        let ttl = self.ttl;
        spawn!(self, async move {
            reply_entry(
                reply,
                &ttl,
                fs.mknod(parent.0, &name, kind, mode & !umask & 0o7777, rdev, c)
                    .await,
            );
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        let c = caller(req);
        let ttl = self.ttl;
        spawn!(self, async move {
            reply_entry(
                reply,
                &ttl,
                fs.mknod(parent.0, &name, FileKind::Dir, mode & !umask & 0o7777, 0, c)
                    .await,
            );
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        answer!(self, async move {
            reply_empty(reply, fs.unlink(parent.0, &name).await);
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        answer!(self, async move {
            reply_empty(reply, fs.rmdir(parent.0, &name).await);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target) = match (name_of(link_name), name_of(target.as_os_str())) {
            (Ok(n), Ok(t)) => (n, t),
            _ => return reply.error(Errno::EINVAL),
        };
        let fs = self.fs.clone();
        let c = caller(req);
        let ttl = self.ttl;
        spawn!(self, async move {
            reply_entry(reply, &ttl, fs.symlink(parent.0, &name, &target, c).await);
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (name_of(name), name_of(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return reply.error(Errno::EINVAL),
        };
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let wf = WireRename {
            noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
        };
        let fs = self.fs.clone();
        spawn!(self, async move {
            reply_empty(
                reply,
                fs.rename(parent.0, &name, newparent.0, &newname, wf).await,
            );
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = name_or_reply!(newname, reply);
        let fs = self.fs.clone();
        let ttl = self.ttl;
        spawn!(self, async move {
            reply_entry(reply, &ttl, fs.link(ino.0, newparent.0, &newname).await);
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let notifier = self.notifier.clone();
        spawn!(self, async move {
            match fs.open(ino.0).await {
                Ok((fh, true)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
                Ok((fh, false)) => {
                    // The content changed since this mount last opened it (or we cannot
                    // tell): the kernel's cached size and pages may be stale, and its
                    // attribute cache would hide the new size for up to the TTL. Drop both
                    // before the open returns. The write to /dev/fuse can block on page
                    // locks, so it runs off the async workers.
                    if let Some(n) = notifier.get().cloned() {
                        let _ = tokio::task::spawn_blocking(move || n.inval_inode(ino, 0, 0)).await;
                    }
                    reply.opened(FileHandle(fh), FopenFlags::empty())
                }
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        spawn!(self, async move {
            match fs.read(fh.0, offset, size).await {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // `data` borrows fuser's buffer: copy it before the reply is deferred.
        let data = data.to_vec();
        let fs = self.fs.clone();
        answer!(self, async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let c = caller(req);
        spawn!(self, async move {
            reply_empty(reply, fs.flush(fh.0, c).await);
        });
    }

    fn release(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let c = caller(req);
        answer!(self, async move {
            reply_empty(reply, fs.release(fh.0, c).await);
        });
    }

    fn fsync(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let c = caller(req);
        spawn!(self, async move {
            reply_empty(reply, fs.fsync(fh.0, c).await);
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        spawn!(self, async move {
            match fs.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let snap = match self.fs.dir(fh.0) {
            Ok(s) => s,
            Err(e) => return reply.error(err(&e)),
        };
        let fs = self.fs.clone();
        spawn!(self, async move {
            let mut out = Plain(reply);
            fs.readdir(&snap, offset, false, &mut out).await;
            out.0.ok();
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let snap = match self.fs.dir(fh.0) {
            Ok(s) => s,
            Err(e) => return reply.error(err(&e)),
        };
        let fs = self.fs.clone();
        let ttl = self.ttl;
        spawn!(self, async move {
            let mut out = Plus { reply, ttl };
            fs.readdir(&snap, offset, true, &mut out).await;
            out.reply.ok();
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        spawn!(self, async move {
            reply_empty(reply, fs.sync_namespace().await);
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let fs = self.fs.clone();
        spawn!(self, async move {
            match fs.statfs().await {
                Ok(s) => {
                    const BS: u64 = 4096;
                    reply.statfs(
                        s.capacity / BS,
                        s.free / BS,
                        s.free / BS,
                        s.inodes.saturating_add(1 << 32),
                        1 << 32,
                        BS as u32,
                        dfs_proto::MAX_NAME_LEN as u32,
                        BS as u32,
                    )
                }
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let name = name_or_reply!(name, reply);
        let mode = if flags & libc::XATTR_CREATE != 0 {
            XattrMode::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            XattrMode::Replace
        } else {
            XattrMode::Any
        };
        let value = value.to_vec();
        let fs = self.fs.clone();
        spawn!(self, async move {
            reply_empty(reply, fs.setxattr(ino.0, &name, value, mode).await);
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        answer!(self, async move {
            match fs.getxattr(ino.0, &name).await {
                Ok(v) => xattr_reply(reply, size, &v),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let fs = self.fs.clone();
        answer!(self, async move {
            match fs.listxattr(ino.0).await {
                Ok(names) => {
                    // The kernel wants NUL-terminated names back to back.
                    let mut buf = Vec::new();
                    for n in names {
                        buf.extend_from_slice(n.as_bytes());
                        buf.push(0);
                    }
                    xattr_reply(reply, size, &buf)
                }
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        spawn!(self, async move {
            reply_empty(reply, fs.removexattr(ino.0, &name).await);
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name_or_reply!(name, reply);
        let fs = self.fs.clone();
        let c = caller(req);
        let ttl = self.ttl;
        spawn!(self, async move {
            let perm = mode & !umask & 0o7777;
            match fs.create_open(parent.0, &name, perm, c, flags).await {
                Ok((a, fh)) => reply.created(
                    &ttl,
                    &file_attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(err(&e)),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_request_that_never_waits_is_answered_on_the_calling_thread() {
        let rt = dfs_ops::daemon::runtime("test").unwrap();
        let (tx, rx) = mpsc::channel();
        let me = std::thread::current().id();
        run(rt.handle(), async move {
            tx.send(std::thread::current().id()).unwrap();
        });
        // Answered before `run` returned, and here: no other thread was involved.
        assert_eq!(rx.try_recv().unwrap(), me);
    }

    #[test]
    fn a_request_that_waits_is_finished_by_the_runtime() {
        let rt = dfs_ops::daemon::runtime("test").unwrap();
        let (go, wait) = tokio::sync::oneshot::channel::<u32>();
        let (tx, rx) = mpsc::channel();
        let me = std::thread::current().id();
        run(rt.handle(), async move {
            // Also uses the runtime's context on the first poll (a timer).
            tokio::time::sleep(Duration::from_millis(1)).await;
            let v = wait.await.unwrap();
            tx.send((v, std::thread::current().id())).unwrap();
        });
        assert!(rx.try_recv().is_err(), "it cannot have finished yet");
        go.send(7).unwrap();
        let (v, on) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(v, 7);
        assert_ne!(on, me, "finished by the runtime's worker, not the caller");
    }
}
