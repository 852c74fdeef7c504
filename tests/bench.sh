#!/usr/bin/env bash
# bench.sh [ROUNDS]: the performance benchmark of the project (issue 4). NOT part of CI or
# tests/all.sh: a full run takes 10-15 minutes per round on a 2-core VM.
#
# In one invocation it starts
#   - dfs: a release build, 3 nodes, R = 2 (tests/cluster.sh), mounted, with the default
#     durability contract (docs/SEMANTICS.md);
#   - dfs-strict: the same with --durable-close on the coordinator and the nodes (every
#     change and shard fsynced before it is acknowledged), reported beside it;
#   - MooseFS 3.0 (Debian packages) of the same shape, goal 2 (tests/bench/moosefs.sh);
#   - bindfs, a FUSE passthrough to local disk: the floor any FUSE filesystem pays;
# all on 127.0.0.1, then runs the same workload (tests/bench/workload.sh) on each, ROUNDS
# times (default 3), round-robin with the starting system rotated every round so that a
# burst of noise from other work on the machine hits every system alike. It prints a table
# of medians, the ratio dfs/MooseFS and dfs/bindfs of each figure, and whether the
# issue's target is met. Ratios are "how many times better dfs is": rate_dfs / rate_other
# for rates, time_other / time_dfs for durations; above 1 means dfs is faster.
#
# Also reported: peak RSS (VmHWM) of each mount and of each system's daemons after all
# rounds, and CPU seconds (user+system, mount + daemons) per GiB moved by the sequential
# write and read.
#
# It leaves nothing running or mounted, also on failure or Ctrl-C.
#
# Knobs (environment):
#   BENCH_SIZE (1g) BENCH_RUNTIME (15 s) BENCH_NFILES (5000) BENCH_TREE_SRC (/usr/include):
#       the workload; a quick run: BENCH_SIZE=256m BENCH_RUNTIME=5 BENCH_NFILES=1000 bench.sh 1
#   BENCH_SYSTEMS ("dfs dfs-strict moosefs bindfs"): which systems to run
#   BENCH_DIR (/tmp/dfs-bench): where clusters live (deleted at the end)
#   BENCH_OUT (BENCH_DIR/../dfs-bench-results.txt): raw "round label figure value unit" lines
#   DFS_MOUNT_ARGS, DFS_NODE_ARGS, DFS_COORD_ARGS: passed on to tests/cluster.sh
set -euo pipefail

ROUNDS=${1:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${BENCH_DIR:-/tmp/dfs-bench}
OUT=${BENCH_OUT:-$(dirname "$WORK")/dfs-bench-results.txt}
read -r -a SYSTEMS <<<"${BENCH_SYSTEMS:-dfs dfs-strict moosefs bindfs}"

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (drop_caches, mounting MooseFS, apt)"

# ------------------------------------------------------------------ what it needs
need=()
command -v fio >/dev/null || need+=(fio)
command -v bindfs >/dev/null || need+=(bindfs)
command -v mfsmaster >/dev/null || need+=(moosefs-master)
command -v mfschunkserver >/dev/null || need+=(moosefs-chunkserver)
command -v mfsmount >/dev/null || need+=(moosefs-client)
command -v mfscli >/dev/null || need+=(moosefs-cli)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; } ||
    die "could not install ${need[*]}"
fi
say "building release binaries"
(cd "$ROOT" && cargo build -q --release --bins) || die "build failed"

