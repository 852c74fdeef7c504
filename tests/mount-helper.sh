#!/usr/bin/env bash
# mount-helper.sh [DIR]: `mount -t fuse.dfs` and fstab lines work through the helper
# mount(8) runs, /sbin/mount.fuse.dfs (the dfs-fuse binary under that name):
#   1. mount -t fuse.dfs HOST:PORT DIR -o certs=...,_netdev: mount(8) returns once the
#      mount is there; a file written through it reads back identical through the
#      cluster's other mount; the mount's metrics endpoint counted the uploads; umount
#      ends the daemon;
#   2. the same as an fstab line whose certificates come from a TOML file (config=), with
#      mount -T TMPFSTAB DIR so that /etc/fstab is not touched;
#   3. a misspelt option and an unreachable coordinator make mount(8) fail, with the
#      helper's message, and leave no mount and no process behind.
# It installs /sbin/mount.fuse.dfs as a symlink for the duration of the test (mount(8)
# looks for helpers only in /sbin), and refuses to replace one it did not create.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OWNED=; [[ -n ${1:-} ]] || OWNED=1
DIR=${1:-$(mktemp -d /tmp/dfs-mount-helper.XXXXXX)}
source "$HERE/teardown.sh"
BIN=${DFS_BIN_DIR:-$HERE/../target/${DFS_PROFILE:-debug}}
BIN=$(cd "$BIN" && pwd)
HELPER=/sbin/mount.fuse.dfs
fail() { echo "MOUNT-HELPER FAIL: $*" >&2; exit 1; }
step() { printf '[mount-helper %s] %s\n' "$(date +%T)" "$*"; }
INSTALLED=
M=
cleanup() {
  local rc=$?
  if [[ -n $M ]] && grep -qs " $M " /proc/mounts; then umount "$M" 2>/dev/null || umount -l "$M" || true; fi
  [[ -n $INSTALLED ]] && rm -f "$HELPER"
  teardown "$DIR" $rc $OWNED
}
trap cleanup EXIT
mounted() { grep -qs " $M fuse" /proc/mounts; }
# The daemon behind the helper mount (its command line names the mount point).
daemon() { pgrep -f -x "dfs-fuse $M --coord .*" || true; }
wait_until() { local n=$1; shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done; return 1; }
no_daemon() { [[ -z $(daemon) ]]; }

if [[ -e $HELPER || -L $HELPER ]]; then
  [[ $(readlink -f "$HELPER") == "$BIN/dfs-fuse" ]] || fail "$HELPER exists and is not ours; not replacing it"
else
  ln -s "$BIN/dfs-fuse" "$HELPER"; INSTALLED=1
fi

"$HERE/cluster.sh" up "$DIR" --nodes 2 --replicas 2 >/dev/null 2>&1
DIR=$(cd "$DIR" && pwd)
source "$DIR/cluster.conf"
COORD=127.0.0.1:$PORT
M=$DIR/mnt-helper
mkdir -p "$M"
OPTS="_netdev,certs=$DIR/certs,cert_name=client,log=$DIR/logs/mount-helper.log"

# round_trip NAME: a file written through the helper mount reads back, byte for byte,
# through the cluster's own mount (close-to-open: committed on close, seen on open).
round_trip() {
  head -c 3000000 /dev/urandom >"$DIR/$1.src"
  cp "$DIR/$1.src" "$M/$1"
  cmp "$DIR/$1.src" "$DIR/mnt/$1" || fail "$1 differs when read through the other mount"
  cmp "$DIR/$1.src" "$M/$1" || fail "$1 differs when read back through the helper mount"
}

MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "mount -t fuse.dfs $COORD $M -o $OPTS,metrics_listen=127.0.0.1:$MPORT"
mount -t fuse.dfs "$COORD" "$M" -o "$OPTS,metrics_listen=127.0.0.1:$MPORT" || fail "mount(8) failed (see $DIR/logs/mount-helper.log)"
# mount(8) has returned: the mount must be there already, not in a moment.
mounted || fail "mount(8) returned before the mount existed"
[[ -n $(daemon) ]] || fail "no dfs-fuse daemon behind the mount"
round_trip one
# The mount's own metrics saw the upload: 3 shards put on 2 nodes each.
metrics=$(python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://127.0.0.1:$MPORT/metrics').read().decode())")
puts=$(grep '^dfs_client_requests_total{server="node",op="put"}' <<<"$metrics" | awk '{print $2}')
[[ ${puts:-0} -ge 6 ]] || fail "mount metrics show ${puts:-no} node puts, expected >= 6"
grep -q '^dfs_client_sent_bytes_total 6000000$' <<<"$metrics" || fail "mount metrics: sent bytes $(grep sent_bytes <<<"$metrics")"
umount "$M"
mounted && fail "still mounted after umount"
wait_until 50 no_daemon || fail "dfs-fuse still running 5 s after umount"

step "fstab line with config=FILE (mount -T with a temporary fstab)"
# Certificates from a TOML file this time (dfs-fuse --config), the rest from the line.
printf 'certs = "%s"\ncert_name = "client"\n' "$DIR/certs" >"$DIR/fuse.toml"
printf '# test fstab\n%s %s fuse.dfs _netdev,noauto,nofail,config=%s,log=%s 0 0\n' \
  "$COORD" "$M" "$DIR/fuse.toml" "$DIR/logs/mount-helper.log" >"$DIR/fstab"
mount -T "$DIR/fstab" "$M" || fail "mount -T $DIR/fstab $M failed"
mounted || fail "fstab mount not there after mount(8) returned"
round_trip two
umount "$M"
wait_until 50 no_daemon || fail "dfs-fuse still running 5 s after umount (fstab mount)"

step "a misspelt option fails the mount and names the option"
if err=$(mount -t fuse.dfs "$COORD" "$M" -o "$OPTS,cert_nam=client" 2>&1); then fail "mount with a bad option succeeded"; fi
[[ $err == *'unknown mount option "cert_nam=client"'* ]] || fail "unhelpful message: $err"
mounted && fail "mounted despite a bad option"

step "an unreachable coordinator fails the mount, leaving nothing behind"
dead=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if err=$(mount -t fuse.dfs "127.0.0.1:$dead" "$M" -o "$OPTS,meta_timeout_ms=1000" 2>&1); then fail "mount of a dead coordinator succeeded"; fi
[[ $err == *"without mounting"* ]] || fail "unhelpful message: $err"
grep -q "cannot reach the coordinator" "$DIR/logs/mount-helper.log" || fail "log does not say why"
mounted && fail "mounted with no coordinator"
wait_until 50 no_daemon || fail "dfs-fuse left running after a failed mount"

step "passed"
