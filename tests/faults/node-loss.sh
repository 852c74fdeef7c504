#!/usr/bin/env bash
# node-loss.sh: R = 2, 3 nodes. A node is killed (SIGKILL) or frozen (SIGSTOP) while a
# 256 MiB file is being read, and again while one is being written. Every byte must come
# out right, and no single read() or write() call may stall longer than 2 s.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MIB=256 LIMIT=2.0
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
want=$(expected_sha $MIB)
python3 "$FAULTS/timed_io.py" write "$M/base" $MIB >/dev/null

for sig in KILL STOP; do
  say "reader, node-1 gets SIG$sig mid-read"
  drop_caches
  rm -f "$DIR/started"
  python3 "$FAULTS/timed_io.py" read "$M/base" $MIB "$DIR/started" >"$DIR/r.json" &
  reader=$!
  wait_for_file "$DIR/started" || fail "reader did not start"
  kill -$sig "$(cat "$DIR/pids/node-1.pid")"
  wait $reader || true
  r=$(cat "$DIR/r.json"); say "  $r"
  [[ $(json ok <<<"$r") == True ]] || fail "read failed: $(json error <<<"$r")"
  [[ $(json sha256 <<<"$r") == "$want" ]] || fail "read returned wrong bytes"
  lt "$(json worst_call_s <<<"$r")" $LIMIT || fail "a read() stalled $(json worst_call_s <<<"$r") s"
  echo "reader_sig$sig worst_read_s $(json worst_call_s <<<"$r")" >>"$DIR/figures"
  kill -CONT "$(cat "$DIR/pids/node-1.pid")" 2>/dev/null || true
  "$CLUSTER" up "$DIR" >/dev/null   # restarts node-1 if it was killed

  say "writer, node-2 gets SIG$sig mid-write"
  rm -f "$DIR/started"
  python3 "$FAULTS/timed_io.py" write "$M/w-$sig" $MIB "$DIR/started" >"$DIR/w.json" &
  writer=$!
  wait_for_file "$DIR/started" || fail "writer did not start"
  kill -$sig "$(cat "$DIR/pids/node-2.pid")"
  wait $writer || true
  w=$(cat "$DIR/w.json"); say "  $w"
  [[ $(json ok <<<"$w") == True ]] || fail "write failed: $(json error <<<"$w")"
  lt "$(json worst_call_s <<<"$w")" $LIMIT || fail "a write() stalled $(json worst_call_s <<<"$w") s"
  got=$(python3 "$FAULTS/timed_io.py" read "$M/w-$sig" $MIB | json sha256)
  [[ $got == "$want" ]] || fail "file written during SIG$sig reads back wrong"
  echo "writer_sig$sig worst_write_s $(json worst_call_s <<<"$w") fsync_s $(json fsync_s <<<"$w")" >>"$DIR/figures"
  kill -CONT "$(cat "$DIR/pids/node-2.pid")" 2>/dev/null || true
  "$CLUSTER" up "$DIR" >/dev/null
done
say "figures:"; cat "$DIR/figures"
say "PASS"
