#!/usr/bin/env bash
# fsx.sh: fsx (random reads, writes, truncates, mmap, fsync, close/reopen..., every byte
# verified against fsx's own model) against a real mount of a 3-node cluster, R = 2,
# across operation mixes and seeds. Each run has its own file; FSX_JOBS run side by side.
#
# The mixes are tests/fsx/*.toml (fsx's config files): truncate (the mix that found the
# integrity bugs), default, mmap, shards (8 MiB file, 1 MiB operations across shard
# boundaries), syscalls (posix_fallocate, copy_file_range, sendfile, fadvise).
#
# Environment (all optional):
#   FSX_SEEDS  seeds per mix (default 8)
#   FSX_OPS    operations per run (default 3000; the shards mix runs a third as many)
#   FSX_BASE   first seed; runs use BASE, BASE+1, ... (default: random, printed, so a CI
#              run covers new seeds every time and any failure can be replayed)
#   FSX_MIXES  mixes to run, space-separated (default: all of tests/fsx/)
#   FSX_JOBS   runs at once (default 3)
#   FSX_MOUNT  run against this existing mount instead of starting a cluster
# A failing run prints its replay command: fsx -f tests/fsx/MIX.toml -N OPS -S SEED FILE.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SEEDS=${FSX_SEEDS:-8} OPS=${FSX_OPS:-3000} JOBS=${FSX_JOBS:-3}
BASE=${FSX_BASE:-$((RANDOM * 32768 + RANDOM))}
MIXES=${FSX_MIXES:-$(cd "$HERE/fsx" && ls ./*.toml | sed 's|^\./||; s|\.toml$||' | tr '\n' ' ')}
command -v fsx >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v fsx >/dev/null || { echo "fsx.sh: fsx missing (cargo install fsx)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/dfs-fsx.XXXXXX)
if [[ -n ${FSX_MOUNT:-} ]]; then
  MNT=$FSX_MOUNT
else
  source "$HERE/teardown.sh"
  trap 'teardown "$DIR" $? 1' EXIT
  # Every fsx operation that reaches the coordinator (fsync, msync, truncate) replaces a
  # shard; the replaced ones are garbage after --unref-grace. Collect them quickly so
  # long runs do not need gigabytes of disk.
  export DFS_COORD_ARGS="--unref-grace 5s --maintenance-interval 1s ${DFS_COORD_ARGS:-}"
  "$HERE/cluster.sh" up "$DIR" --nodes 3 --replicas 2 >/dev/null 2>&1
  MNT=$DIR/mnt
fi
mkdir -p "$DIR/runs"
echo "fsx.sh: mixes [$MIXES], seeds $BASE..$((BASE + SEEDS - 1)), $OPS operations per run, $JOBS at once"

# one MIX SEED: one fsx run; prints "MIX SEED OPS SECONDS ok|FAIL".
one() {
  local mix=$1 seed=$2 ops=$OPS
  [[ $mix == shards ]] && ops=$((OPS / 3))
  local name=$mix-$seed out=$DIR/runs/$mix-$seed
  mkdir -p "$out"
  local t0; t0=$(date +%s.%N)
  local status=ok
  fsx -f "$HERE/fsx/$mix.toml" -N "$ops" -S "$seed" -P "$out" "$MNT/$name" >"$out/fsx.out" 2>&1 || status=FAIL
  local t1; t1=$(date +%s.%N)
  rm -f "$MNT/$name"
  echo "$mix $seed $ops $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') $status"
}
export -f one
export DIR MNT OPS HERE
start=$SECONDS
for mix in $MIXES; do
  [[ -f $HERE/fsx/$mix.toml ]] || { echo "fsx.sh: no mix $mix in $HERE/fsx" >&2; exit 2; }
  for ((s = BASE; s < BASE + SEEDS; s++)); do echo "$mix $s"; done
done | xargs -P "$JOBS" -L1 bash -c 'one "$0" "$1"' | tee "$DIR/results"

# Per mix: runs, operations, and fsx's throughput on the mount (operations per second of
# one run; every fsync, truncate and reopen is a coordinator round trip).
echo "fsx.sh: mix, runs, operations, ops/s per run (median)"
for mix in $MIXES; do
  rates=$(awk -v m="$mix" '$1 == m { printf "%.0f\n", $3 / ($4 > 0 ? $4 : 0.1) }' "$DIR/results" | sort -n)
  [[ -n $rates ]] || continue
  n=$(wc -l <<<"$rates")
  ops=$(awk -v m="$mix" '$1 == m { s += $3 } END { print s }' "$DIR/results")
  printf '  %-9s %3d runs %8d ops %7d ops/s\n' "$mix" "$n" "$ops" "$(sed -n "$(((n + 1) / 2))p" <<<"$rates")"
done
failed=$(awk '$5 != "ok"' "$DIR/results")
if [[ -n $failed ]]; then
  while read -r mix seed ops _ _; do
    echo "---- $mix seed $seed failed; replay: fsx -f tests/fsx/$mix.toml -N $ops -S $seed FILE"
    head -3 "$DIR/runs/$mix-$seed/fsx.out"; tail -15 "$DIR/runs/$mix-$seed/fsx.out"
  done <<<"$failed"
  echo "fsx.sh: FAIL ($(wc -l <<<"$failed") of $(wc -l <"$DIR/results") runs) after $((SECONDS - start)) s"
  exit 1
fi
if [[ -z ${FSX_MOUNT:-} ]] && grep -q panicked "$DIR/logs/mount.log"; then
  echo "fsx.sh: the mount panicked"; exit 1
fi
echo "fsx.sh: $(wc -l <"$DIR/results") runs, $(awk '{s += $3} END {print s}' "$DIR/results") operations verified in $((SECONDS - start)) s"
