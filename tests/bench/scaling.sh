#!/usr/bin/env bash
# scaling.sh: how dfs's costs grow with the work (the "Scaling" part of the performance
# issue). Prints one table per question; not part of CI (minutes long, machine-dependent).
#
#   1. Namespace size: per-operation time of create, stat and readdir through the mount
#      with 10 k, 100 k and 1 M files in the namespace (SCALE_SIZES). The files are added
#      between measurements by dfs-coord's `populate` example, which runs the coordinator's
#      own request handler in-process (the cluster is stopped meanwhile): creating a
#      million files through a mount would take an hour. Each measurement creates
#      SCALE_OPS new files in a fresh directory, lstat()s them and lists the directory
#      (both after drop_caches), and lstat()s SCALE_OPS files picked at random among the
#      populated ones. Flat rows = cost independent of namespace size.
#   2. `ls -l` of one directory of 100 k entries (SCALE_BIGDIR), cold, on dfs and, unless
#      SCALE_MOOSEFS=0, on MooseFS (tests/bench/moosefs.sh; its 100 k files are created
#      through its mount by 8 threads).
#   3. Throughput with 1, 3 and 5 nodes (R = 2; R = 1 for one node): fio sequential write
#      of SCALE_SIZE with end_fsync, then cold read.
#   4. Aggregate throughput of 4 concurrent writers (fio numjobs=4, SCALE_SIZE/4 each, own
#      files) on 3 nodes, against 1 writer of SCALE_SIZE in the same cluster.
#
# Knobs: SCALE_SIZES ("10000 100000 1000000"), SCALE_OPS (1000), SCALE_BIGDIR (100000),
# SCALE_SIZE (1g), SCALE_MOOSEFS (1), SCALE_PARTS ("1 2 3 4"), SCALE_WORK (/tmp/dfs-scaling).
# As root (drop_caches, MooseFS). Release build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZES=${SCALE_SIZES:-10000 100000 1000000}
OPS=${SCALE_OPS:-1000}
BIGDIR=${SCALE_BIGDIR:-100000}
SIZE=${SCALE_SIZE:-1g}
MOOSEFS=${SCALE_MOOSEFS:-1}
PARTS=${SCALE_PARTS:-1 2 3 4}
WORK=${SCALE_WORK:-/tmp/dfs-scaling}
export DFS_PROFILE=release
POPULATE=$ROOT/target/release/examples/populate

say() { printf '[scaling %s] %s\n' "$(date +%T)" "$*" >&2; }
dropc() { sync; echo 3 >/proc/sys/vm/drop_caches; }
[[ $(id -u) == 0 ]] || { echo "scaling.sh: run as root (drop_caches, MooseFS)" >&2; exit 2; }
command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null

teardown() {
  for d in "$WORK"/dfs-*; do
    [[ -d $d ]] && "$HERE/cluster.sh" down "$d" --purge >/dev/null 2>&1
  done
  [[ -d $WORK/moosefs ]] && "$HERE/bench/moosefs.sh" down "$WORK/moosefs" >/dev/null 2>&1
  true
}
trap teardown EXIT
trap 'exit 130' INT TERM
teardown
mkdir -p "$WORK"
say "building release binaries and the populate example"
(cd "$ROOT" && cargo build -q --release --bins && cargo build -q --release -p dfs-coord --example populate)

# populate DIR TOP FILES PER_DIR: adds FILES empty files to a stopped cluster's namespace.
populate() {
  "$HERE/cluster.sh" down "$1" >/dev/null
  "$POPULATE" "$1/coord" "$2" "$3" "$4" >&2
  "$HERE/cluster.sh" up "$1" >/dev/null
}

# probe MOUNT POPULATED_TOP: the per-operation times of part 1, as "create stat readdir
# stat_random" in microseconds.
probe() {
  python3 - "$1" "$2" "$OPS" <<'PY'
import os, random, sys, time
mnt, top, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def drop():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
d = os.path.join(mnt, "probe.%d" % time.time_ns())
os.mkdir(d)
names = [os.path.join(d, "p%06d" % i) for i in range(n)]
t = time.perf_counter()
for p in names:
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
create = (time.perf_counter() - t) / n
drop()
t = time.perf_counter()
for p in names:
    os.lstat(p)
stat = (time.perf_counter() - t) / n
drop()
t = time.perf_counter()
count = len(os.listdir(d))
readdir = (time.perf_counter() - t) / max(count, 1)
# Random files among the populated ones: directories d000000... of 1000 files f0000000...
# (the populate example's naming), so a lookup walks a big namespace, not a fresh corner.
tops = [os.path.join(mnt, t) for t in top.split(",")]
dirs = []
for tp in tops:
    dirs += [os.path.join(tp, x) for x in os.listdir(tp)]
rng = random.Random(7)
picks = []
for _ in range(n):
    dd = rng.choice(dirs)
    picks.append(os.path.join(dd, "f%07d" % rng.randrange(1000)))
drop()
t = time.perf_counter()
found = 0
for p in picks:
    try:
        os.lstat(p)
        found += 1
    except FileNotFoundError:
        pass
stat_random = (time.perf_counter() - t) / n
if found < n // 2:
    sys.exit("probe: only %d of %d random picks exist: populate layout changed?" % (found, n))
print("%.0f %.0f %.1f %.0f" % (create * 1e6, stat * 1e6, readdir * 1e6, stat_random * 1e6))
PY
}

