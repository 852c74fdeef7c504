#!/usr/bin/env bash
# gc.sh: shards no committed file references (deleted files, overwritten content, a
# writer that died before committing) are deleted from the nodes after the grace period;
# fsck then reports zero orphans; live files are untouched. A file unlinked while open
# on a mount that is then killed (so its last close never comes) is deleted after the
# grace too, and its shards with it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DFS_COORD_ARGS="--gc-grace 3s --unref-grace 3s --maintenance-interval 500ms"
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
python3 "$FAULTS/timed_io.py" write "$M/keep" 8 >/dev/null
python3 "$FAULTS/timed_io.py" write "$M/gone" 32 >/dev/null
head -c $((4 << 20)) /dev/urandom >"$M/over"; head -c $((4 << 20)) /dev/urandom >"$M/over"   # overwritten
copies() { echo $(( $(node_shards 1) + $(node_shards 2) + $(node_shards 3) )); }
before=$(copies)
rm "$M/gone"
say "$before shard copies on disk; deleted a 32 MiB file and overwrote a 4 MiB one"
want=$((2 * (8 + 4)))
collected() { [[ $(copies) == "$want" ]]; }
until_true 60 collected || fail "gc left $(copies) copies, want $want"
say "after the grace period: $(copies) copies (2 x 12 shards still in use)"
f=$(fsck_json) || fail "fsck exit $?"
[[ $(py 'j["orphaned"]' <<<"$f") == 0 ]] || fail "fsck reports orphans after gc: $f"
[[ $(python3 "$FAULTS/timed_io.py" read "$M/keep" 8 | json sha256) == "$(expected_sha 8)" ]] || fail "live file damaged by gc"
say "fsck: 0 orphans; live files intact"

head -c $((4 << 20)) /dev/urandom >"$M/held"   # new content: no shard shared with the others
exec 7<"$M/held"   # this shell holds it open...
rm "$M/held"       # ...so the coordinator keeps it as an orphan inode until the close
(( $(copies) == want + 8 )) || fail "the unlinked open file should still have its 8 copies, have $(( $(copies) - want ))"
kill -9 "$(cat "$DIR/pids/mount.pid")"   # the close never comes
exec 7<&-
"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null   # a new mount
say "killed the mount holding an unlinked 4 MiB file open; mounted again"
until_true 60 collected || fail "the dead mount's orphan still has $(( $(copies) - want )) copies"
grep -q "deleted orphan inode" "$DIR/logs/coord.log" || fail "no orphan deletion in the coordinator's log"
say "after the grace: the orphan inode and its 8 copies are gone ($(copies) copies)"
say "PASS"
