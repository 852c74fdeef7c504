#!/usr/bin/env bash
# coord-restart.sh: the coordinator is killed (SIGKILL) and started again, as an upgrade or
# `systemctl restart dfs-coord` does, while the mount is in use. Nothing may fail:
#  1. A 100 MiB file committed before the kill reads back exactly, with no EIO, from the
#     moment `cluster.sh up` returns (kernel page cache dropped first, three rounds).
#  2. A stat and an fsync'd write started while the coordinator is down wait for it and
#     succeed once it is back.
#  3. fsx (the truncate mix and the default mix, side by side) runs through two restarts
#     with every byte verified.
# Figures (in $DIR/figures and printed): how long `up` took, how long after the new
# coordinator listened the nodes had registered again, the read of the 100 MiB file.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DFS_COORD_ARGS="--unref-grace 5s --maintenance-interval 1s"
command -v fsx >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v fsx >/dev/null || fail "fsx missing (cargo install fsx)"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
# Seconds from the coordinator's last "listening" line to the last node's registration
# after it (both from the logs' timestamps).
register_lag() {
  python3 - "$DIR" <<'PY'
import glob, re, sys, datetime
def ts(line):
    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
d = sys.argv[1]
listen = [ts(l) for l in open(f"{d}/logs/coord.log") if "coordinator listening" in l][-1]
last = 0.0
for f in glob.glob(f"{d}/logs/node-*.log"):
    regs = [ts(l) for l in open(f) if "registered with the coordinator" in l and ts(l) >= listen]
    if not regs:
        print("never"); sys.exit()
    last = max(last, regs[0])
print(f"{last - listen:.2f}")
PY
}

head -c $((100 << 20)) /dev/urandom >"$DIR/big.src"
want=$(sha256sum <"$DIR/big.src" | cut -d' ' -f1)
cp "$DIR/big.src" "$M/big"
for round in 1 2 3; do
  drop_caches
  kill -KILL "$(cat "$DIR/pids/coord.pid")"
  t0=$(now)
  "$CLUSTER" up "$DIR" >/dev/null
  t1=$(now)
  got=$(sha256sum <"$M/big" 2>"$DIR/read.err" | cut -d' ' -f1) || true
  t2=$(now)
  [[ $got == "$want" ]] || fail "round $round: the 100 MiB file read back wrong ($(cat "$DIR/read.err"))"
  lag=$(register_lag)
  say "round $round: up took $(secs "$t0" "$t1") s, nodes registered ${lag} s after the coordinator listened, read 100 MiB in $(secs "$t1" "$t2") s, bytes right"
  echo "round$round up_s $(secs "$t0" "$t1") register_s $lag read_s $(secs "$t1" "$t2")" >>"$DIR/figures"
  [[ $lag != never ]] && lt "$lag" 2 || fail "nodes took ${lag} s to register again (want < 2 s)"
done

say "stat and an fsync'd write started while the coordinator is down"
kill -KILL "$(cat "$DIR/pids/coord.pid")"
sleep 0.3
t0=$(now)
stat -c %s "$M/big" >"$DIR/stat.out" 2>&1 &
stat_pid=$!
dd if="$DIR/big.src" of="$M/during" bs=1M count=16 conv=fsync status=none 2>"$DIR/dd.err" &
dd_pid=$!
sleep 2
"$CLUSTER" up "$DIR" >/dev/null
wait "$stat_pid" && [[ $(cat "$DIR/stat.out") == $((100 << 20)) ]] || fail "stat during the outage: $(cat "$DIR/stat.out")"
wait "$dd_pid" || fail "write during the outage: $(cat "$DIR/dd.err")"
cmp <(head -c $((16 << 20)) "$DIR/big.src") "$M/during" || fail "the file written during the outage differs"
say "  both waited and succeeded ($(secs "$t0" "$(now)") s, 2 s of it the outage)"

say "fsx (truncate and default mixes) through two coordinator restarts"
for mix in truncate default; do
  fsx -f "$TESTS/fsx/$mix.toml" -N 4000 -S 11 -P "$DIR" "$M/fsx-$mix" >"$DIR/fsx-$mix.out" 2>&1 &
  eval "pid_$mix=$!"
done
for k in 1 2; do
  sleep 4
  kill -0 "$pid_truncate" 2>/dev/null || kill -0 "$pid_default" 2>/dev/null || fail "fsx ended before restart $k"
  kill -KILL "$(cat "$DIR/pids/coord.pid")"
  sleep 0.5
  "$CLUSTER" up "$DIR" >/dev/null
  say "  restart $k done"
done
for mix in truncate default; do
  pid=pid_$mix
  if ! wait "${!pid}"; then head -3 "$DIR/fsx-$mix.out"; tail -15 "$DIR/fsx-$mix.out"; fail "fsx ($mix mix) found an error"; fi
done
! grep -q panicked "$DIR/logs/mount.log" || fail "the mount panicked"
say "fsx verified 2 x 4000 operations through two restarts"
say "PASS"
