# Shared helpers of the fault scenarios (sourced).
set -euo pipefail
FAULTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTS=$(cd "$FAULTS/.." && pwd)
ROOT=$(cd "$TESTS/.." && pwd)
CLUSTER=$TESTS/cluster.sh
NAME=$(basename "$0" .sh)
OWNED=; [[ -n ${DIR:-} ]] || OWNED=1
DIR=${DIR:-$(mktemp -d "/tmp/dfs-$NAME.XXXXXX")}
source "$TESTS/teardown.sh"
M=$DIR/mnt
say() { printf '[%s %s] %s\n' "$NAME" "$(date +%T)" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
cleanup() {
  local rc=$?
  for f in "$DIR"/pids/node-*.pid "$DIR"/pids/coord.pid; do
    { [[ -e $f ]] && kill -CONT "$(cat "$f")" 2>/dev/null; } || true
  done
  teardown "$DIR" $rc $OWNED
}
trap cleanup EXIT
# json FIELD < line
json() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
# expected_sha MIB: the SHA-256 timed_io.py write produces for MIB MiB.
expected_sha() { python3 - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
for i in range(int(sys.argv[1])):
    h.update(hashlib.sha256(b"dfs-%d" % i).digest() * 32768)
print(h.hexdigest())
PY
}
# lt A B: A < B (decimals)
lt() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}'; }
# wait_for_file PATH [SECONDS]: until PATH exists (default 10 s).
wait_for_file() { local n=$(( ${2:-10} * 20 )); for _ in $(seq "$n"); do [[ -e $1 ]] && return 0; sleep 0.05; done; return 1; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Cluster status and fsck as JSON (needs a cluster started by cluster.sh in $DIR).
coord_addr() { (source "$DIR/cluster.conf"; echo "127.0.0.1:$PORT"); }
BIN=${DFS_BIN_DIR:-$ROOT/target/${DFS_PROFILE:-debug}}
status_json() { "$BIN/dfs-coord" status --coord "$(coord_addr)" --certs "$DIR/certs" --json; }
fsck_json() { "$BIN/dfs-coord" fsck --coord "$(coord_addr)" --certs "$DIR/certs" --json; }
# jq-free: py EXPR evaluates EXPR on the JSON document `j` read from stdin.
py() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# until_true SECONDS CMD...: polls every 0.2 s.
until_true() { local end=$((SECONDS + $1)); shift; until "$@"; do ((SECONDS < end)) || return 1; sleep 0.2; done; }
# shards held by node K (count of shard files on its disk)
node_shards() { find "$DIR/node-$1/shards" -type f 2>/dev/null | wc -l; }
# flip_byte FILE: flips the last byte of FILE (a shard file's last byte is shard data).
flip_byte() { python3 - "$1" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, 2); b = f.read(1); f.seek(-1, 2); f.write(bytes([b[0] ^ 0xFF]))
PY
}
