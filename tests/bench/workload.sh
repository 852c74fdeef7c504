#!/usr/bin/env bash
# workload.sh MOUNT LABEL: the benchmark workload of the performance issue, run once on one
# mounted filesystem. stdout: one line per figure, "LABEL figure value unit"; progress on
# stderr. tests/bench.sh runs it on dfs, MooseFS and bindfs in turn, round after round.
#
# The figure definitions are the ones of the shared reference workload (fsbench.sh), so
# our numbers compare with the MooseFS numbers quoted in the issue:
#   fio_overhead      s        wall clock of a no-op fio job (fio start/exit), subtracted below
#   seq_write_1M      MB/s     fio, 1 GiB new file, bs=1M, end_fsync=1; bytes / wall clock:
#                              the final fsync IS counted
#   seq_read_1M       MB/s     read it back after drop_caches (cold)
#   rand_read_4k      IOPS     4 KiB random reads, RUNTIME s, after drop_caches
#   rand_write_4k     IOPS     4 KiB random overwrites for RUNTIME s + end_fsync (counted)
#   small_create      files/s  NFILES x 4 KiB in one directory (open/write/close)
#   small_ls_l        s        `ls -l` of that directory after drop_caches
#   small_stat        files/s  lstat() of all after drop_caches
#   small_read        files/s  open/read/close all after drop_caches
#   small_delete      files/s  unlink all
#   tree_extract      s        tar -x of a source tree (default /usr/include) into the mount
#   tree_extract_sync s        the same plus `sync`
#   tree_cp_r         s        cp -r of that tree to a sibling directory, plus `sync`
#   tree_rm_r         s        rm -rf of both trees
#   cpu_s_per_gib     s/GiB    CPU seconds (user+system) of the processes in BENCH_PIDS
#                              (the mount and its daemons) over the sequential write and
#                              read, divided by the GiB moved (2 x SIZE)
# Knobs: BENCH_SIZE (1g) BENCH_RUNTIME (15) BENCH_NFILES (5000) BENCH_TREE_SRC
# (/usr/include) BENCH_CACHE (/tmp/dfs-bench-cache, on local disk) BENCH_PIDS.
set -euo pipefail

MNT=${1:?usage: workload.sh MOUNT LABEL}
LABEL=${2:?usage: workload.sh MOUNT LABEL}
SIZE=${BENCH_SIZE:-1g}
RT=${BENCH_RUNTIME:-15}
NFILES=${BENCH_NFILES:-5000}
TREE_SRC=${BENCH_TREE_SRC:-/usr/include}
CACHE=${BENCH_CACHE:-/tmp/dfs-bench-cache}
PIDS=${BENCH_PIDS:-}
PY=python3

D=$MNT/bench.$$.$RANDOM
mkdir -p "$D" "$CACHE"
cleanup() { rm -rf "$D" 2>/dev/null || true; }
trap cleanup EXIT

