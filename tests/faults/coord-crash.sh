#!/usr/bin/env bash
# coord-crash.sh: crashes between storing shards and committing them (the design's
# question: a crash after placement, before the metadata commit), and coordinator outages.
#  0. The *client* dies (kill -9 of the mount) after storing 64 MiB of a new version, before
#     committing: the file shows its last committed content exactly.
#  1. The *coordinator* dies (kill -9) at that moment: the mount keeps the bytes and retries
#     the commit, so after restart the file is exactly the old or exactly the new version,
#     never a mix.
#  2. Data whose fsync() returned is never lost.
#  3. During the outage, metadata operations fail with EIO after the deadline; afterwards
#     the same mount works again by itself (no remount).
#  4. Every change acknowledged before a kill -9 of the coordinator is there after its
#     restart, although none was fsynced: the metadata log (dfs-coord/src/store/wal.rs)
#     has it in the page cache.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
mount_pid=$(cat "$DIR/pids/mount.pid")
# A committed first version.
python3 "$FAULTS/timed_io.py" write "$M/doc" 4 >/dev/null
v1=$(expected_sha 4)
# fsynced files.
for i in 1 2 3; do python3 "$FAULTS/timed_io.py" write "$M/synced-$i" 8 >/dev/null; done
v8=$(expected_sha 8)

v2=$(python3 -c 'import hashlib; h=hashlib.sha256(); [h.update(hashlib.sha256(b"v2-%d" % i).digest() * 32768) for i in range(64)]; print(h.hexdigest())')
new_version() {  # writes 64 MiB of version 2 into doc, signals, holds it open 3 s, closes
  python3 - "$M/doc" "$DIR/placed" <<'PY'
import os, sys, time, hashlib
fd = os.open(sys.argv[1], os.O_WRONLY)  # no O_TRUNC: that would commit at open()
for i in range(64):
    os.write(fd, hashlib.sha256(b"v2-%d" % i).digest() * 32768)
time.sleep(0.5)                   # let the uploads of full shards finish: placed, stored
open(sys.argv[2], "w").close()    # ...and nothing committed yet
time.sleep(3)
try:
    os.close(fd)
except OSError as e:
    print("close failed:", e)
PY
}

say "client killed after storing 64 MiB of a new version of doc, before the commit"
rm -f "$DIR/placed"
new_version >/dev/null 2>&1 &
writer=$!
wait_for_file "$DIR/placed" 60 || fail "writer did not store its 64 MiB within 60 s"
kill -KILL "$mount_pid"
wait $writer || true
"$CLUSTER" up "$DIR" >/dev/null
mount_pid=$(cat "$DIR/pids/mount.pid")
[[ $(python3 "$FAULTS/timed_io.py" read "$M/doc" 4 | json sha256) == "$v1" && $(stat -c %s "$M/doc") == $((4 << 20)) ]] \
  || fail "doc changed although its writer died before committing"
say "  doc is exactly its last committed version"

say "writer stores 64 MiB of a new version of doc, coordinator killed before the commit"
rm -f "$DIR/placed"
new_version &
writer=$!
wait_for_file "$DIR/placed" 60 || fail "writer did not store its 64 MiB within 60 s"
kill -KILL "$(cat "$DIR/pids/coord.pid")"
t0=$(date +%s.%N)
if stat "$M/synced-1" >/dev/null 2>"$DIR/stat.err"; then fail "stat succeeded with the coordinator down?"; fi
t1=$(date +%s.%N)
out_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
say "  stat during the outage: $(cat "$DIR/stat.err") after ${out_s}s"
grep -q "Input/output error" "$DIR/stat.err" || fail "want EIO during the outage"
lt "$out_s" 15 || fail "outage error took ${out_s}s"
wait $writer || true
"$CLUSTER" up "$DIR" >/dev/null
[[ $(cat "$DIR/pids/mount.pid") == "$mount_pid" ]] || fail "the mount was restarted"
# close() returned EIO, but the kernel's RELEASE that follows it runs in the background and
# retries the commit with a fresh deadline, so v2 may land a few seconds after the restart.
# Each look reads size and bytes through one open (a stat and a later read could straddle the
# commit); every look must be exactly v1 or v2, and once v2 is seen it must stay.
look() {
  python3 - "$M/doc" <<'PY'
import hashlib, sys
h = hashlib.sha256(); n = 0
with open(sys.argv[1], "rb") as f:
    while b := f.read(1 << 20):
        h.update(b); n += len(b)
print(n, h.hexdigest())
PY
}
seen=""
deadline=$(( $(date +%s) + 16 ))  # the mount's 10 s meta deadline plus slack
while :; do
  read -r sz got < <(look)
  if [[ $sz == $((4 << 20)) && $got == "$v1" ]]; then
    [[ $seen == v2 ]] && fail "doc went back from version 2 to version 1"
    seen=v1
  elif [[ $sz == $((64 << 20)) && $got == "$v2" ]]; then seen=v2
  else fail "doc is neither version (size $sz)"; fi
  (( $(date +%s) < deadline )) || break
  [[ $seen == v2 ]] && break
  sleep 0.5
done
if [[ $seen == v1 ]]; then say "doc is exactly version 1 (the commit never happened)"
else
  read -r sz got < <(look)
  [[ $sz == $((64 << 20)) && $got == "$v2" ]] || fail "doc changed again after version 2 (size $sz)"
  say "doc is exactly version 2 (the mount's retried commit went through after the restart)"
fi
for i in 1 2 3; do
  [[ $(python3 "$FAULTS/timed_io.py" read "$M/synced-$i" 8 | json sha256) == "$v8" ]] || fail "synced-$i lost"
done
say "every fsynced file intact; the same mount (pid $mount_pid) works again"
echo "coord_outage_eio_s $out_s" >"$DIR/figures"
python3 "$FAULTS/timed_io.py" write "$M/after" 4 >/dev/null
[[ $(python3 "$FAULTS/timed_io.py" read "$M/after" 4 | json sha256) == "$v1" ]] || fail "write after restart"

say "namespace changes and small files acknowledged just before a kill -9 of the coordinator"
mkdir "$M/burst"
python3 - "$M/burst" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(200):
    with open(os.path.join(d, "f%03d" % i), "wb") as f:   # create, write, close: no fsync
        f.write(b"%d\n" % i * 100)
os.rename(os.path.join(d, "f000"), os.path.join(d, "renamed"))
os.unlink(os.path.join(d, "f001"))
os.mkdir(os.path.join(d, "sub"))
PY
kill -KILL "$(cat "$DIR/pids/coord.pid")"
"$CLUSTER" up "$DIR" >/dev/null
python3 - "$M/burst" <<'PY' || fail "acknowledged changes lost with the coordinator's kill -9"
import os, sys
d = sys.argv[1]
names = set(os.listdir(d))
want = {"f%03d" % i for i in range(2, 200)} | {"renamed", "sub"}
if names != want:
    sys.exit("missing %s, unexpected %s" % (sorted(want - names)[:5], sorted(names - want)[:5]))
for i in range(2, 200):
    if open(os.path.join(d, "f%03d" % i), "rb").read() != b"%d\n" % i * 100:
        sys.exit("f%03d has other bytes" % i)
PY
say "  all 200 creates, the rename, the unlink and the mkdir survived; every file exact"
grep -q "metadata log: replayed" "$DIR/logs/coord.log" && say "  coordinator: $(grep -o 'metadata log: replayed [0-9]* transactions' "$DIR/logs/coord.log" | tail -1)"
say "PASS"
