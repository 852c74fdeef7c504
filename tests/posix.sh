#!/usr/bin/env bash
# posix.sh [DIR]: POSIX behaviour and everyday tools (tar, git, cp -r, sha256sum) on a
# real mount of a 3-node cluster (replication 2), plus a second mount for close-to-open.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OWNED=; [[ -n ${1:-} ]] || OWNED=1
DIR=${1:-$(mktemp -d /tmp/dfs-posix.XXXXXX)}
source "$HERE/teardown.sh"
M=$DIR/mnt M2=$DIR/mnt2
WORK=$(mktemp -d /tmp/dfs-posix-work.XXXXXX)
fail() { echo "POSIX FAIL: $*" >&2; exit 1; }
M2PID=
cleanup() {
  local rc=$?
  [[ -n $M2PID ]] && { fusermount3 -u "$M2" 2>/dev/null || true; kill "$M2PID" 2>/dev/null || true; }
  teardown "$DIR" $rc $OWNED
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '[posix %s] %s\n' "$(date +%T)" "$*"; }

# Other users must be able to reach the mount for the permission checks.
chmod 755 "$DIR"
"$HERE/cluster.sh" up "$DIR" --nodes 3 --replicas 2
# shellcheck disable=SC1091
source "$DIR/cluster.conf"
BIN=${DFS_BIN_DIR:-$ROOT/target/${DFS_PROFILE:-debug}}
mkdir -p "$M2"
# The second mount gives up on a silent node after 1 s (the stall test below).
setsid "$BIN/dfs-fuse" "$M2" --coord "127.0.0.1:$PORT" --certs "$DIR/certs" --node-timeout-ms 1000 \
  >"$DIR/logs/mount2.log" 2>&1 &
M2PID=$!
for _ in $(seq 100); do grep -qs " $M2 fuse" /proc/mounts && break; sleep 0.1; done
grep -qs " $M2 fuse" /proc/mounts || fail "second mount did not appear"

step "POSIX checks"
python3 "$HERE/posix.py" "$M" "$M2"

step "tar -x of a source tree, then cp -r, compared file by file"
tar -C /usr/include -cf "$WORK/tree.tar" linux asm-generic
mkdir "$M/tree"
tar -xf "$WORK/tree.tar" -C "$M/tree"
mkdir "$WORK/ref"; tar -xf "$WORK/tree.tar" -C "$WORK/ref"
diff -r "$WORK/ref" "$M/tree" || fail "tar -x tree differs"
cp -r "$M/tree" "$M/tree2"
diff -r "$WORK/ref" "$M/tree2" || fail "cp -r tree differs"
n=$(find "$M/tree2" -type f | wc -l)
step "$n files identical"
rm -r "$M/tree" "$M/tree2"
[[ -z $(ls "$M") || ! -e $M/tree ]] || fail "rm -r"

step "git init/add/commit/clone"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e
git init -q "$M/repo"
cp -r "$WORK/ref/linux" "$M/repo/src"
git -C "$M/repo" add -A
git -C "$M/repo" commit -qm "first"
echo change >>"$M/repo/src/types.h"
git -C "$M/repo" commit -qam "second"
git -C "$M/repo" fsck --strict 2>&1 | grep -v '^Checking' || true
git -C "$M/repo" fsck --strict >/dev/null || fail "git fsck"
git clone -q "$M/repo" "$M/clone"
[[ $(git -C "$M/clone" log --oneline | wc -l) == 2 ]] || fail "clone history"
diff -r "$M/repo/src" "$M/clone/src" || fail "clone content"
git clone -q "$M/repo" "$WORK/clone-local"
diff -r "$WORK/clone-local/src" "$M/repo/src" || fail "clone to local disk"

step "sha256sum of a 64 MiB file through both mounts"
head -c $((64 << 20)) /dev/urandom >"$WORK/r"
cp "$WORK/r" "$M/r"
want=$(sha256sum <"$WORK/r"); [[ $(sha256sum <"$M/r") == "$want" ]] || fail "sha256 on mount 1"
[[ $(sha256sum <"$M2/r") == "$want" ]] || fail "sha256 on mount 2"
step "frozen nodes: a stalled read fails with EIO in bounded time and never blocks ls"
head -c $((8 << 20)) /dev/urandom >"$WORK/s"
cp "$WORK/s" "$M/stall"
sync; echo 3 >/proc/sys/vm/drop_caches
NODE_PIDS=$(cat "$DIR"/pids/node-*.pid)
kill -STOP $NODE_PIDS
t0=$(date +%s.%N)
( rc=0; cat "$M2/stall" >/dev/null 2>"$WORK/cat.err" || rc=$?; echo $rc >"$WORK/cat.rc" ) &
catpid=$!
sleep 0.3
t1=$(date +%s.%N)
ls -l "$M2" >/dev/null; stat "$M2/r" >/dev/null
t2=$(date +%s.%N)
wait $catpid || true
t3=$(date +%s.%N)
kill -CONT $NODE_PIDS
ls_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')
cat_s=$(awk -v a="$t0" -v b="$t3" 'BEGIN{print b-a}')
step "ls during the stalled read took ${ls_s}s; the read gave up after ${cat_s}s: $(cat "$WORK/cat.err")"
awk -v x="$ls_s" 'BEGIN{exit !(x < 1.0)}' || fail "ls blocked behind a stalled read (${ls_s}s)"
[[ $(cat "$WORK/cat.rc") != 0 ]] || fail "read from frozen nodes succeeded?"
grep -q "Input/output error" "$WORK/cat.err" || fail "read from frozen nodes: want EIO, got: $(cat "$WORK/cat.err")"
awk -v x="$cat_s" 'BEGIN{exit !(x < 10)}' || fail "read from frozen nodes took ${cat_s}s"
[[ $(sha256sum <"$M2/stall") == $(sha256sum <"$WORK/s") ]] || fail "read after the nodes resumed"
step "PASS"
