#!/usr/bin/env bash
# repair.sh [MIB]: a node holding at least 1 GiB is lost (3 nodes, R = 2, ~1.5 GiB of
# files); after the grace period its shards are copied node to node from the surviving
# holders until every shard has 2 copies again, while a reader keeps going. Measures the
# repair throughput. Then the node comes back and the surplus copies are removed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MIB=${1:-1800}
export DFS_COORD_ARGS="--repair-grace 2s --gc-grace 30s --unref-grace 30s --maintenance-interval 500ms --repair-rate 512M"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
python3 "$FAULTS/timed_io.py" write "$M/big" "$MIB" >/dev/null
want=$(expected_sha "$MIB")
held=$(du -sm "$DIR/node-1/shards" | cut -f1)
say "node-1 holds $held MiB of shards; killing it"
kill -KILL "$(cat "$DIR/pids/node-1.pid")"
t0=$(date +%s.%N)
under() { status_json | py 'j["under_replicated"]'; }
some_under() { [[ $(under) -gt 0 ]]; }
none_under() { [[ $(under) == 0 ]]; }
until_true 30 some_under || fail "no shard became under-replicated"
say "repair under way: $(status_json | py 'j["repair"]')"
drop_caches
r=$(python3 "$FAULTS/timed_io.py" read "$M/big" "$MIB")
[[ $(json sha256 <<<"$r") == "$want" ]] || fail "read during repair: $r"
say "a full read during the repair: worst read() $(json worst_call_s <<<"$r") s"
until_true 600 none_under || fail "repair did not finish: $(status_json | py 'j["repair"]')"
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
say "every shard has 2 copies again $secs s after the kill (including the 2 s grace and detection)"
rate=$(awk -v m="$held" -v s="$secs" 'BEGIN{printf "%.0f", m*1.048576/s}')
echo "repair_mib $held repair_s $secs repair_MBps $rate" | tee "$DIR/figures"
fsck_json >/dev/null || fail "fsck reports data at risk after repair"
say "node-1 comes back: surplus copies must go"
"$CLUSTER" up "$DIR" >/dev/null
total() { echo $(( $(node_shards 1) + $(node_shards 2) + $(node_shards 3) )); }
shards=$(status_json | py 'j["shards"]')
no_surplus() { [[ $(total) -le $((2 * shards)) ]]; }
until_true 120 no_surplus || fail "surplus copies not removed: $(total) copies of $shards shards"
say "$(total) copies of $shards shards"
[[ $(python3 "$FAULTS/timed_io.py" read "$M/big" "$MIB" | json sha256) == "$want" ]] || fail "final read"
say "PASS"
