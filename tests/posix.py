#!/usr/bin/env python3
"""posix.py MOUNT [MOUNT2]: POSIX behaviour checks on a real dfs mount.

Each check compares what the mount does with what Linux filesystems do, by errno and by
value. MOUNT2, if given, is a second mount of the same cluster, for close-to-open checks.
Run as root (some checks switch to other users with setpriv)."""
import ctypes, errno, os, stat, subprocess, sys, time

M = sys.argv[1]
M2 = sys.argv[2] if len(sys.argv) > 2 else None
D = os.path.join(M, "posix.%d" % os.getpid())
failures = []
libc = ctypes.CDLL(None, use_errno=True)


def check(name, cond, detail=""):
    if cond:
        print("ok   ", name)
    else:
        print("FAIL ", name, detail)
        failures.append(name)


def raises(name, err, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        check(name, e.errno == err, "errno %s, want %s" % (errno.errorcode.get(e.errno), errno.errorcode[err]))
        return
    check(name, False, "no error, want %s" % errno.errorcode[err])


def write(p, data, mode="wb"):
    with open(p, mode) as f:
        f.write(data)


def read(p, m=M):
    with open(p, "rb") as f:
        return f.read()


def as_user(uid, *cmd):
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", *cmd],
                          capture_output=True)


os.mkdir(D)
os.chmod(D, 0o777)

# --- files, sizes, holes ------------------------------------------------------------
p = os.path.join(D, "f")
write(p, b"hello")
check("create+write+read", read(p) == b"hello")
st = os.stat(p)
check("size", st.st_size == 5)
with open(p, "r+b") as f:
    f.seek(3 * 1048576 + 7)
    f.write(b"tail")
