#!/usr/bin/env bash
# cli.sh: the `dfs` admin command on a real cluster (3 nodes, R = 2). Writes a 5 MiB file
# through the mount; `dfs where` shows its 5 shards with 2 nodes each; `dfs status`
# lists the 3 nodes; `dfs node drain` empties node-1 (no shard left on it, the file
# unchanged), `dfs node remove` forgets it (and it is refused when it tries to come
# back), fsck is clean. Also the exit codes of a missing cluster and of refusals.
source "$(dirname "${BASH_SOURCE[0]}")/faults/lib.sh"
# Short maintenance intervals so the drain takes seconds, not minutes.
export DFS_COORD_ARGS="--repair-grace 2s --maintenance-interval 500ms --repair-rate 512M --gc-grace 30s --unref-grace 30s"
DFS=$BIN/dfs
# rc CMD...: runs CMD and prints its exit code (never fails the script by itself).
rc() { local r=0; "$@" >"$DIR/out" 2>"$DIR/err" || r=$?; echo "$r"; }

r=$(rc "$DFS" --cluster "$DIR/no-such-dir" status)
[[ $r == 3 ]] || fail "missing cluster directory: exit $r, want 3"
grep -q "no cluster directory" "$DIR/err" || fail "unclear error: $(cat "$DIR/err")"

"$CLUSTER" up "$DIR" --nodes 3 --replicas 2 >/dev/null
export DFS_CLUSTER=$DIR

head -c $((5 << 20)) /dev/urandom >"$DIR/src.bin"
want=$(sha256sum <"$DIR/src.bin" | cut -d' ' -f1)
mkdir -p "$M/d"
cp "$DIR/src.bin" "$M/d/file"

# `where`, by the path inside the filesystem and through the mount.
"$DFS" where /d/file --json >"$DIR/where.json" || fail "dfs where failed"
py '(len(j["shards"]) == 5 and all(len(s["nodes"]) == 2 for s in j["shards"]) and
    [s["offset"] for s in j["shards"]] == [i << 20 for i in range(5)] and
    all(s["length"] == 1 << 20 and len(s["id"]) == 64 for s in j["shards"]) and
    j["size"] == 5 << 20 and j["path"] == "/d/file")' <"$DIR/where.json" | grep -qx True \
  || fail "where: not 5 shards of 1 MiB with 2 nodes each: $(cat "$DIR/where.json")"
"$DFS" where "$M/d/file" >"$DIR/where.txt" || fail "dfs where through the mount failed"
[[ $(grep -c '^ *[0-9]' "$DIR/where.txt") == 5 ]] || fail "where table: $(cat "$DIR/where.txt")"
say "dfs where $M/d/file:"; cat "$DIR/where.txt"
r=$(rc "$DFS" where /d/nope)
[[ $r == 4 ]] || fail "where of a missing file: exit $r, want 4 ($(cat "$DIR/err"))"

# `status`: the JSON contract.
"$DFS" status --json >"$DIR/status.json" || fail "dfs status failed"
py '(len(j["nodes"]) == 3 and all(n["state"] == "up" and len(n["id"]) == 16 and n["address"]
    and n["capacity"] > 0 for n in j["nodes"]))' <"$DIR/status.json" | grep -qx True \
  || fail "status: $(cat "$DIR/status.json")"
"$DFS" status >/dev/null || fail "dfs status (table) failed"

n1=$(cat "$DIR/node-1/node.id")
on_n1() { "$DFS" where /d/file --json | python3 -c 'import json,sys; print(sum(any(n["id"] == sys.argv[1] for n in s["nodes"]) for s in json.load(sys.stdin)["shards"]))' "$n1"; }
held=$(on_n1)
say "node-1 ($n1) holds $held of the 5 shards; draining it"
[[ $held -gt 0 ]] || fail "node-1 holds no shard of the file: nothing to drain"

t0=$SECONDS
r=$(rc "$DFS" node drain "$n1" --timeout 120)
[[ $r == 0 ]] || fail "drain: exit $r: $(cat "$DIR/out" "$DIR/err")"
say "drained in $((SECONDS - t0)) s: $(cat "$DIR/out")"
say "progress lines: $(wc -l <"$DIR/err"), last: $(tail -n1 "$DIR/err")"
[[ $(on_n1) == 0 ]] || fail "node-1 still holds shards after the drain: $("$DFS" where /d/file)"
"$DFS" where /d/file --json | py 'all(len(s["nodes"]) == 2 for s in j["shards"])' | grep -qx True \
  || fail "not 2 copies per shard after the drain: $("$DFS" where /d/file)"
"$DFS" status --json | py '[n["state"] for n in j["nodes"] if n["id"] == "'"$n1"'"]' | grep -qx "\['draining'\]" \
  || fail "status does not show node-1 draining: $("$DFS" status)"
drop_caches
[[ $(sha256sum <"$M/d/file" | cut -d' ' -f1) == "$want" ]] || fail "file changed by the drain"

r=$(rc "$DFS" node remove "$n1")
[[ $r == 0 ]] || fail "remove: exit $r: $(cat "$DIR/out" "$DIR/err")"
say "$(cat "$DIR/out")"
"$DFS" status --json | py 'len(j["nodes"]) == 2 and "'"$n1"'" not in [n["id"] for n in j["nodes"]]' | grep -qx True \
  || fail "status after remove: $("$DFS" status)"
# The old command reads the same JSON.
status_json | py 'len(j["nodes"])' | grep -qx 2 || fail "dfs-coord status disagrees"
r=$(rc "$DFS" node remove "$n1")
[[ $r == 4 ]] || fail "second remove: exit $r, want 4"
# node-1 is still running: its next heartbeat is refused, then so is its registration.
refused() { grep -q "was removed from this cluster" "$DIR/logs/node-1.log"; }
until_true 20 refused || fail "node-1 was not refused: $(tail -n5 "$DIR/logs/node-1.log")"
"$DFS" status --json | py 'len(j["nodes"])' | grep -qx 2 || fail "node-1 came back"

r=$(rc "$DFS" fsck)
[[ $r == 0 ]] || fail "fsck after remove: exit $r: $(cat "$DIR/out")"
[[ $(sha256sum <"$M/d/file" | cut -d' ' -f1) == "$want" ]] || fail "file changed by the removal"
say "PASS"
