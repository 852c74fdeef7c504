#!/usr/bin/env bash
# fsx-kill.sh [NUMOPS]: fsx against the mount (3 nodes, R = 2) while node-2 is killed
# (SIGKILL) a few seconds in and restarted a few seconds later. Two fsx runs side by side,
# the default mix and the truncate mix (tests/fsx/), NUMOPS operations each (default
# 30000), seeds random and printed. Every operation's bytes are verified by fsx; a single
# wrong byte or error fails the run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${1:-30000}
SEED=${FSX_BASE:-$RANDOM}
# Replaced shards are garbage after --unref-grace: collect them quickly (see fsx.sh).
export DFS_COORD_ARGS="--unref-grace 5s --maintenance-interval 1s"
command -v fsx >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v fsx >/dev/null || fail "fsx missing (cargo install fsx)"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
say "fsx: default and truncate mixes, $N operations each, seed $SEED"
for mix in default truncate; do
  fsx -f "$TESTS/fsx/$mix.toml" -N "$N" -S "$SEED" -P "$DIR" "$M/fsx-$mix" >"$DIR/fsx-$mix.out" 2>&1 &
  eval "pid_$mix=$!"
done
sleep 5
kill -0 "$pid_default" 2>/dev/null || fail "fsx ended before the fault: $(head -3 "$DIR/fsx-default.out")"
say "killing node-2 under fsx"
kill -KILL "$(cat "$DIR/pids/node-2.pid")"
sleep 8
say "restarting node-2"
"$CLUSTER" up "$DIR" >/dev/null
for mix in default truncate; do
  pid=pid_$mix
  if ! wait "${!pid}"; then
    head -3 "$DIR/fsx-$mix.out"; tail -15 "$DIR/fsx-$mix.out"
    fail "fsx ($mix mix, seed $SEED) found an error; replay: fsx -f tests/fsx/$mix.toml -N $N -S $SEED FILE"
  fi
done
! grep -q panicked "$DIR/logs/mount.log" || fail "the mount panicked"
say "2 x $N operations verified while a node died and came back (seed $SEED)"
say "PASS"
