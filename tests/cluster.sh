#!/usr/bin/env bash
# cluster.sh up DIR [--nodes N] [--replicas R]   start (or restart the missing parts of) a
#                                                local cluster and mount it at DIR/mnt
# cluster.sh down DIR [--purge]                  unmount and stop what `up` started; the
#                                                state in DIR stays, unless --purge: then
#                                                only logs/ and loose files stay (tests use
#                                                it so that a failed run keeps its logs but
#                                                not gigabytes of shards)
#
# DIR layout: certs/ (cluster CA and certificates), coord/ (metadata), node-K/ (shards),
# mnt/ (the mount), pids/{coord,node-K,mount}.pid, logs/{coord,node-K,mount}.log,
# cluster.conf (node count, replication, coordinator port: fixed at first `up`).
#
# Ports: the coordinator's port is picked free on first `up` and kept, so two clusters in
# two DIRs run side by side and a restarted coordinator is found at the same address.
# Nodes listen on ephemeral ports and tell the coordinator where they are when they register.
#
# Environment: DFS_PROFILE=debug|release (default debug) picks the build; DFS_BIN_DIR
# overrides where the binaries are; DFS_NODE_TIMEOUT (default 3s) is how long the
# coordinator waits for heartbeats before declaring a node down. DFS_COORD_ARGS,
# DFS_NODE_ARGS and DFS_MOUNT_ARGS add flags to the coordinator, nodes and mount; in
# DFS_NODE_ARGS, {K} stands for the node's number (e.g. --metrics-listen 127.0.0.1:920{K}).
# DFS_DURABLE_CLOSE=1 runs the coordinator and the nodes with --durable-close (every
# change and every shard fsynced before it is acknowledged: docs/SEMANTICS.md).
set -euo pipefail

usage() { echo "usage: $0 up DIR [--nodes N] [--replicas R] | down DIR [--purge]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
cmd=$1 DIR=$2; shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=${DFS_PROFILE:-debug}
BIN=${DFS_BIN_DIR:-$ROOT/target/$PROFILE}
NODES=3 REPLICAS=2 PURGE=
while [[ $# -gt 0 ]]; do
  case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --purge) PURGE=1; shift ;;
    *) usage ;;
  esac
done

say() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }
# A process just killed with SIGKILL can linger as a zombie for a moment, and kill -0
# still succeeds on a zombie: count it as dead, or `up` right after a kill would not
# restart it.
alive() {
  [[ -f $1 ]] || return 1
  local pid; pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}
# Decided from /proc/mounts alone: touching the path itself would be a FUSE request,
# which fails (EIO) while the coordinator is down, and `up` must work exactly then.
mounted() { grep -qs " $DIR/mnt fuse" /proc/mounts; }

# Waits up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

