#!/usr/bin/env python3
"""smallfiles.py DIR N: create N files of 4 KiB in DIR (open/write/close), then unlink them;
prints both rates. A quick A/B of metadata-heavy changes between two mounts, run in turns
(docs/PERFORMANCE.md)."""
import os
import sys
import time

d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
buf = bytes(range(256)) * 16  # 4096 bytes
names = [os.path.join(d, "f%05d" % i) for i in range(n)]
t0 = time.perf_counter()
for p in names:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, buf)
    os.close(fd)
t1 = time.perf_counter()
for p in names:
    os.unlink(p)
t2 = time.perf_counter()
print("create/s %.0f delete/s %.0f" % (n / (t1 - t0), n / (t2 - t1)))
