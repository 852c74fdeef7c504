#!/usr/bin/env bash
# fsx.sh [NUMOPS] [SEED]: fsx (random reads, writes, truncates, mmap reads and writes,
# every byte verified against a model) against a real mount of a 3-node cluster, R = 2.
# Default 100000 operations (about 7 minutes on 2 cores, debug build).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${1:-100000} SEED=${2:-1}
command -v fsx >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v fsx >/dev/null || { echo "fsx.sh: fsx missing (cargo install fsx)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/dfs-fsx.XXXXXX)
source "$HERE/teardown.sh"
trap 'teardown "$DIR" $? 1' EXIT
# Every fsx operation that reaches the coordinator (fsync, msync, truncate) replaces a
# shard; the replaced ones are garbage after --unref-grace. Collect them quickly so a
# 100,000-operation run does not need gigabytes of disk.
export DFS_COORD_ARGS="--unref-grace 5s --maintenance-interval 1s ${DFS_COORD_ARGS:-}"
"$HERE/cluster.sh" up "$DIR" --nodes 3 --replicas 2 >/dev/null 2>&1
start=$SECONDS
if ! fsx -N "$N" -S "$SEED" -P "$DIR" "$DIR/mnt/fsx.dat" >"$DIR/fsx.out" 2>&1; then
  head -5 "$DIR/fsx.out"; tail -20 "$DIR/fsx.out"
  echo "fsx.sh: FAIL after $((SECONDS - start)) s"; exit 1
fi
! grep -q panicked "$DIR/logs/mount.log" || { echo "fsx.sh: the mount panicked"; exit 1; }
echo "fsx.sh: $N operations (seed $SEED) verified in $((SECONDS - start)) s"
