#!/usr/bin/env bash
# netns.sh: three storage nodes in their own network namespaces (ip netns + veth, each
# with its own address), the coordinator and the mount in the host namespace. One node is
# cut off by taking its link down (the process keeps running, its packets just vanish, as
# with a pulled cable) while a file is read and another written. Every byte must be right
# and no single read() or write() may stall longer than 2 s. Then the link comes back and
# the coordinator sees the node up again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BIN=${DFS_BIN_DIR:-$ROOT/target/${DFS_PROFILE:-debug}}
PFX=dfst$$
MIB=128 LIMIT=2.0
NS=()
fwd=$(cat /proc/sys/net/ipv4/ip_forward)
netns_cleanup() {
  local rc=$?
  fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
  # (every command here must not fail: under `set -e` a failure would end the cleanup)
  for p in "$DIR"/pids/*.pid; do [[ -e $p ]] && kill -TERM "$(cat "$p")" 2>/dev/null || true; done
  sleep 0.5
  for p in "$DIR"/pids/*.pid; do [[ -e $p ]] && kill -KILL "$(cat "$p")" 2>/dev/null || true; done
  # `ip netns exec` may fork, so the recorded pid can be a wrapper: also match by our DIR.
  pkill -KILL -f -- "--data $DIR/" 2>/dev/null || true
  wait 2>/dev/null || true
  for k in 1 2 3; do ip netns del "$PFX-$k" 2>/dev/null || true; ip link del "${PFX}h$k" 2>/dev/null || true; done
  echo "$fwd" >/proc/sys/net/ipv4/ip_forward || true
  teardown "$DIR" "$rc" "$OWNED"
}
trap netns_cleanup EXIT
command -v ip >/dev/null || fail "iproute2 (ip) is missing"
(cd "$ROOT" && cargo build -q --bins)
mkdir -p "$DIR"/{pids,logs,coord,mnt}
"$BIN/dfs-coord" init --certs "$DIR/certs" --nodes 3 >/dev/null
# Nodes talk to each other through the host (repair traffic), so it must forward.
echo 1 >/proc/sys/net/ipv4/ip_forward
net=$((RANDOM % 200 + 20))
for k in 1 2 3; do
  ns=$PFX-$k host=${PFX}h$k peer=${PFX}n$k
  ip netns add "$ns"
  ip link add "$host" type veth peer name "$peer"
  ip link set "$peer" netns "$ns"
  ip addr add "10.$net.$k.1/24" dev "$host"; ip link set "$host" up
  ip netns exec "$ns" ip addr add "10.$net.$k.2/24" dev "$peer"
  ip netns exec "$ns" ip link set "$peer" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip route add default via "10.$net.$k.1"
done
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')
setsid "$BIN/dfs-coord" serve --data "$DIR/coord" --certs "$DIR/certs" --listen "0.0.0.0:$PORT" \
  --replicas 2 --node-timeout 3s >"$DIR/logs/coord.log" 2>&1 & echo $! >"$DIR/pids/coord.pid"
for k in 1 2 3; do
  setsid ip netns exec "$PFX-$k" "$BIN/dfs-node" --data "$DIR/node-$k" --coord "10.$net.$k.1:$PORT" \
    --certs "$DIR/certs" --cert-name "node-$k" --listen "10.$net.$k.2:7001" >"$DIR/logs/node-$k.log" 2>&1 &
  echo $! >"$DIR/pids/node-$k.pid"
done
status() { "$BIN/dfs-coord" status --coord "127.0.0.1:$PORT" --certs "$DIR/certs" --json 2>/dev/null; }
ups() { status | grep -o '"state":"up"' | wc -l; }
for _ in $(seq 100); do [[ $(ups) == 3 ]] && break; sleep 0.2; done
[[ $(ups) == 3 ]] || fail "nodes in namespaces did not register ($(ups) up)"
say "3 nodes up at 10.$net.{1,2,3}.2, each in its own namespace"
setsid "$BIN/dfs-fuse" "$M" --coord "127.0.0.1:$PORT" --certs "$DIR/certs" >"$DIR/logs/mount.log" 2>&1 &
echo $! >"$DIR/pids/mount.pid"
for _ in $(seq 100); do grep -qs " $M fuse" /proc/mounts && break; sleep 0.1; done
want=$(expected_sha $MIB)
python3 "$FAULTS/timed_io.py" write "$M/f" $MIB >/dev/null
drop_caches

say "cutting node-2 off (link down) while reading"
rm -f "$DIR/started"
python3 "$FAULTS/timed_io.py" read "$M/f" $MIB "$DIR/started" >"$DIR/r.json" &
reader=$!
wait_for_file "$DIR/started" || fail "reader did not start"
ip link set "${PFX}h2" down
wait $reader || true
r=$(cat "$DIR/r.json"); say "  $r"
[[ $(json ok <<<"$r") == True && $(json sha256 <<<"$r") == "$want" ]] || fail "read across the partition"
lt "$(json worst_call_s <<<"$r")" $LIMIT || fail "a read() stalled $(json worst_call_s <<<"$r") s"

say "writing while node-2 is still cut off"
w=$(python3 "$FAULTS/timed_io.py" write "$M/g" $MIB); say "  $w"
[[ $(json ok <<<"$w") == True ]] || fail "write across the partition: $(json error <<<"$w")"
lt "$(json worst_call_s <<<"$w")" $LIMIT || fail "a write() stalled $(json worst_call_s <<<"$w") s"
[[ $(python3 "$FAULTS/timed_io.py" read "$M/g" $MIB | json sha256) == "$want" ]] || fail "file written during the partition"
for _ in $(seq 50); do [[ $(ups) == 2 ]] && break; sleep 0.2; done
[[ $(ups) == 2 ]] || fail "coordinator did not mark the cut-off node down"
say "coordinator marked node-2 down"
ip link set "${PFX}h2" up
for _ in $(seq 100); do [[ $(ups) == 3 ]] && break; sleep 0.2; done
[[ $(ups) == 3 ]] || fail "node-2 did not come back after the link did"
say "link restored: node-2 up again"
echo "netns_worst_read_s $(json worst_call_s <<<"$r") netns_worst_write_s $(json worst_call_s <<<"$w")"
say "PASS"
