#!/usr/bin/env bash
# unavailable.sh: R = 1, 2 nodes. With the only holder of some shards killed, a read of
# that range fails with EIO within 5 s, files on the other node stay readable, and once the
# node is back the same read succeeds without a remount.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$CLUSTER" up "$DIR" --nodes 2 --replicas 1 >/dev/null
want=$(expected_sha 16)
python3 "$FAULTS/timed_io.py" write "$M/big" 16 >/dev/null
# Small one-shard files: with two nodes, some land on each.
# (References are made on local disk first: reading them back through the mount would put
# them in its shard cache, and the check below would prove nothing.)
for i in $(seq 1 12); do head -c 1000 /dev/urandom >"$DIR/small-$i.ref"; cp "$DIR/small-$i.ref" "$M/small-$i"; done
mount_pid=$(cat "$DIR/pids/mount.pid")
drop_caches
kill -KILL "$(cat "$DIR/pids/node-1.pid")"
say "node-1 killed; reading a file with shards on it"
r=$(python3 "$FAULTS/timed_io.py" read "$M/big" 16)
say "  $r"
[[ $(json ok <<<"$r") == False ]] || fail "read of a file with no reachable copy succeeded?"
grep -q "Errno 5" <<<"$(json error <<<"$r")" || fail "want EIO, got: $(json error <<<"$r")"
lt "$(json total_s <<<"$r")" 5 || fail "EIO took $(json total_s <<<"$r") s (limit 5)"
echo "r1_unavailable_eio_s $(json total_s <<<"$r")" >"$DIR/figures"
grep -q 'read of "big" (inode [0-9]*) bytes [0-9]*\.\.[0-9]* failed: .*shard [0-9a-f]\{64\}' "$DIR/logs/mount.log" \
  || fail "the mount log does not name the file, byte range and shard"
say "  log: $(grep 'read of "big"' "$DIR/logs/mount.log" | tail -1 | cut -c1-240)"
readable=0
for i in $(seq 1 12); do cmp -s "$M/small-$i" "$DIR/small-$i.ref" 2>/dev/null && readable=$((readable + 1)); done
say "$readable of 12 one-shard files still readable"
((readable > 0)) || fail "no file on the surviving node was readable"
((readable < 12)) || fail "every file readable with node-1 dead: the check cannot tell"
"$CLUSTER" up "$DIR" >/dev/null
[[ $(cat "$DIR/pids/mount.pid") == "$mount_pid" ]] || fail "the mount was restarted"
got=$(python3 "$FAULTS/timed_io.py" read "$M/big" 16 | json sha256)
[[ $got == "$want" ]] || fail "read after the node came back"
say "after node-1 restarted the same read succeeds, same mount (pid $mount_pid)"
cat "$DIR/figures"
say "PASS"