data = read(p)
check("write past EOF leaves zero hole", len(data) == 3 * 1048576 + 11 and data[5:3 * 1048576 + 7] == bytes(3 * 1048576 + 2) and data.endswith(b"tail"))
os.truncate(p, 2)
check("truncate down", read(p) == b"he")
os.truncate(p, 2 * 1048576)
data = read(p)
check("truncate up reads zeros", len(data) == 2 * 1048576 and data[:2] == b"he" and data[2:] == bytes(len(data) - 2))
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"XY")
os.close(fd)
check("O_APPEND appends", read(p)[-2:] == b"XY" and os.stat(p).st_size == 2 * 1048576 + 2)
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.close(fd)
check("O_TRUNC empties", os.stat(p).st_size == 0)
raises("O_EXCL on existing -> EEXIST", errno.EEXIST, os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
raises("open missing -> ENOENT", errno.ENOENT, os.open, os.path.join(D, "nope"), os.O_RDONLY)
raises("name of 256 bytes -> ENAMETOOLONG", errno.ENAMETOOLONG, os.open, os.path.join(D, "x" * 256), os.O_CREAT | os.O_WRONLY)
write(os.path.join(D, "y" * 255), b"ok")
check("name of 255 bytes works", read(os.path.join(D, "y" * 255)) == b"ok")

# --- overwrite inside a shard, read your writes before close --------------------------
p2 = os.path.join(D, "rw")
blob = os.urandom(2 * 1048576 + 100)
write(p2, blob)
with open(p2, "r+b") as f:
    f.seek(1048576 - 3)
    f.write(b"ABCDEF")
    f.seek(1048576 - 5)
    got = f.read(10)
check("read sees own uncommitted write", got == blob[1048571:1048573] + b"ABCDEF" + blob[1048579:1048581])
b2 = bytearray(blob)
b2[1048573:1048579] = b"ABCDEF"
check("overwrite across shard boundary", read(p2) == bytes(b2))

# --- directories --------------------------------------------------------------------
d = os.path.join(D, "dir")
os.mkdir(d)
write(os.path.join(d, "x"), b"1")
raises("rmdir non-empty -> ENOTEMPTY", errno.ENOTEMPTY, os.rmdir, d)
raises("mkdir existing -> EEXIST", errno.EEXIST, os.mkdir, d)
raises("unlink a directory -> EISDIR", errno.EISDIR, os.unlink, d)
raises("rmdir a file -> ENOTDIR", errno.ENOTDIR, os.rmdir, os.path.join(d, "x"))
raises("path through a file -> ENOTDIR", errno.ENOTDIR, os.stat, os.path.join(d, "x", "y"))
names = sorted(os.listdir(d))
check("readdir", names == ["x"], names)
check("dir nlink counts subdirs", os.stat(D).st_nlink == 3)
ls = subprocess.run(["ls", "-a", d], capture_output=True, text=True).stdout.split()
check("readdir has . and ..", ls == [".", "..", "x"], ls)
many = os.path.join(D, "many")
os.mkdir(many)
for i in range(2500):
    os.close(os.open(os.path.join(many, "e%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
check("readdir of 2500 entries (several pages)", len(os.listdir(many)) == 2500)

# --- rename -------------------------------------------------------------------------
a, b = os.path.join(D, "ra"), os.path.join(D, "rb")
write(a, b"A")
write(b, b"B")
os.rename(a, b)
check("rename replaces target", read(b) == b"A" and not os.path.exists(a))
write(a, b"A2")
RENAME_NOREPLACE = 1
AT_FDCWD = -100
r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_NOREPLACE)
check("RENAME_NOREPLACE -> EEXIST", r == -1 and ctypes.get_errno() == errno.EEXIST, (r, ctypes.get_errno()))
RENAME_EXCHANGE = 2
r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE)
check("RENAME_EXCHANGE swaps", r == 0 and read(a) == b"A" and read(b) == b"A2", (r, ctypes.get_errno()))
os.rename(d, os.path.join(D, "dir2"))
check("rename directory", os.path.exists(os.path.join(D, "dir2", "x")))
raises("rename dir into itself -> EINVAL", errno.EINVAL, os.rename, os.path.join(D, "dir2"), os.path.join(D, "dir2", "sub"))
os.mkdir(os.path.join(D, "e1"))
write(os.path.join(D, "e1", "z"), b"")
raises("rename dir over non-empty dir -> ENOTEMPTY", errno.ENOTEMPTY, os.rename, os.path.join(D, "dir2"), os.path.join(D, "e1"))

# --- hard links and symlinks -----------------------------------------------------------
h1, h2 = os.path.join(D, "h1"), os.path.join(D, "h2")
write(h1, b"link me")
os.link(h1, h2)
s1, s2 = os.stat(h1), os.stat(h2)
check("hard link shares inode", s1.st_ino == s2.st_ino and s1.st_nlink == 2 and s2.st_nlink == 2)
write(h2, b"changed", "wb")
check("write via one name visible via other", read(h1) == b"changed")
os.unlink(h1)
check("nlink after unlink", os.stat(h2).st_nlink == 1)
raises("hard link to directory -> EPERM", errno.EPERM, os.link, os.path.join(D, "dir2"), os.path.join(D, "dl"))
os.symlink("h2", os.path.join(D, "sl"))
check("symlink + readlink", os.readlink(os.path.join(D, "sl")) == "h2" and read(os.path.join(D, "sl")) == b"changed")
check("lstat of symlink", stat.S_ISLNK(os.lstat(os.path.join(D, "sl")).st_mode))

# --- unlink while open ------------------------------------------------------------------
u = os.path.join(D, "unl")
write(u, b"still here" * 100000)
f = open(u, "rb")
os.unlink(u)
check("unlinked open file stays readable", f.read() == b"still here" * 100000)
check("fstat of unlinked open file", os.fstat(f.fileno()).st_nlink == 0)
f.close()
check("unlinked file gone", not os.path.exists(u))

# --- special files ------------------------------------------------------------------
os.mkfifo(os.path.join(D, "fifo"))
check("mkfifo", stat.S_ISFIFO(os.stat(os.path.join(D, "fifo")).st_mode))
os.mknod(os.path.join(D, "cdev"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
st = os.stat(os.path.join(D, "cdev"))
check("mknod char device keeps rdev", stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3))

# --- attributes -------------------------------------------------------------------------
t = os.path.join(D, "t")
write(t, b"x")
os.chmod(t, 0o640)
check("chmod", stat.S_IMODE(os.stat(t).st_mode) == 0o640)
os.chown(t, 1234, 5678)
st = os.stat(t)
check("chown", st.st_uid == 1234 and st.st_gid == 5678)
os.chmod(t, 0o4755)
os.chown(t, 1235, -1)
check("chown clears set-user-ID", stat.S_IMODE(os.stat(t).st_mode) == 0o755)
os.utime(t, ns=(1_000_000_000_123, 2_000_000_000_456))
st = os.stat(t)
check("utimens with nanoseconds", st.st_atime_ns == 1_000_000_000_123 and st.st_mtime_ns == 2_000_000_000_456, (st.st_atime_ns, st.st_mtime_ns))
subprocess.run(["touch", "-a", "-d", "2001-01-01", t], check=True)
st = os.stat(t)
check("touch -a leaves mtime (UTIME_OMIT)", st.st_mtime_ns == 2_000_000_000_456)
c0 = os.stat(t).st_ctime_ns
time.sleep(0.01)
os.chmod(t, 0o600)
check("chmod changes ctime", os.stat(t).st_ctime_ns > c0)
m0 = os.stat(D).st_mtime_ns
time.sleep(0.01)
write(os.path.join(D, "newentry"), b"")
check("create changes parent mtime", os.stat(D).st_mtime_ns > m0)
m0 = os.stat(t).st_mtime_ns
time.sleep(0.01)
write(t, b"more", "ab")
check("write changes mtime", os.stat(t).st_mtime_ns > m0)

# --- extended attributes ------------------------------------------------------------
os.setxattr(t, "user.color", b"blue")
check("getxattr", os.getxattr(t, "user.color") == b"blue")
check("listxattr", "user.color" in os.listxattr(t))
raises("XATTR_CREATE on existing -> EEXIST", errno.EEXIST, os.setxattr, t, "user.color", b"red", os.XATTR_CREATE)
os.removexattr(t, "user.color")
raises("missing xattr -> ENODATA", errno.ENODATA, os.getxattr, t, "user.color")

# --- permissions for other users (allow_other + default_permissions) ---------------------
secret = os.path.join(D, "secret")
write(secret, b"top secret")
os.chmod(secret, 0o600)
public = os.path.join(D, "public")
write(public, b"for everyone")
os.chmod(public, 0o644)
r = as_user(65534, "cat", public)
check("other user can read a 0644 file (control)", r.returncode == 0 and r.stdout == b"for everyone", r.stderr)
r = as_user(65534, "cat", secret)
check("other user cannot read a 0600 file", r.returncode != 0 and b"Permission denied" in r.stderr, r.stderr)
r = as_user(65534, "sh", "-c", "echo x >> " + public)
check("other user cannot write a 0644 file", r.returncode != 0 and read(public) == b"for everyone", r.stderr)
sticky = os.path.join(D, "sticky")
os.mkdir(sticky)
os.chmod(sticky, 0o1777)
r = as_user(65534, "sh", "-c", "echo mine > %s/owned" % sticky)
check("other user creates a file in a 1777 directory", r.returncode == 0, r.stderr)
r = as_user(65533, "rm", "-f", os.path.join(sticky, "owned"))
check("sticky directory protects others' files", os.path.exists(os.path.join(sticky, "owned")), r.stderr)
r = as_user(65534, "sh", "-c", "echo x > %s/mine && cat %s/mine" % (sticky, sticky))
check("user creates files it owns", r.returncode == 0 and os.stat(os.path.join(sticky, "mine")).st_uid == 65534, r.stderr)
# Two unprivileged users: one's private file is closed to the other (read, write, delete).
r = as_user(65534, "sh", "-c", "umask 077; echo private > %s/diary" % sticky)
check("user A creates a 0600 file", r.returncode == 0 and os.stat(os.path.join(sticky, "diary")).st_mode & 0o777 == 0o600, r.stderr)
r = as_user(65533, "cat", os.path.join(sticky, "diary"))
check("user B cannot read user A's 0600 file", r.returncode != 0 and b"Permission denied" in r.stderr, r.stderr)
r = as_user(65533, "sh", "-c", "echo x >> %s/diary" % sticky)
check("user B cannot append to user A's 0600 file", r.returncode != 0 and read(os.path.join(sticky, "diary")) == b"private\n", r.stderr)
r = as_user(65533, "chmod", "644", os.path.join(sticky, "diary"))
check("user B cannot chmod user A's file", r.returncode != 0 and os.stat(os.path.join(sticky, "diary")).st_mode & 0o777 == 0o600, r.stderr)
sg = os.path.join(D, "sgid")
os.mkdir(sg)
os.chown(sg, 0, 4321)
os.chmod(sg, 0o2777)
os.mkdir(os.path.join(sg, "sub"))
st = os.stat(os.path.join(sg, "sub"))
check("set-group-ID directory: gid and bit inherited", st.st_gid == 4321 and st.st_mode & stat.S_ISGID)

# --- statfs -------------------------------------------------------------------------
sv = os.statvfs(M)
check("statfs reports capacity", sv.f_blocks > 0 and sv.f_bavail > 0 and sv.f_namemax == 255)

# --- close-to-open across two mounts ----------------------------------------------------
if M2:
    cp = os.path.join(D, "c2o")
    write(cp, b"version 1")
    p_other = os.path.join(M2, os.path.relpath(cp, M))
    check("second mount sees committed file", read(p_other) == b"version 1")
    os.stat(p_other)  # the second kernel now caches the old size
    write(cp, b"version 2, longer")
    check("second mount sees new content right after close (no TTL wait)", read(p_other) == b"version 2, longer")
    with open(cp, "r+b") as f:
        f.write(b"V3")
        f.flush()
        os.fsync(f.fileno())
        check("second mount sees content after fsync, before close", read(p_other) == b"V3rsion 2, longer")

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
