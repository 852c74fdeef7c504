#!/usr/bin/env python3
"""timed_io.py read|write PATH MIB [STARTED_FILE]

Reads or writes PATH in 1 MiB calls and times every single read()/write() (and the final
fsync for writes). Prints one JSON line: the SHA-256 of the bytes, the longest call, and
the total time. Writes use a deterministic pseudo-random stream, so the caller can compare
hashes. STARTED_FILE, if given, is created after the first MiB, so a fault script knows
the transfer is under way before it injects the fault."""
import hashlib, json, os, sys, time

mode, path, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = sys.argv[4] if len(sys.argv) > 4 else None
h = hashlib.sha256()
worst = 0.0
t0 = time.monotonic()
ok = True
err = None


def block(i):
    # 1 MiB, different for every i, cheap to produce.
    seed = hashlib.sha256(b"dfs-%d" % i).digest()
    return seed * (1048576 // 32)


try:
    if mode == "write":
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        for i in range(mib):
            b = block(i)
            s = time.monotonic()
            os.write(fd, b)
            worst = max(worst, time.monotonic() - s)
            h.update(b)
            if i == 0 and started:
                open(started, "w").close()
        s = time.monotonic()
        os.fsync(fd)
        fsync_s = time.monotonic() - s
        os.close(fd)
    else:
        fsync_s = 0.0
        fd = os.open(path, os.O_RDONLY)
        i = 0
        while True:
            s = time.monotonic()
            b = os.read(fd, 1048576)
            worst = max(worst, time.monotonic() - s)
            if not b:
                break
            h.update(b)
            i += 1
            if i == 1 and started:
                open(started, "w").close()
        os.close(fd)
except OSError as e:
    ok = False
    err = "%s: %s" % (type(e).__name__, e)
    fsync_s = 0.0
print(json.dumps({"ok": ok, "error": err, "sha256": h.hexdigest(), "worst_call_s": round(worst, 3),
                  "fsync_s": round(fsync_s, 3), "total_s": round(time.monotonic() - t0, 3)}))
