#!/usr/bin/env bash
# memory.sh [BUDGET...]: the mount's peak memory against its budgets.
#
# For each BUDGET (default: 16M 32M 64M 128M), a fresh release cluster (3 nodes, R = 2)
# whose mount runs with --cache-bytes, --max-dirty and --max-dirty-total all set to
# BUDGET takes the data phases of the benchmark: 1 GiB sequential write with end_fsync,
# 15 s of 4 KiB random writes with end_fsync, drop_caches, a cold sequential read, 10 s
# of 4 KiB random reads. Prints the mount's VmHWM (peak RSS) after them. As root
# (drop_caches). DFS_BIN_DIR picks the binaries (default: a release build of this tree);
# MEMORY_DIR (default /tmp/dfs-memory) where the clusters live.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUDGETS=("$@"); [[ ${#BUDGETS[@]} -gt 0 ]] || BUDGETS=(16M 32M 64M 128M)
WORK=${MEMORY_DIR:-/tmp/dfs-memory}
command -v fio >/dev/null || apt-get install -y fio >/dev/null
if [[ -z ${DFS_BIN_DIR:-} ]]; then
  (cd "$ROOT" && cargo build --release -q -p dfs-coord -p dfs-node -p dfs-fuse)
  export DFS_BIN_DIR=$ROOT/target/release
fi
CUR=
cleanup() { [[ -n $CUR ]] && "$ROOT/tests/cluster.sh" down "$CUR" --purge >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "| budget (each flag) | mount peak RSS (VmHWM) |"
echo "|---|---|"
for b in "${BUDGETS[@]}"; do
  CUR=$WORK/$b
  DFS_MOUNT_ARGS="--cache-bytes $b --max-dirty $b --max-dirty-total $b" \
    "$ROOT/tests/cluster.sh" up "$CUR" --nodes 3 --replicas 2 >/dev/null
  F=(fio --ioengine=psync --numjobs=1 --fallocate=none --randrepeat=1
     --filename="$CUR/mnt/big" --size=1g --output-format=terse)
  "${F[@]}" --name=sw --rw=write --bs=1M --end_fsync=1 >/dev/null
  "${F[@]}" --name=rw --rw=randwrite --bs=4k --time_based --runtime=15 --end_fsync=1 >/dev/null
  sync; echo 3 >/proc/sys/vm/drop_caches
  "${F[@]}" --name=sr --rw=read --bs=1M >/dev/null
  "${F[@]}" --name=rr --rw=randread --bs=4k --time_based --runtime=10 >/dev/null
  hwm=$(awk '/VmHWM/{printf "%.0f MiB", $2 / 1024}' "/proc/$(cat "$CUR/pids/mount.pid")/status")
  echo "| $b | $hwm |"
  "$ROOT/tests/cluster.sh" down "$CUR" --purge >/dev/null 2>&1
  CUR=
done
