#!/usr/bin/env bash
# fsx-kill.sh [NUMOPS]: fsx against the mount (3 nodes, R = 2) while node-2 is killed
# (SIGKILL) a few seconds in and restarted a few seconds later. Every operation's bytes are
# verified by fsx; a single wrong byte or error fails the run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${1:-100000}
# Replaced shards are garbage after --unref-grace: collect them quickly (see fsx.sh).
export DFS_COORD_ARGS="--unref-grace 5s --maintenance-interval 1s"
command -v fsx >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v fsx >/dev/null || fail "fsx missing (cargo install fsx)"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
fsx -N "$N" -S 7 -P "$DIR" "$M/fsx.dat" >"$DIR/fsx.out" 2>&1 &
fsx_pid=$!
sleep 5
kill -0 $fsx_pid 2>/dev/null || fail "fsx ended before the fault: $(head -3 "$DIR/fsx.out")"
say "killing node-2 under fsx"
kill -KILL "$(cat "$DIR/pids/node-2.pid")"
sleep 8
say "restarting node-2"
"$CLUSTER" up "$DIR" >/dev/null
if ! wait $fsx_pid; then head -3 "$DIR/fsx.out"; tail -15 "$DIR/fsx.out"; fail "fsx found an error"; fi
! grep -q panicked "$DIR/logs/mount.log" || fail "the mount panicked"
say "$N operations verified while a node died and came back: $(tail -1 "$DIR/fsx.out")"
say "PASS"
