#!/usr/bin/env bash
# smoke.sh [DIR]: the first experiment of the design, end to end through a real mount.
# One coordinator, two nodes (replication 2). Files of awkward sizes go in with cp and
# come back with cat, compared by SHA-256; then directory operations, appends, truncation,
# an overwrite in the middle of a 200 MiB file; then the cluster is stopped and started
# again and every byte is checked once more.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OWNED=; [[ -n ${1:-} ]] || OWNED=1
DIR=${1:-$(mktemp -d /tmp/dfs-smoke.XXXXXX)}
source "$HERE/teardown.sh"
SRC=$(mktemp -d /tmp/dfs-smoke-src.XXXXXX)
M=$DIR/mnt
fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
cleanup() { local rc=$?; teardown "$DIR" $rc $OWNED; rm -rf "$SRC"; }
trap cleanup EXIT
step() { printf '[smoke %s] %s\n' "$(date +%T)" "$*"; }

"$HERE/cluster.sh" up "$DIR" --nodes 2 --replicas 2

step "writing files of awkward sizes"
: >"$SRC/empty"
printf 'hello, distributed world\n' >"$SRC/small.txt"
head -c $((1048576 - 1)) /dev/urandom >"$SRC/mib-minus-1"
head -c 1048576 /dev/urandom >"$SRC/mib"
head -c $((1048576 + 1)) /dev/urandom >"$SRC/mib-plus-1"
head -c $((200 * 1048576)) /dev/urandom >"$SRC/big"
for f in empty small.txt mib-minus-1 mib mib-plus-1 big; do
  cp "$SRC/$f" "$M/$f"
done
check_all() {
  for f in empty small.txt mib-minus-1 mib mib-plus-1 big; do
    want=$(sha256sum <"$SRC/$f" | cut -d' ' -f1)
    got=$(cat "$M/$f" | sha256sum | cut -d' ' -f1)
    [[ $want == "$got" ]] || fail "$f: sha256 $got, want $want"
    sz=$(stat -c %s "$M/$f"); want_sz=$(stat -c %s "$SRC/$f")
    [[ $sz == "$want_sz" ]] || fail "$f: size $sz, want $want_sz"
  done
}
check_all
# Streaming 200 MiB through the mount must not grow it by more than its buffers:
# 64 MiB shard cache + 8 upload slots of 1 MiB + 16 MiB dirty per file, plus the program.
hwm_kib=$(awk '/VmHWM/{print $2}' "/proc/$(cat "$DIR/pids/mount.pid")/status")
step "mount process peak RSS after writing 200 MiB and reading it back: $((hwm_kib / 1024)) MiB"
((hwm_kib < 160 * 1024)) || fail "mount peak RSS ${hwm_kib} KiB exceeds its configured buffers"
step "ls -l shows the sizes"
ls -l "$M"
[[ $(ls -l "$M" | awk '$NF=="mib-plus-1"{print $5}') == 1048577 ]] || fail "ls -l size of mib-plus-1"

step "directories: mkdir -p, mv, rm -r"
mkdir -p "$M/a/b/c"
cp "$SRC/small.txt" "$M/a/b/c/f"
mv "$M/a/b" "$M/moved"
[[ -f $M/moved/c/f && ! -e $M/a/b ]] || fail "mv of a directory"
cmp "$SRC/small.txt" "$M/moved/c/f" || fail "content after mv"
rm -r "$M/moved"
[[ ! -e $M/moved ]] || fail "rm -r"

step "append with >> and truncate"
cp "$SRC/small.txt" "$M/log"; cp "$SRC/small.txt" "$SRC/log"
for i in 1 2 3; do echo "line $i" >>"$M/log"; echo "line $i" >>"$SRC/log"; done
cmp "$SRC/log" "$M/log" || fail "append"
truncate -s 10 "$M/log"; truncate -s 10 "$SRC/log"
cmp "$SRC/log" "$M/log" || fail "truncate down"
truncate -s 3000000 "$M/log"; truncate -s 3000000 "$SRC/log"
cmp "$SRC/log" "$M/log" || fail "truncate up (hole must read as zeros)"

step "overwrite 3 MiB in the middle of the big file"
head -c $((3 * 1048576)) /dev/urandom >"$SRC/patch"
off=$((100 * 1048576 + 12345))
dd if="$SRC/patch" of="$M/big" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none
dd if="$SRC/patch" of="$SRC/big" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none
check_all
cmp "$SRC/log" "$M/log" || fail "log"

step "down and up again: everything must still be there"
"$HERE/cluster.sh" down "$DIR"
"$HERE/cluster.sh" up "$DIR"
check_all
cmp "$SRC/log" "$M/log" || fail "log after restart"
step "PASS"