say() { printf '[workload %s %s] %s\n' "$LABEL" "$(date +%T)" "$*" >&2; }
emit() { printf '%s %s %s %s\n' "$LABEL" "$1" "$2" "$3"; }
now() { date +%s.%N; }
# Cold means cold: the kernel's page, dentry and inode caches are dropped (root only).
dropc() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
fioget() { "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]; print(eval(sys.argv[3]))' "$@"; }
fmt() { awk -v v="$1" -v p="${2:-1}" 'BEGIN{printf "%.*f", p, v}'; }
# CPU seconds (utime + stime) used so far by the processes in BENCH_PIDS.
cpu_now() {
  local tck sum=0 pid; tck=$(getconf CLK_TCK)
  for pid in $PIDS; do
    # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    [[ -r /proc/$pid/stat ]] || continue
    sum=$((sum + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  awk -v s="$sum" -v t="$tck" 'BEGIN{print s/t}'
}
size_bytes() { numfmt --from=iec "${SIZE^^}"; }

# --randrepeat=0: fresh random data (and offsets) every run. With a fixed seed, every round
# wrote the same bytes, and dfs (content-addressed: equal shards are stored once) found
# round 1's shards still on its nodes in rounds 2 and 3 and skipped their upload.
FIO=(fio --ioengine=psync --numjobs=1 --fallocate=none --randrepeat=0 --output-format=json
  --filename="$D/big" --size="$SIZE")

# fio takes ~0.3 s to start and exit even for a 1 ms job; measured here so that the
# wall-clock (fsync-inclusive) figures do not carry it.
J=$CACHE/fio-$LABEL-nop.json
ovh=9
for _ in 1 2 3; do
  t0=$(now); "${FIO[@]/#--size=*/--size=1m}" --name=nop --rw=write --bs=1M >"$J"; t1=$(now)
  ovh=$(awk -v a="$t0" -v b="$t1" -v o="$ovh" -v r="$(fioget "$J" write 'j["runtime"]')" 'BEGIN{x=b-a-r/1000; print (x<o?x:o)}')
done
rm -f "$D/big"
emit fio_overhead "$(fmt "$ovh" 3)" s
wallrate() { awk -v n="$1" -v a="$2" -v b="$3" -v o="$ovh" 'BEGIN{t=b-a-o; if(t<=0)t=1e-9; print n/t}'; }

say "seq write $SIZE bs=1M end_fsync"
c0=$(cpu_now)
J=$CACHE/fio-$LABEL-sw.json
t0=$(now); "${FIO[@]}" --name=seqwrite --rw=write --bs=1M --end_fsync=1 >"$J"; t1=$(now)
emit seq_write_1M "$(fmt "$(awk -v x="$(wallrate "$(fioget "$J" write 'j["io_bytes"]')" "$t0" "$t1")" 'BEGIN{print x/1e6}')")" MB/s

dropc
say "seq read (cold)"
J=$CACHE/fio-$LABEL-sr.json
"${FIO[@]}" --name=seqread --rw=read --bs=1M >"$J"
emit seq_read_1M "$(fmt "$(fioget "$J" read 'j["bw_bytes"]/1e6')")" MB/s
c1=$(cpu_now)
if [[ -n $PIDS ]]; then
  emit cpu_s_per_gib "$(awk -v a="$c0" -v b="$c1" -v n="$(size_bytes)" 'BEGIN{printf "%.2f", (b-a)/(2*n/2^30)}')" s/GiB
fi

dropc
say "rand read 4k ${RT}s (cold start)"
J=$CACHE/fio-$LABEL-rr.json
"${FIO[@]}" --name=randread --rw=randread --bs=4k --time_based --runtime="$RT" >"$J"
emit rand_read_4k "$(fmt "$(fioget "$J" read 'j["iops"]')" 0)" IOPS

say "rand write 4k ${RT}s end_fsync"
J=$CACHE/fio-$LABEL-rw.json
t0=$(now)
"${FIO[@]}" --name=randwrite --rw=randwrite --bs=4k --time_based --runtime="$RT" --end_fsync=1 >"$J"
t1=$(now)
emit rand_write_4k "$(fmt "$(wallrate "$(fioget "$J" write 'j["total_ios"]')" "$t0" "$t1")" 0)" IOPS
rm -f "$D/big"

S=$D/small
mkdir -p "$S"
small() { # PHASE -> operations per second
  "$PY" - "$S" "$NFILES" "$1" <<'PYEOF'
import os, sys, time
d, n, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = [os.path.join(d, "f%05d" % i) for i in range(n)]
buf = bytes(range(256)) * 16  # 4096 bytes
t = time.perf_counter()
if phase == "create":
    for p in names:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, buf); os.close(fd)
elif phase == "stat":
    for p in names: os.lstat(p)
elif phase == "read":
    for p in names:
        fd = os.open(p, os.O_RDONLY)
        assert len(os.read(fd, 8192)) == 4096
        os.close(fd)
elif phase == "delete":
    for p in names: os.unlink(p)
print(n / (time.perf_counter() - t))
PYEOF
}
say "small files: create $NFILES x 4 KiB"
emit small_create "$(fmt "$(small create)" 0)" files/s
dropc
say "small files: ls -l (cold)"
t0=$(now); n=$(ls -l "$S" | wc -l); t1=$(now)
((n >= NFILES)) || { echo "ls -l saw only $n entries" >&2; exit 1; }
emit small_ls_l "$(fmt "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 3)" s
dropc
say "small files: stat (cold)"
emit small_stat "$(fmt "$(small stat)" 0)" files/s
dropc
say "small files: read (cold)"
emit small_read "$(fmt "$(small read)" 0)" files/s
say "small files: delete"
emit small_delete "$(fmt "$(small delete)" 0)" files/s
rmdir "$S"

# One tar per source tree: a run with another BENCH_TREE_SRC must not reuse this one.
TAR=$CACHE/tree-$(printf %s "$(realpath -m "$TREE_SRC")" | sha256sum | cut -c1-12).tar
if [[ ! -s $TAR ]]; then
  say "building $TAR from $TREE_SRC (once; reused by later runs)"
  tar -C "$(dirname "$TREE_SRC")" -cf "$TAR.tmp" "$(basename "$TREE_SRC")" && mv "$TAR.tmp" "$TAR"
fi
mkdir -p "$D/tree" "$D/tree2"
dropc
cat "$TAR" >/dev/null # the tarball warm in the page cache: measure the target FS only
say "tree: tar -x"
t0=$(now); tar -xf "$TAR" -C "$D/tree"; t1=$(now); sync; t2=$(now)
emit tree_extract "$(fmt "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 2)" s
emit tree_extract_sync "$(fmt "$(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}')" 2)" s
say "tree: cp -r"
t0=$(now); cp -r "$D/tree/." "$D/tree2/"; sync; t1=$(now)
emit tree_cp_r "$(fmt "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 2)" s
say "tree: rm -rf"
t0=$(now); rm -rf "$D/tree" "$D/tree2"; t1=$(now)
emit tree_rm_r "$(fmt "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 2)" s
