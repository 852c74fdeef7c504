#!/usr/bin/env bash
# seqcpu.sh ROUNDS LABEL=BINDIR [LABEL=BINDIR...]
#
# A/B of the sequential path: for each round, for each LABEL in turn (interleaved, so slow
# phases of a shared machine hit every build alike), a fresh release cluster (3 nodes,
# R = 2, tests/cluster.sh with DFS_BIN_DIR=BINDIR) takes a 1 GiB sequential fio write
# (bs=1M, end_fsync=1), then, after drop_caches, a cold sequential read of it. Prints one
# line per run:
#
#   LABEL round write_MB/s write_cpu_s/GiB (mount+nodes) read_MB/s read_cpu_s/GiB (mount+nodes)
#
# CPU seconds are utime + stime of the mount, the 3 nodes and the coordinator, from
# /proc/PID/stat, over each phase; in brackets the part of the mount and the part of the
# nodes and coordinator. The cluster is torn down (--purge) after each run, so
# rounds do not fill the disk. As root (drop_caches). SEQCPU_SIZE (default 1g) changes
# the file size; SEQCPU_DIR (default /tmp/seqcpu) where the clusters live.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -ge 2 ]] || { echo "usage: $0 ROUNDS LABEL=BINDIR..." >&2; exit 2; }
ROUNDS=$1; shift
SIZE=${SEQCPU_SIZE:-1g}
WORK=${SEQCPU_DIR:-/tmp/seqcpu}
command -v fio >/dev/null || apt-get install -y fio >/dev/null
mkdir -p "$WORK"
CUR=
cleanup() { [[ -n $CUR ]] && "$HERE/../cluster.sh" down "$CUR" --purge >/dev/null 2>&1 || true; }
trap cleanup EXIT

cpu_now() { # CPU seconds used so far by the pids in the files given
  local tck sum=0 f pid; tck=$(getconf CLK_TCK)
  for f in "$@"; do
    pid=$(cat "$f"); [[ -r /proc/$pid/stat ]] || continue
    # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    sum=$((sum + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  awk -v s="$sum" -v t="$tck" 'BEGIN{print s/t}'
}
fioget() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]; print(eval(sys.argv[3]))' "$@"; }

echo "# label round write_MB/s write_cpu_s/GiB (mount+nodes) read_MB/s read_cpu_s/GiB (mount+nodes)"
for r in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    label=${spec%%=*} bin=${spec#*=}
    CUR=$WORK/$label
    DFS_BIN_DIR=$bin "$HERE/../cluster.sh" up "$CUR" --nodes 3 --replicas 2 2>/dev/null
    pids=("$CUR"/pids/*.pid) mnt=("$CUR"/pids/mount.pid)
    gib=$(awk -v b="$(numfmt --from=iec "${SIZE^^}")" 'BEGIN{print b/1073741824}')
    FIO=(fio --ioengine=psync --numjobs=1 --fallocate=none --randrepeat=1 --output-format=json
      --filename="$CUR/mnt/big" --size="$SIZE" --bs=1M)
    c0=$(cpu_now "${pids[@]}") m0=$(cpu_now "${mnt[@]}"); t0=$(date +%s.%N)
    "${FIO[@]}" --name=w --rw=write --end_fsync=1 >"$WORK/w.json"
    t1=$(date +%s.%N); c1=$(cpu_now "${pids[@]}") m1=$(cpu_now "${mnt[@]}")
    sync; echo 3 >/proc/sys/vm/drop_caches
    c2=$(cpu_now "${pids[@]}") m2=$(cpu_now "${mnt[@]}")
    "${FIO[@]}" --name=r --rw=read >"$WORK/r.json"
    c3=$(cpu_now "${pids[@]}") m3=$(cpu_now "${mnt[@]}")
    # Write rate over the wall clock including the final fsync (as tests/bench does).
    wbytes=$(fioget "$WORK/w.json" write 'j["io_bytes"]')
    rrate=$(fioget "$WORK/r.json" read 'j["bw_bytes"]/1e6')
    awk -v l="$label" -v r="$r" -v wb="$wbytes" -v t0="$t0" -v t1="$t1" -v g="$gib" \
      -v c0="$c0" -v c1="$c1" -v c2="$c2" -v c3="$c3" -v rr="$rrate" \
      -v m0="$m0" -v m1="$m1" -v m2="$m2" -v m3="$m3" \
      'BEGIN{w=(c1-c0)/g; wm=(m1-m0)/g; rc=(c3-c2)/g; rm=(m3-m2)/g
             printf "%s %d %.0f %.2f (%.2f+%.2f) %.0f %.2f (%.2f+%.2f)\n", l, r, wb/(t1-t0)/1e6, w, wm, w-wm, rr, rc, rm, rc-rm}'
    "$HERE/../cluster.sh" down "$CUR" --purge >/dev/null 2>&1
    CUR=
  done
done
