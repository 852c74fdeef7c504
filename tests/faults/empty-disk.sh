#!/usr/bin/env bash
# empty-disk.sh: a node restarted with its data (node-2) rejoins with its shards; a node
# that returns with an empty disk (node-1: disk replaced) is a new, empty node, and repair
# restores every shard's two copies, refilling it (two nodes, R = 2: the new node is the
# only place the second copies can go).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DFS_COORD_ARGS="--repair-grace 2s --maintenance-interval 500ms"
"$CLUSTER" up "$DIR" --nodes 2 --replicas 2 >/dev/null
python3 "$FAULTS/timed_io.py" write "$M/f" 64 >/dev/null
want=$(expected_sha 64)
before2=$(node_shards 2)
say "restarting node-2 with its data"
kill -TERM "$(cat "$DIR/pids/node-2.pid")"; n2=$(cat "$DIR/pids/node-2.pid")
stopped() { ! kill -0 "$n2" 2>/dev/null; }
until_true 15 stopped || fail "node-2 did not stop"
"$CLUSTER" up "$DIR" >/dev/null
[[ $(node_shards 2) == "$before2" ]] || fail "node-2 lost shards across a restart"
healthy() { fsck_json >/dev/null; }
until_true 30 healthy || fail "fsck not clean after node-2 rejoined: $(fsck_json)"
say "node-2 rejoined with its $before2 shards; fsck clean"
say "node-1 returns with an empty disk"
n1=$(cat "$DIR/pids/node-1.pid"); kill -KILL "$n1"
rm -rf "$DIR/node-1"
"$CLUSTER" up "$DIR" >/dev/null
# fsck alone would pass at once: the old node-1 still counts as a holder until it is
# marked down and its grace expires. Count the copies that really exist on disk.
copies() { echo $(( $(node_shards 1) + $(node_shards 2) )); }
refilled() { [[ $(copies) -ge 128 ]] && healthy; }
until_true 120 refilled || fail "repair did not restore two copies: $(copies) on disk, $(fsck_json)"
say "64 shards, $(copies) copies on disk again; node-1 (new identity) holds $(node_shards 1) of them"
[[ $(node_shards 1) == 64 ]] || fail "the empty node was not refilled ($(node_shards 1) of 64)"
[[ $(python3 "$FAULTS/timed_io.py" read "$M/f" 64 | json sha256) == "$want" ]] || fail "content after refill"
say "PASS"
