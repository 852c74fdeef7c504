#!/usr/bin/env bash
# systemd.sh: the units in systemd/ start, restart and stop a real cluster under a real
# systemd. tests/units.sh only parses them; this boots Debian 12 with systemd as PID 1 in
# a container (systemd-nspawn -b), installs dfs in it by the steps of systemd/README.md,
# and checks from the host (nsenter into the container):
#   1. systemctl start dfs-coord dfs-node@1 dfs-node@2 dfs-node@3: each unit is active,
#      which for Type=notify means systemd received READY=1, under the units' hardening
#      (User=dfs, ProtectSystem=strict, no capabilities); the coordinator's port is bound
#      by then and `dfs status` shows 3 nodes up;
#   2. dfs-fuse@mnt-dfs mounts /mnt/dfs: a file written there reads back; then the same
#      through mnt-dfs.mount (mount -t fuse.dfs via /sbin/mount.fuse.dfs), which reads the
#      file back through a fresh mount;
#   3. Restart=on-failure: kill -9 of a node's MainPID, systemd starts it again, active;
#   4. systemctl stop of everything: every unit inactive (not failed), no mount, no daemon;
#   5. with the cluster and three mounts (mnt-dfs.mount, dfs-fuse@srv-dfs, an fstab line
#      at /srv/fstab) running again,
#      poweroff (SIGRTMIN+4, as machinectl sends): the mounts stop before the nodes, the nodes before the coordinator, no unit
#      fails, nspawn exits 0, and no mount, process, cgroup or network link is left on the
#      host.
#
# Needs root, /dev/fuse, debootstrap and systemd-container (systemd-nspawn), and built
# binaries (cargo build --bins; DFS_BIN_DIR or DFS_PROFILE choose them). The Debian root
# (about 250 MB; debootstrap takes ~40 s with a fast mirror) is cached in
# $DFS_ROOTFS_CACHE (default /var/cache/dfs-test) and rebuilt when missing; every run
# boots a copy of it. On failure the container's journal (journal.txt, and journal/ for
# `journalctl -D`) and the console log stay in the run's directory; DFS_KEEP=1 keeps the
# whole root too.
#
# Host without systemd: PID 1 here is not systemd, so there is no machined (nspawn runs
# with --register=no) and no unit to put the container in (--keep-unit: nspawn stays in
# the cgroup it was started in, which this script creates and removes). --private-network
# gives the container a loopback of its own, so its ports cannot collide with the host's.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${DFS_BIN_DIR:-$HERE/../target/${DFS_PROFILE:-debug}}
CACHE=${DFS_ROOTFS_CACHE:-/var/cache/dfs-test}
MIRROR=${DFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd-sysv: /sbin/init; dbus: systemctl and logind expect the system bus; fuse3:
# /dev/fuse's user-space side (fusermount3) as a user would have it; procps: pgrep.
PACKAGES=systemd,systemd-sysv,dbus,fuse3,procps
IMAGE=$CACHE/bookworm-systemd
MACHINE=dfs-systemd-$$
CG=dfs-systemd-test.$$
T0=$(date +%s)

pass() { echo "systemd.sh: PASS: $*"; }
fail() {
  echo "systemd.sh: FAIL: $*" >&2
  exit 1
}
step() { printf '[systemd.sh %s] %s\n' "$(date +%T)" "$*"; }

[[ $(id -u) == 0 ]] || fail "must run as root (boots a container)"
for tool in systemd-nspawn debootstrap nsenter; do
  command -v $tool >/dev/null || fail "$tool missing (apt-get install debootstrap systemd-container)"
done
[[ -c /dev/fuse ]] || fail "/dev/fuse missing"
BIN=$(cd "$BIN" && pwd) || fail "no binaries directory (cargo build --bins)"
for b in dfs dfs-coord dfs-node dfs-fuse; do
  [[ -x $BIN/$b ]] || fail "$BIN/$b missing (cargo build --bins)"
done

DIR=$(mktemp -d /tmp/dfs-systemd.XXXXXX)
ROOT=$DIR/root
NSPAWN=
CPID=
WATCHDOG=
LINKS_BEFORE=$(ip -o link 2>/dev/null | wc -l || echo 0)
# nspawn creates /run/systemd/nspawn/{locks,propagate} on first use and leaves them.
NSPAWN_RUN=; [[ -e /run/systemd/nspawn ]] || NSPAWN_RUN=/run/systemd/nspawn

# The cgroup directories the container runs in, one per mounted hierarchy that systemd
# uses: cgroup v1's name=systemd plus v2 (at /sys/fs/cgroup/unified on a hybrid host like
# this one, or at /sys/fs/cgroup on a pure v2 host).
cgroup_roots() {
  local h
  for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [[ -f $h/cgroup.procs ]] && echo "$h"
  done
  return 0
}
cgroup_pids() {
  local h
  for h in $(cgroup_roots); do
    [[ -d $h/$CG ]] && { find "$h/$CG" -name cgroup.procs -exec cat {} + 2>/dev/null || true; }
  done
  return 0
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  # Best effort from here: one failing step must not skip the rest of the cleanup.
  set +e
  [[ -n $WATCHDOG ]] && kill "$WATCHDOG" 2>/dev/null
  if ((rc != 0)) && [[ -n $CPID ]] && kill -0 "$CPID" 2>/dev/null; then
    # Save what the container's journal says while systemd still runs it.
    timeout 30 nsenter -t "$CPID" -a journalctl --no-pager -o short-monotonic >"$DIR/journal.txt" 2>&1 || true
  fi
  if [[ -n $NSPAWN ]] && kill -0 "$NSPAWN" 2>/dev/null; then
    # SIGTERM: nspawn asks the container's systemd to halt; then no more patience.
    kill -TERM "$NSPAWN" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$NSPAWN" 2>/dev/null || true
  fi
  # Anything of the container still alive is in our cgroup (this is how the processes
  # started here are found, by id, and no others).
  for p in $(cgroup_pids); do kill -KILL "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do [[ -z $(cgroup_pids) ]] && break; sleep 0.1; done
  # Mounts nspawn made under the root, deepest first (normally none are left).
  awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for h in $(cgroup_roots); do
    [[ -d $h/$CG ]] && find "$h/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null || true
  [[ -n $NSPAWN_RUN ]] && find "$NSPAWN_RUN" -depth -type d -empty -delete 2>/dev/null
  if [[ -n ${DFS_KEEP:-} ]]; then
    echo "systemd.sh: everything kept in $DIR (DFS_KEEP)" >&2
  elif ((rc == 0)); then
    rm -rf "$DIR"
  else
    # Keep the logs, not the 800 MB root.
    if [[ -d $ROOT/var/log/journal ]]; then
      cp -a "$ROOT/var/log/journal" "$DIR/journal" 2>/dev/null || true
      [[ -s $DIR/journal.txt ]] || journalctl -D "$DIR/journal" --no-pager -o short-monotonic >"$DIR/journal.txt" 2>&1 || true
    fi
    rm -rf "$ROOT"
    echo "systemd.sh: logs kept in $DIR (journal.txt, console.log; journalctl -D $DIR/journal)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "systemd.sh: FAIL: stopped by SIGTERM" >&2; exit 143' TERM
trap 'echo "systemd.sh: FAIL: interrupted" >&2; exit 130' INT
# A hard limit on the whole run, on top of the limit on every single wait below.
# (Its sleep must not hold our stdout open once killed, or a pipe reading us never ends.)
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "${DFS_SYSTEMD_TIMEOUT:-900}" </dev/null >/dev/null 2>&1 &
  s=$!
  wait "$s" || exit 0
  echo "systemd.sh: FAIL: the whole test took over ${DFS_SYSTEMD_TIMEOUT:-900} s" >&2
  kill -TERM $$
) &
WATCHDOG=$!

# until_true SECONDS CMD...: polls CMD every 0.2 s; false once SECONDS have passed.
until_true() {
  local end=$(($(date +%s) + $1))
  shift
  until "$@"; do
    (($(date +%s) < end)) || return 1
    sleep 0.2
  done
}

# --- the Debian root, cached ------------------------------------------------------------
mkdir -p "$CACHE"
(
  # One builder at a time; a half-built root never takes the cached name.
  flock -w 900 9 || fail "could not lock $CACHE/.lock"
  if [[ $(cat "$IMAGE/.dfs-packages" 2>/dev/null) != "$PACKAGES" ]]; then
    step "debootstrap bookworm into $IMAGE (cache missing or stale)"
    t=$(date +%s)
    # A second attempt if the first fails: a download cut short by the network is not
    # what this test is about. A second failure is reported with the log.
    ok=
    for attempt in 1 2; do
      rm -rf "$IMAGE.new"
      if timeout 600 debootstrap --variant=minbase --include="$PACKAGES" bookworm "$IMAGE.new" \
        "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        ok=1
        break
      fi
      step "debootstrap attempt $attempt failed: $(tail -1 "$CACHE/debootstrap.log")"
      ((attempt == 2)) || sleep 5
    done
    [[ -n $ok ]] || fail "debootstrap failed twice (see $CACHE/debootstrap.log)"
    echo "$PACKAGES" >"$IMAGE.new/.dfs-packages"
    rm -rf "$IMAGE"
    mv "$IMAGE.new" "$IMAGE"
    step "debootstrap took $(($(date +%s) - t)) s"
  fi
) 9>"$CACHE/.lock"
step "copy the root to $ROOT"
cp -a "$IMAGE" "$ROOT"
# A persistent journal, so that a failed run's log survives the container.
mkdir -p "$ROOT/var/log/journal"

# What the install steps need, bound read-only into the container at /opt/dfs: the
# binaries (as target/release, the README's path) and the repository's systemd/ folder.
mkdir -p "$DIR/src"
cat >"$DIR/src/install.sh" <<'EOF'
# Runs inside the container, as root: systemd/README.md's install steps for a one-host
# cluster (coordinator, nodes 1-3, a mount), with addresses on 127.0.0.1.
set -euo pipefail
cd /opt/dfs
install -m 0755 target/release/dfs-coord target/release/dfs-node target/release/dfs-fuse \
  target/release/dfs /usr/local/bin/
ln -sf /usr/local/bin/dfs-fuse /sbin/mount.fuse.dfs
useradd --system --home-dir /var/lib/dfs --no-create-home --shell /usr/sbin/nologin dfs
install -d -m 0750 -o root -g dfs /etc/dfs /etc/dfs/certs
# The cluster's certificates, made where ca.key stays (here /root/pki).
dfs-coord init --certs /root/pki --nodes 3 >/dev/null
cd /root/pki
install -m 0640 -o root -g dfs ca.crt coord.crt coord.key node-1.crt node-1.key \
  node-2.crt node-2.key node-3.crt node-3.key client.crt client.key /etc/dfs/certs/
# The admin's certificate, for `dfs status` (default cluster directory /etc/dfs).
install -m 0600 admin.crt admin.key /etc/dfs/certs/
echo 127.0.0.1:7000 >/etc/dfs/coord-addr
cd /opt/dfs
# The example files, edited as the README says ("then edit it") for one host.
sed 's/^listen = .*/listen = "127.0.0.1:7000"/' systemd/coord.toml >/tmp/coord.toml
install -m 0640 -o root -g dfs /tmp/coord.toml /etc/dfs/coord.toml
for n in 1 2 3; do
  sed -e "s/node-1/node-$n/g" -e 's/^coord = .*/coord = "127.0.0.1:7000"/' \
    -e "s/^listen = .*/listen = \"127.0.0.1:700$n\"/" \
    -e "s/^advertise = .*/advertise = \"127.0.0.1:700$n\"/" systemd/node.toml >/tmp/node-$n.toml
  install -m 0640 -o root -g dfs /tmp/node-$n.toml /etc/dfs/node-$n.toml
done
sed 's/^coord = .*/coord = "127.0.0.1:7000"/' systemd/fuse.toml >/tmp/fuse.toml
install -m 0640 -o root -g dfs /tmp/fuse.toml /etc/dfs/fuse.toml
# And the fstab way (noauto: mounted by the test, not at the next boot).
echo "127.0.0.1:7000  /srv/fstab  fuse.dfs  _netdev,noauto,config=/etc/dfs/fuse.toml  0 0" >>/etc/fstab
cp systemd/*.service systemd/*.mount /etc/systemd/system/ && systemctl daemon-reload
systemctl enable dfs-coord dfs-node@1 dfs-node@2 dfs-node@3 2>/dev/null
EOF

# --- boot -------------------------------------------------------------------------------
step "boot the container ($MACHINE)"
T1=$(date +%s)
for h in $(cgroup_roots); do mkdir "$h/$CG"; done
# The subshell moves itself into the new cgroups, then becomes systemd-nspawn.
(
  for h in $(cgroup_roots); do echo $BASHPID >"$h/$CG/cgroup.procs"; done
  exec systemd-nspawn --quiet --boot --directory="$ROOT" --machine="$MACHINE" \
    --register=no --keep-unit --private-network --console=pipe \
    --bind=/dev/fuse --bind-ro="$BIN:/opt/dfs/target/release" \
    --bind-ro="$HERE/../systemd:/opt/dfs/systemd" --bind-ro="$DIR/src/install.sh:/opt/dfs/install.sh"
) </dev/null >"$DIR/console.log" 2>&1 &
NSPAWN=$!
# The container's PID 1 (systemd) is nspawn's child.
for _ in $(seq 100); do
  CPID=$(pgrep -P "$NSPAWN" -x systemd || true)
  [[ -n $CPID ]] && break
  kill -0 "$NSPAWN" 2>/dev/null || fail "systemd-nspawn exited: $(tail -5 "$DIR/console.log")"
  sleep 0.1
done
[[ -n $CPID ]] || fail "no systemd in the container after 10 s"

# in_ct CMD...: runs CMD inside the container (all its namespaces and its root), with a
# clean environment and a time limit, so that no step can hang the test.
in_ct() {
  timeout "${LIMIT:-60}" nsenter -t "$CPID" -a -r -w env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
# systemctl needs systemd's private socket, which appears a moment after PID 1 starts.
until_true 60 in_ct test -S /run/systemd/private || fail "the container's systemd did not open its socket in 60 s"
state=$(LIMIT=120 in_ct systemctl is-system-running --wait 2>&1 || true)
case $state in
  running) pass "the container booted systemd $(in_ct systemctl --version | head -1 | awk '{print $2}') in $(($(date +%s) - T1)) s" ;;
  degraded) pass "the container booted (degraded: $(in_ct systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' '))" ;;
  *) fail "the container's systemd did not finish booting: $state" ;;
esac

step "install dfs as systemd/README.md says"
in_ct bash /opt/dfs/install.sh || fail "install steps failed"

# show UNIT PROP: one property of a unit.
show() { in_ct systemctl show -P "$2" "$1"; }
nodes_up() { [[ $(in_ct dfs status --json 2>/dev/null | grep -o '"state":"up"' | wc -l) == "$1" ]]; }
UNITS="dfs-coord dfs-node@1 dfs-node@2 dfs-node@3"

# --- 1. start: active = READY=1 received ----------------------------------------------
step "systemctl start $UNITS"
LIMIT=100 in_ct systemctl start $UNITS || fail "systemctl start failed"
for u in $UNITS; do
  [[ $(show $u Type) == notify ]] || fail "$u is not Type=notify"
  # A notify service leaves 'activating' only on READY=1 (or fails on the start timeout),
  # so active after `systemctl start` returned means the daemon sent READY=1.
  [[ $(show $u ActiveState)/$(show $u SubState) == active/running ]] ||
    fail "$u is $(show $u ActiveState)/$(show $u SubState) after start"
  [[ $(show $u User) == dfs ]] || fail "$u does not run as dfs"
  [[ $(in_ct ps -o user= -p "$(show $u MainPID)" | tr -d " ") == dfs ]] || fail "$u's process is not user dfs"
done
# READY=1 came no earlier than the coordinator listening: its UDP port 7000 (0x1B58) was
# bound when start returned.
in_ct grep -qi ':1B58 ' /proc/net/udp || fail "dfs-coord is active but nothing listens on UDP 7000"
# After=dfs-coord.service plus Type=notify: no node was started before the coordinator
# was ready.
ready=$(show dfs-coord ActiveEnterTimestampMonotonic)
for n in 1 2 3; do
  started=$(show dfs-node@$n ExecMainStartTimestampMonotonic)
  ((started >= ready)) || fail "dfs-node@$n started ($started) before dfs-coord was ready ($ready)"
done
pass "dfs-coord and dfs-node@1..3 active after READY=1, as user dfs under ProtectSystem=strict; nodes started after the coordinator was ready"
until_true 30 nodes_up 3 || fail "dfs status does not show 3 nodes up: $(in_ct dfs status 2>&1)"
pass "dfs status shows 3 nodes up"

# --- 2. the mount, as a service and as a mount unit --------------------------------------
step "systemctl start dfs-fuse@mnt-dfs"
LIMIT=100 in_ct systemctl start dfs-fuse@mnt-dfs || fail "systemctl start dfs-fuse@mnt-dfs failed"
[[ $(show dfs-fuse@mnt-dfs ActiveState) == active ]] || fail "dfs-fuse@mnt-dfs not active"
in_ct grep -q ' /mnt/dfs fuse' /proc/mounts || fail "dfs-fuse@mnt-dfs active but /mnt/dfs not mounted"
in_ct sh -c 'head -c 3000000 /dev/urandom >/root/one && cp /root/one /mnt/dfs/one && cmp /root/one /mnt/dfs/one' ||
  fail "write and read back through dfs-fuse@mnt-dfs"
pass "dfs-fuse@mnt-dfs: active once mounted; a 3 MB file reads back"
LIMIT=100 in_ct systemctl stop dfs-fuse@mnt-dfs || fail "systemctl stop dfs-fuse@mnt-dfs"
in_ct grep -q ' /mnt/dfs ' /proc/mounts && fail "/mnt/dfs still mounted after stop"
step "systemctl start mnt-dfs.mount (mount -t fuse.dfs)"
LIMIT=100 in_ct systemctl start mnt-dfs.mount || fail "systemctl start mnt-dfs.mount failed"
[[ $(show mnt-dfs.mount ActiveState) == active ]] || fail "mnt-dfs.mount not active"
# Mounted, it is still ordered as a network mount, after remote-fs-pre.target like
# dfs-fuse@, so it too stops before the servers on this host (see mnt-dfs.mount).
[[ " $(show mnt-dfs.mount After) " == *" remote-fs-pre.target "* ]] ||
  fail "mnt-dfs.mount is not ordered after remote-fs-pre.target: $(show mnt-dfs.mount After)"
in_ct cmp /root/one /mnt/dfs/one || fail "the file differs when read through mnt-dfs.mount"
pass "mnt-dfs.mount: mounted through mount.fuse.dfs; the file reads back through the new mount"

# --- 3. Restart=on-failure ---------------------------------------------------------------
old=$(show dfs-node@2 MainPID)
step "kill -9 dfs-node@2 (pid $old in the container)"
in_ct kill -9 "$old"
restarted() { [[ $(show dfs-node@2 NRestarts) -ge 1 && $(show dfs-node@2 ActiveState) == active && $(show dfs-node@2 MainPID) != "$old" ]]; }
until_true 30 restarted || fail "dfs-node@2 not restarted: $(show dfs-node@2 ActiveState), NRestarts=$(show dfs-node@2 NRestarts)"
new=$(show dfs-node@2 MainPID)
# The new process, not the dead one's stale entry, registered with the coordinator.
registered() { in_ct journalctl -o cat -u dfs-node@2 _PID="$new" | grep -q 'registered with the coordinator'; }
until_true 30 registered || fail "the restarted dfs-node@2 (pid $new) did not register with the coordinator"
until_true 30 nodes_up 3 || fail "node 2 did not come back up: $(in_ct dfs status 2>&1)"
pass "dfs-node@2 killed with SIGKILL: restarted by systemd (pid $old -> $new), active, registered again"

# --- 4. stop -----------------------------------------------------------------------------
# Nodes before the coordinator: systemctl sends one stop request per unit, in the order
# given, and systemd starts each stop job at once, so with the coordinator named first it
# would stop first (reverse After= ordering only applies to jobs queued together, e.g. at
# shutdown).
STOP="mnt-dfs.mount dfs-node@1 dfs-node@2 dfs-node@3 dfs-coord"
step "systemctl stop $STOP"
LIMIT=100 in_ct systemctl stop $STOP || fail "systemctl stop failed"
for u in $STOP; do
  s=$(show $u ActiveState)
  [[ $s == inactive ]] || fail "$u is $s after stop (Result=$(show $u Result))"
done
in_ct grep -q ' /mnt/dfs ' /proc/mounts && fail "/mnt/dfs still mounted after stop"
in_ct pgrep -l 'dfs-' && fail "dfs processes left after stop"
pass "every unit inactive (not failed) after stop; no mount, no daemon left"
# Every READY=1 and STOPPING=1 reached its listener (a daemon warns when one does not).
warn=$(in_ct journalctl -o cat --no-pager | grep 'failed to notify' || true)
[[ -z $warn ]] || fail "notification failures in the journal: $warn"
pass "no failed readiness notification in the journal"

# --- 5. shut down with everything running; nothing left on the host ------------------------
# As at a reboot: the cluster and its mount are up when the machine goes down, and the
# mount must go first (it flushes buffered writes to the nodes on SIGTERM), then the
# nodes, then the coordinator.
# Every kind of mount: mnt-dfs.mount at /mnt/dfs, dfs-fuse@srv-dfs at /srv/dfs, and the
# fstab line at /srv/fstab (srv-fstab.mount, made by systemd-fstab-generator).
MOUNTS="mnt-dfs.mount dfs-fuse@srv-dfs srv-fstab.mount"
step "start everything again, then power off with it running"
LIMIT=100 in_ct systemctl start $UNITS $MOUNTS || fail "systemctl start (before poweroff) failed"
[[ $(in_ct grep -c ' fuse.dfs ' /proc/mounts) == 3 ]] || fail "expected 3 dfs mounts before poweroff: $(in_ct grep fuse /proc/mounts)"
# Mounted, the fstab line too is a network mount to systemd (mount.fuse.dfs gives the
# kernel the source under which mount(8) recorded _netdev, see dfs_fuse::HELPER_ENV).
[[ " $(show srv-fstab.mount After) " == *" remote-fs-pre.target "* ]] ||
  fail "the mounted fstab line is not ordered after remote-fs-pre.target: $(show srv-fstab.mount After)"
# `dfs where` takes a path through a local dfs mount: it must recognise this one too.
out=$(in_ct dfs where /srv/fstab/one 2>&1) || fail "dfs where does not recognise the fstab mount: $out"
in_ct logger -t dfs-test "poweroff with dfs running"
# SIGRTMIN+4 to the container's PID 1 is systemd's "start poweroff.target" (what
# machinectl poweroff sends); `systemctl poweroff` would race with the bus going away.
step "poweroff (SIGRTMIN+4 to the container's systemd)"
kill -s RTMIN+4 "$CPID" || fail "cannot signal the container's systemd"
until_true 60 eval '! kill -0 $NSPAWN 2>/dev/null' || fail "the container did not power off within 60 s"
rc=0
wait "$NSPAWN" || rc=$?
NSPAWN=
CPID=
((rc == 0)) || fail "systemd-nspawn exited with $rc: $(tail -5 "$DIR/console.log")"
[[ -z $(cgroup_pids) ]] && pass "the container powered off cleanly (nspawn exit 0)" ||
  fail "processes left in the container's cgroup: $(cgroup_pids | tr '\n' ' ')"
# The order of the stops, from the container's journal (read from the host now), by the
# messages of its systemd (one process, so in order; the daemons' own lines may reach
# journald a few milliseconds late): no node's stop job began before both mounts were
# gone, and the coordinator's not before every node had stopped.
journalctl -D "$ROOT/var/log/journal" -o short-monotonic --no-pager >"$DIR/journal.txt" 2>&1 ||
  fail "cannot read the container's journal"
# line first|last TEXT: the first or last line number after the marker of a message of
# the container's systemd containing TEXT.
line() {
  awk -v how="$1" -v pat="$2" 'f && index($0, "systemd[1]: ") && index($0, pat) {
      if (how == "last" || n == "") n = NR }
    /poweroff with dfs running/ {f=1} END {print n}' "$DIR/journal.txt"
}
mnt=$(line last "Unmounted mnt-dfs.mount")
srv=$(line last "Stopped dfs-fuse@srv-dfs.service")
tab=$(line last "Unmounted srv-fstab.mount")
node_first=$(line first "Stopping dfs-node@")
node_last=$(line last "Stopped dfs-node@")
coord=$(line first "Stopping dfs-coord.service")
[[ -n $mnt && -n $srv && -n $tab && -n $node_first && -n $node_last && -n $coord ]] ||
  fail "the shutdown's stops are not all in the journal ($DIR/journal.txt)"
((mnt < node_first && srv < node_first && tab < node_first)) ||
  fail "at poweroff a node was stopped before the mounts were gone (journal.txt lines $node_first; $mnt, $srv, $tab)"
((node_last < coord)) || fail "at poweroff the coordinator was stopped before the nodes (journal.txt lines $coord; $node_last)"
failed=$(awk 'f && /dfs.*Failed with result/ {print} /poweroff with dfs running/ {f=1}' "$DIR/journal.txt")
[[ -z $failed ]] || fail "a unit failed at poweroff: $failed"
pass "at poweroff the three mounts went first, then the nodes, then the coordinator; no unit failed"
left=$(awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1' /proc/mounts)
[[ -z $left ]] || fail "mounts left behind: $left"
for h in $(cgroup_roots); do
  find "$h/$CG" -depth -type d -exec rmdir {} \;
  if [[ -d $h/$CG ]]; then fail "cannot remove cgroup $h/$CG"; fi
done
[[ $(ip -o link 2>/dev/null | wc -l || echo 0) == "$LINKS_BEFORE" ]] || fail "network links changed: $(ip -o link)"
[[ -e /run/systemd/nspawn/propagate/$MACHINE ]] && fail "/run/systemd/nspawn/propagate/$MACHINE left behind"
pass "nothing left behind on the host (mounts, processes, cgroups, links)"
echo "systemd.sh: all checks passed in $(($(date +%s) - T0)) s"
