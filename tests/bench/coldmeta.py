#!/usr/bin/env python3
"""coldmeta.py DIR N setup|run: cold-cache metadata costs of one directory of N small files.

setup: creates N files of 4 KiB in DIR (f00000, f00001, ...).
run:   drops the kernel's caches (root only) before each of: lstat() of every file,
       open/read/close of every file, `ls -l DIR`; prints "stat/s R read/s R ls_l_s S".
A quick A/B of the mount's lookup and attribute paths between two mounts, run in turns
(docs/PERFORMANCE.md, change 3)."""
import os
import subprocess
import sys
import time

d, n, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = [os.path.join(d, "f%05d" % i) for i in range(n)]


def drop():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


if phase == "setup":
    os.makedirs(d, exist_ok=True)
    buf = bytes(range(256)) * 16
    for p in names:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, buf)
        os.close(fd)
    sys.exit(0)
if phase != "run":
    sys.exit("usage: coldmeta.py DIR N setup|run")
drop()
t = time.perf_counter()
for p in names:
    os.lstat(p)
st = n / (time.perf_counter() - t)
drop()
t = time.perf_counter()
for p in names:
    fd = os.open(p, os.O_RDONLY)
    os.read(fd, 8192)
    os.close(fd)
rd = n / (time.perf_counter() - t)
drop()
t = time.perf_counter()
subprocess.run(["ls", "-l", d], stdout=subprocess.DEVNULL, check=True)
ls = time.perf_counter() - t
print("stat/s %.0f read/s %.0f ls_l_s %.2f" % (st, rd, ls))