fio_rate() { # MOUNT NAME RW [extra fio args]: prints MB/s (bytes / wall clock incl. fsync)
  local mnt=$1 name=$2 rw=$3; shift 3
  local j t0 t1
  j=$(mktemp)
  t0=$(date +%s.%N)
  fio --ioengine=psync --fallocate=none --output-format=json --directory="$mnt" \
    --name="$name" --rw="$rw" --bs=1M "$@" >"$j"
  t1=$(date +%s.%N)
  python3 - "$j" "$rw" "$t0" "$t1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
kind = "write" if "write" in sys.argv[2] else "read"
b = sum(job[kind]["io_bytes"] for job in j["jobs"])
print("%.0f" % (b / (float(sys.argv[4]) - float(sys.argv[3])) / 1e6))
PY
  rm -f "$j"
}

if [[ " $PARTS " == *" 1 "* ]]; then
  say "part 1: namespace size"
  D=$WORK/dfs-ns
  "$HERE/cluster.sh" up "$D" >/dev/null
  have=0 tops=() rows=()
  for n in $SIZES; do
    if ((n > have)); then
      say "populating to $n files"
      populate "$D" "pop$n" $((n - have)) 1000
      tops+=("pop$n")
      have=$n
    fi
    say "probing with $have files in the namespace"
    r=$(probe "$D/mnt" "$(IFS=,; echo "${tops[*]}")")
    rows+=("$have $r")
  done
  printf '\n## 1. per-operation time through the mount vs namespace size (µs; %s ops each)\n\n' "$OPS"
  printf '| files in namespace | create | stat (cold) | readdir per entry (cold) | stat of a random populated file (cold) |\n|---|---|---|---|---|\n'
  for r in "${rows[@]}"; do set -- $r; printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5"; done
  "$HERE/cluster.sh" down "$D" --purge >/dev/null
fi

ls_l() { # DIR: seconds of a cold `ls -l`
  dropc
  local t0 t1
  t0=$(date +%s.%N); ls -l "$1" | wc -l >/dev/null; t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}'
}

if [[ " $PARTS " == *" 2 "* ]]; then
  say "part 2: ls -l of one directory of $BIGDIR entries"
  D=$WORK/dfs-big
  "$HERE/cluster.sh" up "$D" >/dev/null
  populate "$D" big "$BIGDIR" "$BIGDIR"
  dfs_ls=$(ls_l "$D/mnt/big/d000000")
  got=$(ls "$D/mnt/big/d000000" | wc -l)
  ((got == BIGDIR)) || { echo "scaling.sh: dfs listed $got of $BIGDIR entries" >&2; exit 1; }
  "$HERE/cluster.sh" down "$D" --purge >/dev/null
  mfs_ls=-
  if [[ $MOOSEFS == 1 ]]; then
    "$HERE/bench/moosefs.sh" up "$WORK/moosefs" >/dev/null
    say "creating $BIGDIR files on MooseFS (8 threads)"
    python3 - "$WORK/moosefs/mnt/big" "$BIGDIR" <<'PY'
import os, sys
from concurrent.futures import ThreadPoolExecutor
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
def mk(lo):
    for i in range(lo, n, 8):
        os.close(os.open(os.path.join(d, "f%07d" % i), os.O_WRONLY | os.O_CREAT, 0o644))
with ThreadPoolExecutor(8) as ex:
    list(ex.map(mk, range(8)))
PY
    mfs_ls=$(ls_l "$WORK/moosefs/mnt/big")
    "$HERE/bench/moosefs.sh" down "$WORK/moosefs" >/dev/null
  fi
  printf '\n## 2. cold `ls -l` of one directory of %s entries (s)\n\n| dfs | MooseFS |\n|---|---|\n| %s | %s |\n' "$BIGDIR" "$dfs_ls" "$mfs_ls"
fi

if [[ " $PARTS " == *" 3 "* ]]; then
  say "part 3: throughput with 1, 3 and 5 nodes"
  rows=()
  for nodes in 1 3 5; do
    r=2; ((nodes == 1)) && r=1
    D=$WORK/dfs-n$nodes
    "$HERE/cluster.sh" up "$D" --nodes "$nodes" --replicas "$r" >/dev/null
    w=$(fio_rate "$D/mnt" seq write --size="$SIZE" --end_fsync=1)
    dropc
    rd=$(fio_rate "$D/mnt" seq read --size="$SIZE")
    rows+=("$nodes $r $w $rd")
    "$HERE/cluster.sh" down "$D" --purge >/dev/null
  done
  printf '\n## 3. sequential throughput vs nodes (%s, MB/s)\n\n| nodes | R | write | read (cold) |\n|---|---|---|---|\n' "$SIZE"
  for r in "${rows[@]}"; do set -- $r; printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; done
fi

if [[ " $PARTS " == *" 4 "* ]]; then
  say "part 4: 1 writer vs 4 concurrent writers"
  D=$WORK/dfs-w4
  "$HERE/cluster.sh" up "$D" >/dev/null
  quarter=$(( $(numfmt --from=iec "${SIZE^^}") / 4 ))
  one=$(fio_rate "$D/mnt" one write --size="$SIZE" --end_fsync=1)
  rm -f "$D/mnt"/one*
  four=$(fio_rate "$D/mnt" four write --size="$quarter" --numjobs=4 --end_fsync=1)
  "$HERE/cluster.sh" down "$D" --purge >/dev/null
  printf '\n## 4. aggregate sequential write, 3 nodes, R = 2 (MB/s, %s in all)\n\n| 1 writer | 4 writers | ratio |\n|---|---|---|\n| %s | %s | %s |\n' \
    "$SIZE" "$one" "$four" "$(awk -v a="$one" -v b="$four" 'BEGIN{printf "%.2f", b/a}')"
fi
