#!/usr/bin/env bash
# unmount.sh [DIR]: every way a mount can end leaves no stale mount and loses no data
# whose write() returned before it ended by signal:
#   1. umount: the mount process exits 0 by itself;
#   2. SIGTERM while a writer still has a file open with unflushed data: the data is
#      committed, the mount disappears at once, the process exits when the writer closes;
#   3. kill -9: the kernel's auto-unmount removes the mount (no "Transport endpoint is
#      not connected" left behind).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OWNED=; [[ -n ${1:-} ]] || OWNED=1
DIR=${1:-$(mktemp -d /tmp/dfs-unmount.XXXXXX)}
source "$HERE/teardown.sh"
M=$DIR/mnt
fail() { echo "UNMOUNT FAIL: $*" >&2; exit 1; }
WPID=
cleanup() { local rc=$?; [[ -n $WPID ]] && kill "$WPID" 2>/dev/null; teardown "$DIR" $rc $OWNED; }
trap cleanup EXIT
step() { printf '[unmount %s] %s\n' "$(date +%T)" "$*"; }
mounted() { grep -qs " $M fuse" /proc/mounts; }
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_until() { local n=$1; shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done; return 1; }

"$HERE/cluster.sh" up "$DIR" --nodes 2 --replicas 2 >/dev/null 2>&1
M=$(cd "$M" && pwd)

step "umount: the mount process exits by itself"
pid=$(cat "$DIR/pids/mount.pid")
umount "$M"
wait_until 50 gone "$pid" || fail "mount process still running 5 s after umount"
mounted && fail "mount still listed after umount"

step "SIGTERM with a file open and unflushed"
"$HERE/cluster.sh" up "$DIR" >/dev/null 2>&1
pid=$(cat "$DIR/pids/mount.pid")
python3 - "$M/held" "$DIR/ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"written before SIGTERM\n" * 100000)   # 2.3 MB, no close, no fsync
open(sys.argv[2], "w").close()
time.sleep(60)
PY
WPID=$!
wait_until 100 test -e "$DIR/ready" || fail "writer did not start"
kill -TERM "$pid"
wait_until 50 bash -c "! grep -qs ' $M fuse' /proc/mounts" || fail "mount still listed 5 s after SIGTERM"
"$HERE/cluster.sh" up "$DIR" >/dev/null 2>&1
want=$(python3 -c 'import sys; sys.stdout.write("written before SIGTERM\n" * 100000)' | sha256sum)
[[ $(sha256sum <"$M/held") == "$want" ]] || fail "data written before SIGTERM was not committed"
kill "$WPID"; wait "$WPID" 2>/dev/null || true; WPID=
wait_until 50 gone "$pid" || fail "old mount process still running after its last file closed"

step "kill -9: no stale mount"
pid=$(cat "$DIR/pids/mount.pid")
kill -KILL "$pid"
# fusermount3's auto-unmount helper notices the dead process and unmounts; usually within
# a fraction of a second, but on a loaded 2-core machine it was seen taking over 5 s.
t0=$(date +%s.%N)
wait_until 200 bash -c "! grep -qs ' $M fuse' /proc/mounts" || fail "stale mount left 20 s after kill -9"
step "the kernel mount was gone $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')") s after kill -9"
"$HERE/cluster.sh" up "$DIR" >/dev/null 2>&1
[[ $(sha256sum <"$M/held") == "$want" ]] || fail "content after remount"
step "PASS"