# ------------------------------------------------------------------ bring-up, teardown
BINDFS_PID=
teardown() {
  set +e
  say "tearing down"
  for d in dfs dfs-strict; do
    if [[ -d $WORK/$d ]]; then
      "$HERE/cluster.sh" down "$WORK/$d" --purge >/dev/null 2>&1
    fi
  done
  "$HERE/bench/moosefs.sh" down "$WORK/moosefs" 2>/dev/null
  if grep -qs " $WORK/bindfs/mnt " /proc/mounts; then
    fusermount -u "$WORK/bindfs/mnt" 2>/dev/null || umount -l "$WORK/bindfs/mnt"
  fi
  [[ -n $BINDFS_PID ]] && kill "$BINDFS_PID" 2>/dev/null
  rm -rf --one-file-system "$WORK"
}
# Checked before the traps are set: a run that refuses to start must not tear down
# another run's clusters.
[[ -e $WORK ]] && die "$WORK exists: a previous run still there? (remove it, or set BENCH_DIR)"
mkdir -p "$WORK"
trap teardown EXIT
trap 'exit 130' INT TERM
mount_of() { # SYSTEM -> its mount point
  case $1 in
    dfs | dfs-strict) echo "$WORK/$1/mnt" ;;
    moosefs) echo "$WORK/moosefs/mnt" ;;
    bindfs) echo "$WORK/bindfs/mnt" ;;
  esac
}
# pids_of SYSTEM ROLE: ROLE is mount or daemons.
pids_of() {
  case $1/$2 in
    dfs/mount | dfs-strict/mount) cat "$WORK/$1/pids/mount.pid" ;;
    dfs/daemons | dfs-strict/daemons) cat "$WORK/$1/pids/coord.pid" "$WORK/$1"/pids/node-*.pid | tr '\n' ' ' ;;
    moosefs/mount) awk '$1=="mfsmount"{print $2}' "$WORK/moosefs/pids" ;;
    moosefs/daemons) awk '$1!="mfsmount"{printf "%s ", $2}' "$WORK/moosefs/pids" ;;
    bindfs/mount) echo "$BINDFS_PID" ;;
    bindfs/daemons) echo ;;
  esac
}
for s in "${SYSTEMS[@]}"; do
  case $s in
    dfs)
      say "dfs: 3 nodes, R = 2, mount args: ${DFS_MOUNT_ARGS:-(defaults)}"
      DFS_PROFILE=release "$HERE/cluster.sh" up "$WORK/dfs" --nodes 3 --replicas 2 ;;
    dfs-strict)
      say "dfs-strict: the same with --durable-close"
      DFS_DURABLE_CLOSE=1 DFS_PROFILE=release "$HERE/cluster.sh" up "$WORK/dfs-strict" --nodes 3 --replicas 2 ;;
    moosefs) "$HERE/bench/moosefs.sh" up "$WORK/moosefs" ;;
    bindfs)
      mkdir -p "$WORK/bindfs/src" "$WORK/bindfs/mnt"
      setsid bindfs -f "$WORK/bindfs/src" "$WORK/bindfs/mnt" </dev/null >"$WORK/bindfs.log" 2>&1 &
      BINDFS_PID=$!
      for _ in $(seq 50); do grep -qs " $WORK/bindfs/mnt " /proc/mounts && break; sleep 0.1; done
      grep -qs " $WORK/bindfs/mnt " /proc/mounts || die "bindfs did not mount" ;;
    *) die "unknown system $s (dfs, dfs-strict, moosefs, bindfs)" ;;
  esac
done

# ------------------------------------------------------------------ rounds
: >"$OUT"
n=${#SYSTEMS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < n; i++)); do
    s=${SYSTEMS[$(((i + r - 1) % n))]}
    say "round $r/$ROUNDS: $s"
    # Start from a quiet disk: MooseFS does not fsync, so without this the dirty pages of
    # the system that ran before are written back during the next one's run, and whoever
    # follows MooseFS in the rotation pays for its writes.
    sync
    sleep 2
    BENCH_PIDS="$(pids_of "$s" mount) $(pids_of "$s" daemons)" \
      "$HERE/bench/workload.sh" "$(mount_of "$s")" "$s" | sed "s/^/$r /" | tee -a "$OUT" >&2
  done
done
hwm_mib() { # PIDS... -> sum of VmHWM in MiB
  local p sum=0
  for p in "$@"; do
    sum=$((sum + $(awk '/^VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo $((sum / 1024))
}
for s in "${SYSTEMS[@]}"; do
  # shellcheck disable=SC2046
  echo "0 $s mount_rss_peak $(hwm_mib $(pids_of "$s" mount)) MiB" >>"$OUT"
  [[ $s == bindfs ]] && continue
  # shellcheck disable=SC2046
  echo "0 $s daemons_rss_peak $(hwm_mib $(pids_of "$s" daemons)) MiB" >>"$OUT"
done

# ------------------------------------------------------------------ table
echo
echo "dfs benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $ROUNDS round(s), size ${BENCH_SIZE:-1g}," \
  "runtime ${BENCH_RUNTIME:-15}s, ${BENCH_NFILES:-5000} files, dfs mount args: ${DFS_MOUNT_ARGS:-(defaults)}"
python3 "$HERE/bench/table.py" "$OUT"
echo "(medians; ratios > 1 mean dfs is better; raw figures in $OUT)"
