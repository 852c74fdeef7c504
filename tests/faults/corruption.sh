#!/usr/bin/env bash
# corruption.sh: a byte flipped in a stored shard file is (1) detected by a reader, which
# still gets correct bytes from the other holder, and (2) found by the background scrub;
# either way the corrupt copy is dropped and re-replicated from a good one.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DFS_COORD_ARGS="--repair-grace 2s --maintenance-interval 500ms"
export DFS_NODE_ARGS="--scrub-rate 0"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
python3 "$FAULTS/timed_io.py" write "$M/f" 16 >/dev/null
want=$(expected_sha 16)
copies() { echo $(( $(node_shards 1) + $(node_shards 2) + $(node_shards 3) )); }
[[ $(copies) == 32 ]] || fail "expected 32 copies, have $(copies)"

victim=$(find "$DIR/node-1/shards" -type f | head -1)
say "flipping a byte of node-1's copy of $(basename "$victim" | cut -c1-12)…"
flip_byte "$victim"
drop_caches
r=$(python3 "$FAULTS/timed_io.py" read "$M/f" 16)
[[ $(json ok <<<"$r") == True && $(json sha256 <<<"$r") == "$want" ]] || fail "reader got wrong bytes or an error: $r"
say "the reader got correct bytes (worst read() $(json worst_call_s <<<"$r") s)"
gone() { [[ ! -e $victim ]]; }
until_true 10 gone || fail "the corrupt copy is still on node-1"
grep -q "corrupt" "$DIR/logs/node-1.log" || fail "node-1 did not log the corruption"
grep -qi "corrupt" "$DIR/logs/coord.log" || fail "the coordinator did not log the report"
whole() { [[ $(copies) == 32 ]]; }
until_true 60 whole || fail "corrupt copy not re-replicated ($(copies) copies)"
say "corrupt copy dropped, reported and re-replicated: $(copies) copies"

say "scrubber: flipping a byte of node-2's copy while it is stopped, then restarting it with a fast scrub"
n2=$(cat "$DIR/pids/node-2.pid")
kill -TERM "$n2"
stopped() { ! kill -0 "$n2" 2>/dev/null; }
until_true 15 stopped || fail "node-2 did not stop"
victim=$(find "$DIR/node-2/shards" -type f | head -1)
flip_byte "$victim"
DFS_NODE_ARGS="--scrub-rate 1G --scrub-interval 1s" "$CLUSTER" up "$DIR" >/dev/null
until_true 30 gone || fail "the scrubber did not remove the corrupt copy"
grep -q "scrub pass complete" "$DIR/logs/node-2.log" || fail "no scrub pass logged"
say "node-2: $(grep "scrub pass complete" "$DIR/logs/node-2.log" | head -1 | sed 's/.*INFO //' | cut -c1-160)"
until_true 60 whole || fail "scrubbed copy not re-replicated ($(copies) copies)"
[[ $(python3 "$FAULTS/timed_io.py" read "$M/f" 16 | json sha256) == "$want" ]] || fail "final read"
f=$(fsck_json) || fail "fsck reports data at risk: $f"
say "fsck: $(py '{k: (len(v) if isinstance(v, list) else v) for k, v in j.items()}' <<<"$f")"
say "PASS"
