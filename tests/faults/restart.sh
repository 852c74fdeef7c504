#!/usr/bin/env bash
# restart.sh: every server is restarted gracefully (SIGTERM, as `systemctl restart`
# sends, then started again) while a program writes and reads through the mount. The
# program must see no error at all, and every file must read back exactly:
#  - each node in turn: it answers the shard writes it has read, then closes its
#    connections saying so; the mount places the next shards elsewhere;
#  - the coordinator, twice: the requests it has read are answered; requests that reach it
#    while it drains are never read, and the mount sends them again to the next process
#    (even those that are not safe to repeat, like a create).
# The mount's log must hold no ERROR line.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null

# A writer that creates, writes (some fsync'd), renames and reads back files until told
# to stop; it exits non-zero at the first error, naming the operation.
cat >"$DIR/writer.py" <<'PY'
import hashlib, os, sys, time
mnt, stop, out, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
small = name != "w"
os.makedirs(f"{mnt}/{name}", exist_ok=True)
def body(i):
    # Big files span several shards (0.25 to 2.5 MiB); small ones (4 KiB) keep the
    # coordinator busy with creates and renames, so a restart finds requests in flight.
    n = 4096 if small else (1 + i % 10) * 256 * 1024
    seed = hashlib.sha256(b"%s-%d" % (name.encode(), i)).digest()
    return (seed * (n // 32 + 1))[:n]
i = 0
try:
    while not os.path.exists(stop):
        data = body(i)
        tmp, final = f"{mnt}/{name}/.{i}.tmp", f"{mnt}/{name}/{i}"
        with open(tmp, "wb") as f:
            f.write(data)
            if i % 3 == 0:
                f.flush(); os.fsync(f.fileno())
        os.rename(tmp, final)
        if i >= 2:
            old = f"{mnt}/{name}/{i - 2}"
            with open(old, "rb") as f:
                if f.read() != body(i - 2):
                    print(f"file {i - 2} read back wrong", file=sys.stderr); sys.exit(2)
        i += 1
except OSError as e:
    print(f"file {i}: {e}", file=sys.stderr); sys.exit(1)
open(out, "w").write(str(i))
PY
rm -f "$DIR/stop"
# One writer of big files (w) and three of small ones (s1..s3), side by side.
writers=(w s1 s2 s3)
pids=()
for w in "${writers[@]}"; do
  python3 "$DIR/writer.py" "$M" "$DIR/stop" "$DIR/written-$w" "$w" 2>"$DIR/writer-$w.err" &
  pids+=($!)
done
writers_alive() {
  local i
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || { cat "$DIR/writer-${writers[$i]}.err"; return 1; }
  done
}

# restart NAME: SIGTERM, wait for the process to exit by itself, start it again.
restart() {
  local pid; pid=$(cat "$DIR/pids/$1.pid")
  kill -TERM "$pid"
  local end=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < end)) || fail "$1 did not stop within 30 s of SIGTERM"
    sleep 0.05
  done
  "$CLUSTER" up "$DIR" >/dev/null
  writers_alive || fail "a writer failed while $1 restarted (above)"
  say "  $1 restarted, writers still running"
}
sleep 3
for who in node-1 node-2 node-3 coord coord coord; do
  restart "$who"
  sleep 2
done
touch "$DIR/stop"
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { cat "$DIR/writer-${writers[$i]}.err"; fail "writer ${writers[$i]} saw an error (above)"; }
done
counts=""
for w in "${writers[@]}"; do
  n=$(cat "$DIR/written-$w")
  ((n > 5)) || fail "writer $w wrote only $n files"
  counts+=" $w=$n"
done
say "writers:$counts files written, renamed and read back through 6 restarts, no error"

drop_caches
python3 - "$M" "$DIR" "${writers[@]}" <<'PY' || fail "a file reads back wrong after the restarts"
import hashlib, sys
mnt, d, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in names:
    for i in range(int(open(f"{d}/written-{name}").read())):
        m = 4096 if name != "w" else (1 + i % 10) * 256 * 1024
        seed = hashlib.sha256(b"%s-%d" % (name.encode(), i)).digest()
        if open(f"{mnt}/{name}/{i}", "rb").read() != (seed * (m // 32 + 1))[:m]:
            sys.exit(f"{name}/{i} differs")
PY
say "every file read back exactly (page cache dropped)"
if grep -E " ERROR " "$DIR/logs/mount.log" | head -5 | grep .; then fail "the mount logged errors (above)"; fi
for f in "$DIR"/logs/*.log; do ! grep -q panicked "$f" || fail "$(basename "$f" .log) panicked"; done
grep -h "stopping: answering" "$DIR"/logs/*.log | head -3 || true
say "PASS"