# Checks what a mount needs before spending minutes on a build: the FUSE device, the
# fusermount3 helper (package fuse3) and, when building, a Rust toolchain. As root it
# installs the missing Debian packages; otherwise it says exactly what to run.
preflight() {
  [[ -e /dev/fuse ]] || die "/dev/fuse not found: load the fuse module (modprobe fuse), or start this container with --device /dev/fuse"
  local need=()
  command -v fusermount3 >/dev/null || need+=(fuse3)
  if ((${#need[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      say "installing ${need[*]} (needed to mount: fusermount3)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } \
        || die "could not install ${need[*]}: run apt-get install ${need[*]}"
    else
      die "fusermount3 not found: install the fuse3 package (sudo apt-get install ${need[*]})"
    fi
  fi
  if [[ -z ${DFS_BIN_DIR:-} ]] && ! command -v cargo >/dev/null; then
    die "cargo not found: install a Rust toolchain (https://rustup.rs), or set DFS_BIN_DIR to installed binaries"
  fi
}

# Builds the binaries unless DFS_BIN_DIR names installed ones. Always asking cargo (a
# no-op when nothing changed) means a cluster never runs stale code after an edit.
ensure_built() {
  if [[ -z ${DFS_BIN_DIR:-} ]]; then
    local flag=(); [[ $PROFILE == release ]] && flag=(--release)
    (cd "$ROOT" && cargo build -q "${flag[@]}" --bins) || die "build failed"
  fi
  [[ -x $BIN/dfs-coord && -x $BIN/dfs-node && -x $BIN/dfs-fuse ]] || die "no binaries in $BIN"
}

# start NAME LOGFILE CMD...: starts CMD in its own session (so it outlives this script),
# records its pid in pids/NAME.pid.
start() {
  local name=$1 log=$2; shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name.pid"
}

up() {
  preflight
  ensure_built
  mkdir -p "$DIR"/{pids,logs,coord}
  DIR=$(cd "$DIR" && pwd)
  mounted || mkdir -p "$DIR/mnt"
  if [[ -f $DIR/cluster.conf ]]; then
    # shellcheck disable=SC1091
    source "$DIR/cluster.conf"
  else
    PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'NODES=%s\nREPLICAS=%s\nPORT=%s\n' "$NODES" "$REPLICAS" "$PORT" >"$DIR/cluster.conf"
  fi
  local coord=127.0.0.1:$PORT
  [[ -f $DIR/certs/ca.crt ]] || "$BIN/dfs-coord" init --certs "$DIR/certs" --nodes "$NODES" >/dev/null

  if ! alive "$DIR/pids/coord.pid"; then
    say "starting coordinator on $coord"
    rm -f "$DIR/coord/addr"
    start coord "$DIR/logs/coord.log" "$BIN/dfs-coord" serve --data "$DIR/coord" --certs "$DIR/certs" \
      --listen "$coord" --replicas "$REPLICAS" --node-timeout "${DFS_NODE_TIMEOUT:-3s}" --addr-file "$DIR/coord/addr" \
      ${DFS_DURABLE_CLOSE:+--durable-close} ${DFS_COORD_ARGS:-}
    wait_for 20 test -s "$DIR/coord/addr" || die "coordinator did not start (see $DIR/logs/coord.log)"
  fi
  local node_args=${DFS_NODE_ARGS:-}
  for k in $(seq 1 "$NODES"); do
    if ! alive "$DIR/pids/node-$k.pid"; then
      say "starting node-$k"
      mkdir -p "$DIR/node-$k"
      rm -f "$DIR/node-$k/addr"
      start "node-$k" "$DIR/logs/node-$k.log" "$BIN/dfs-node" --data "$DIR/node-$k" --coord "$coord" \
        --certs "$DIR/certs" --cert-name "node-$k" --addr-file "$DIR/node-$k/addr" \
        ${DFS_DURABLE_CLOSE:+--durable-close} ${node_args//\{K\}/$k}
      wait_for 20 test -s "$DIR/node-$k/addr" || die "node-$k did not start (see $DIR/logs/node-$k.log)"
    fi
  done
  # Wait until the coordinator sees every node up, so the first write has its replicas.
  nodes_up() { "$BIN/dfs-coord" status --coord "$coord" --certs "$DIR/certs" --json 2>/dev/null | grep -o '"state":"up"' | wc -l; }
  all_up() { [[ $(nodes_up) -ge $NODES ]]; }
  wait_for 30 all_up || die "only $(nodes_up) of $NODES nodes registered with the coordinator"
  if ! alive "$DIR/pids/mount.pid" || ! mounted; then
    if alive "$DIR/pids/mount.pid"; then kill "$(cat "$DIR/pids/mount.pid")" 2>/dev/null || true; fi
    # A mount process that died leaves "Transport endpoint is not connected" behind.
    if grep -qs " $DIR/mnt " /proc/mounts; then fusermount3 -u "$DIR/mnt" 2>/dev/null || umount -l "$DIR/mnt" || true; fi
    say "mounting at $DIR/mnt"
    start mount "$DIR/logs/mount.log" "$BIN/dfs-fuse" "$DIR/mnt" --coord "$coord" --certs "$DIR/certs" ${DFS_MOUNT_ARGS:-}
    wait_for 20 mounted || die "mount did not appear: $(grep -a 'dfs-fuse:' "$DIR/logs/mount.log" | tail -1) (see $DIR/logs/mount.log)"
    wait_for 10 stat "$DIR/mnt/." || die "mount is not usable (see $DIR/logs/mount.log)"
  fi
  say "up: coordinator $coord, $NODES nodes, replication $REPLICAS, mounted at $DIR/mnt"
}

# stop NAME: SIGTERM, wait up to 10 s, then SIGKILL.
stop() {
  local pidf=$DIR/pids/$1.pid
  [[ -f $pidf ]] || return 0
  local pid; pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid" || { say "$1 ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$pidf"
}

down() {
  [[ -d $DIR ]] || die "no cluster in $DIR"
  DIR=$(cd "$DIR" && pwd)
  if mounted; then
    # Unmount first: the mount process flushes and exits by itself.
    fusermount3 -u "$DIR/mnt" 2>/dev/null || umount "$DIR/mnt" 2>/dev/null || true
  fi
  stop mount
  if grep -qs " $DIR/mnt " /proc/mounts; then umount -l "$DIR/mnt" 2>/dev/null || true; fi
  for f in "$DIR"/pids/node-*.pid; do
    [[ -e $f ]] || continue
    n=$(basename "$f" .pid); stop "$n"
  done
  stop coord
  if [[ -n $PURGE ]]; then
    # Never delete through a mount that is still there (it would delete the files).
    grep -qs " $DIR/mnt " /proc/mounts && die "$DIR/mnt is still mounted; not purging"
    rm -rf "$DIR"/certs "$DIR"/coord "$DIR"/node-* "$DIR"/mnt "$DIR"/mnt2 "$DIR"/pids
  fi
  say "down: $DIR${PURGE:+ (purged; logs kept)}"
}

case $cmd in
  up) up ;;
  down) down ;;
  *) usage ;;
esac
