#!/usr/bin/env bash
# view.sh [DIR]: the live cluster view (dfs-coord serve --view-listen) end to end, in
# headless Chromium. Three nodes, replication 2, a 50 MiB file; node-2 is killed, and
# while repair copies its shards elsewhere the page must show node-2 down, the repair in
# its events and the file's copies on the dead node; once repair is done, the event that
# says so. With VIEW_SCREENSHOT=FILE the screenshot taken during the repair is kept there
# (the README's docs/cluster-view.png comes from this). Last, a coordinator of its own
# with --view-token-file: the page opened with the token shows data, a wrong one gets 401.
#
# Needs Debian's `chromium` package (installed with apt-get if missing). Takes about 40 s
# on a quiet machine, most of it the repair, slowed on purpose (--repair-rate 2M) so that
# the page can be caught in the middle of it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OWNED=; [[ -n ${1:-} ]] || OWNED=1
DIR=${1:-$(mktemp -d /tmp/dfs-view.XXXXXX)}
source "$HERE/teardown.sh"
WORK=$(mktemp -d /tmp/dfs-view-work.XXXXXX)
M=$DIR/mnt
fail() { echo "VIEW FAIL: $*" >&2; exit 1; }
TCOORD=
cleanup() {
  local rc=$?
  [[ -z $TCOORD ]] || kill "$TCOORD" 2>/dev/null || true
  teardown "$DIR" $rc $OWNED
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '[view %s] %s\n' "$(date +%T)" "$*"; }
START=$SECONDS

if ! command -v chromium >/dev/null; then
  step "installing chromium"
  apt-get install -y chromium >/dev/null || fail "apt-get install chromium failed"
fi

VPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
VIEW=http://127.0.0.1:$VPORT
# Repair starts 2 s after a node is declared down (3 s without heartbeats), and copies at
# 2 MiB/s: the ~33 MiB node-2 held take long enough to photograph.
export DFS_COORD_ARGS="--view-listen 127.0.0.1:$VPORT --repair-grace 2s --maintenance-interval 500ms --repair-rate 2M"
"$HERE/cluster.sh" up "$DIR" --nodes 3 --replicas 2

# api PATH: the view's answer (fails on an HTTP error); python3 rather than curl, which
# the other scripts do not need.
api() {
  python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())' "$VIEW$1"
}
# field JSON EXPR: a value from a JSON document, EXPR in Python over `d`.
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" <<<"$1"; }
# chromium ARGS...: one headless run with a throw-away profile, and HOME and the XDG
# directories in $WORK too, so that crash reports and caches do not land in ~.
# --virtual-time-budget lets the page's scripts run (and poll a few times) before the DOM
# or the screenshot is taken.
chromium_run() {
  local profile; profile=$(mktemp -d "$WORK/profile.XXXXXX")
  HOME=$profile XDG_CONFIG_HOME=$profile/.config XDG_CACHE_HOME=$profile/.cache \
    timeout 90 chromium --headless --disable-gpu --no-sandbox --user-data-dir="$profile/data" \
    --window-size=1280,900 --virtual-time-budget=3000 "$@" 2>>"$WORK/chromium.log"
}
dom() { chromium_run --dump-dom "$VIEW/?path=/big"; }

step "the page is served and the API answers"
api / | grep -q '<title>dfs cluster view</title>' || fail "GET / is not the page"
[[ $(field "$(api /api/status)" 'sum(n["state"] == "up" for n in d["nodes"])') == 3 ]] ||
  fail "status does not show 3 nodes up"

step "writing a 50 MiB file"
head -c $((50 * 1048576)) /dev/urandom >"$WORK/big"
cp "$WORK/big" "$M/big"
sync "$M/big"

# node-2's ID, from the address it advertises.
N2_ADDR=$(cat "$DIR/node-2/addr")
N2=$(field "$(api /api/status)" "[n['id'] for n in d['nodes'] if n['address'] == '$N2_ADDR'][0]")
[[ -n $N2 ]] || fail "node-2 ($N2_ADDR) not in the status"
step "node-2 is $N2 at $N2_ADDR"

