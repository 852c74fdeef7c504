#!/usr/bin/env bash
# disk-full.sh: nodes with a small capacity. A write that no node has room for fails with
# ENOSPC; what is already stored is unharmed; after `rm` frees space (garbage collection),
# writes work again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DFS_COORD_ARGS="--gc-grace 2s --unref-grace 2s --maintenance-interval 500ms"
export DFS_NODE_ARGS="--capacity 40M"
"$CLUSTER" up "$DIR" --nodes 2 --replicas 2 >/dev/null
python3 "$FAULTS/timed_io.py" write "$M/a" 24 >/dev/null
# Random bytes: content equal to a's would be deduplicated and fit.
if dd if=/dev/urandom of="$M/b" bs=1M count=32 conv=fsync status=none 2>"$DIR/dd.err"; then
  fail "the write that cannot fit succeeded"
fi
say "writing 32 MiB more into 2 x 40 MiB nodes holding 24 MiB each: $(cat "$DIR/dd.err")"
grep -q "No space left on device" "$DIR/dd.err" || fail "want ENOSPC, got: $(cat "$DIR/dd.err")"
[[ $(python3 "$FAULTS/timed_io.py" read "$M/a" 24 | json sha256) == "$(expected_sha 24)" ]] || fail "existing file damaged"
say "the existing 24 MiB file is intact"
rm -f "$M/a" "$M/b"
space() { [[ $(status_json | py 'min(n["free"] for n in j["nodes"])') -gt $((30 << 20)) ]]; }
until_true 30 space || fail "space not reclaimed after rm: $(status_json | py '[n["free"] for n in j["nodes"]]')"
w=$(python3 "$FAULTS/timed_io.py" write "$M/c" 24)
[[ $(json ok <<<"$w") == True ]] || fail "write after rm: $(json error <<<"$w")"
say "after rm and garbage collection a 24 MiB write works again"
say "PASS"