step "healthy: Chromium shows three nodes up and the file's shards"
dom >"$WORK/healthy.html"
[[ $(grep -o 'data-state="up"' "$WORK/healthy.html" | wc -l) -ge 3 ]] || fail "page does not show the nodes up"
grep -q '<table id="shards">' "$WORK/healthy.html" || fail "page does not show the file's shards"
grep -q "/big: inode" "$WORK/healthy.html" || fail "page does not name the file"

step "killing node-2"
kill -KILL "$(cat "$DIR/pids/node-2.pid")"
repairing() {
  local st; st=$(api /api/status 2>/dev/null) || return 1
  [[ $(field "$st" 'd["repair"]["bytes_left"] > 0 or d["repair"]["in_flight"] > 0') == True ]]
}
end=$((SECONDS + 60))
until repairing; do
  ((SECONDS < end)) || fail "no repair started within 60 s of the kill"
  sleep 0.2
done
step "repair under way: $(field "$(api /api/status)" 'd["repair"]')"

step "during the repair: screenshot and DOM"
chromium_run --screenshot="$WORK/cluster-view.png" "$VIEW/?path=/big" >/dev/null
dom >"$WORK/repair.html"
# Both were taken during the repair if it is still going on now.
repairing || fail "repair finished before the page was photographed (too fast to catch)"
[[ -s $WORK/cluster-view.png ]] || fail "no screenshot (see $WORK/chromium.log)"
grep -Eq "id=\"node-$N2\"[^>]*data-state=\"down\"" "$WORK/repair.html" || fail "page does not show node-2 down"
grep -q 'data-kind="node_down"' "$WORK/repair.html" || fail "page shows no node-down event"
grep -q 'data-kind="repair_started"' "$WORK/repair.html" || fail "page shows no repair-started event"
grep -q "class=\"copy badge s-down\"" "$WORK/repair.html" || fail "file's shards show no copy on the down node"
if [[ -n ${VIEW_SCREENSHOT:-} ]]; then
  cp "$WORK/cluster-view.png" "$VIEW_SCREENSHOT"
  step "screenshot saved as $VIEW_SCREENSHOT"
fi

step "waiting for the repair to finish"
finished() { [[ $(field "$(api /api/events)" 'any(e["kind"] == "repair_finished" for e in d)') == True ]]; }
end=$((SECONDS + 120))
until finished; do
  ((SECONDS < end)) || fail "repair did not finish within 120 s"
  sleep 1
done
dom >"$WORK/after.html"
grep -q 'data-kind="repair_finished"' "$WORK/after.html" || fail "page shows no repair-finished event"
[[ $(field "$(api /api/status)" 'd["under_replicated"]') == 0 ]] || fail "shards still under-replicated"
cmp "$WORK/big" "$M/big" || fail "the file changed"

step "with a token: a coordinator of its own (no nodes) whose view requires one"
echo "view-test-token" >"$WORK/token"
TPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BIN=$HERE/../target/${DFS_PROFILE:-debug}
"$BIN/dfs-coord" serve --data "$WORK/tcoord" --certs "$DIR/certs" --listen 127.0.0.1:0 \
  --addr-file "$WORK/tcoord.addr" --view-listen "127.0.0.1:$TPORT" \
  --view-token-file "$WORK/token" >"$WORK/tcoord.log" 2>&1 &
TCOORD=$!
end=$((SECONDS + 20))
until [[ -s $WORK/tcoord.addr ]]; do
  ((SECONDS < end)) || fail "token coordinator did not start (see $WORK/tcoord.log)"
  sleep 0.1
done
chromium_run --dump-dom "http://127.0.0.1:$TPORT/?token=view-test-token" >"$WORK/token.html"
chromium_run --dump-dom "http://127.0.0.1:$TPORT/?token=wrong" >"$WORK/notoken.html"
kill "$TCOORD"; wait "$TCOORD" 2>/dev/null || true; TCOORD=
# The page passes its token on to its API requests: it shows fresh data, not an error.
grep -Eq 'id="conn"[^>]*>updated' "$WORK/token.html" || fail "page opened with the token does not update"
grep -q 'class="tile" id="t-nodes"><div class="v">0 / 0' "$WORK/token.html" || fail "page with the token shows no status"
grep -q 'needs its token' "$WORK/notoken.html" || fail "a wrong token was not refused"

step "ok in $((SECONDS - START)) s"
