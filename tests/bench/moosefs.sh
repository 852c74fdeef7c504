#!/usr/bin/env bash
# moosefs.sh up ROOT | down ROOT: the comparison peer of tests/bench.sh, a MooseFS 3.0
# cluster of the same shape as the dfs one (1 master, 3 chunkservers, goal 2) on loopback,
# mounted at ROOT/mnt. Everything (configs, chunks, logs, pids) lives under ROOT; `down`
# stops only the processes `up` recorded in ROOT/pids, by pid, and deletes ROOT.
#
# Knobs: MFS_PORT_BASE (9519; master uses base..base+2, chunkservers base+3..base+5).
set -euo pipefail

cmd=${1:?usage: moosefs.sh up|down ROOT}
ROOT=$(realpath -m "${2:?usage: moosefs.sh up|down ROOT}")
BASE=${MFS_PORT_BASE:-9519}
HOST=127.0.0.1
ML=$BASE CS=$((BASE + 1)) CL=$((BASE + 2))

say() { printf '[moosefs %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }
mounted() { awk -v m="$ROOT/mnt" '$2==m{f=1} END{exit !f}' /proc/mounts; }
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q "127.0.0.1:$1"; }
wait_for() { # SECONDS CMD...
  local t=$1 i; shift
  for ((i = 0; i < t * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
start() { # NAME CMD...: in its own session, pid recorded in ROOT/pids
  local name=$1; shift
  setsid "$@" </dev/null >>"$ROOT/logs/$name.log" 2>&1 &
  echo "$name $!" >>"$ROOT/pids"
}

up() {
  command -v mfsmaster >/dev/null && command -v mfsmount >/dev/null || die "MooseFS not installed"
  id mfs >/dev/null 2>&1 || die "user mfs missing (made by the moosefs-common package)"
  mkdir -p "$ROOT"/{master/data,logs,mnt}
  chmod a+rx "$ROOT" # the daemons run as user mfs
  : >"$ROOT/pids"
  local M=$ROOT/master
  # NICE_LEVEL 0: MooseFS renices itself to -19 by default, which dfs does not do.
  # REMAP: the master refuses chunkservers in 127/8 ("cannot use localhost"); the check
  # runs after the remap, so 127.0.0.1 is remapped to 0.0.0.0, which Linux routes back to
  # loopback. Every listener is still bound to 127.0.0.1 only.
  cat >"$M/mfsmaster.cfg" <<EOF
WORKING_USER = mfs
WORKING_GROUP = mfs
SYSLOG_IDENT = mfsmaster-bench
NICE_LEVEL = 0
DATA_PATH = $M/data
EXPORTS_FILENAME = $M/mfsexports.cfg
TOPOLOGY_FILENAME = $M/mfstopology.cfg
MATOML_LISTEN_HOST = $HOST
MATOML_LISTEN_PORT = $ML
MATOCS_LISTEN_HOST = $HOST
MATOCS_LISTEN_PORT = $CS
MATOCL_LISTEN_HOST = $HOST
MATOCL_LISTEN_PORT = $CL
METADATA_SAVE_FREQ = 1
REMAP_BITS = 32
REMAP_SOURCE_IP_CLASS = $HOST
REMAP_DESTINATION_IP_CLASS = 0.0.0.0
EOF
  printf '%s\t/\trw,alldirs,admin,maproot=0:0\n%s\t.\trw\n' "$HOST" "$HOST" >"$M/mfsexports.cfg"
  : >"$M/mfstopology.cfg"
  cp /var/lib/mfs/metadata.mfs.empty "$M/data/metadata.mfs"
  chown mfs:mfs "$M/data" "$M/data/metadata.mfs"
  for n in 1 2 3; do
    local C=$ROOT/cs$n
    mkdir -p "$C/data" "$C/hdd"
    # MASTER_HOST 0.0.0.0: the chunkserver refuses a master in 127/8 (see REMAP above).
    cat >"$C/mfschunkserver.cfg" <<EOF
WORKING_USER = mfs
WORKING_GROUP = mfs
SYSLOG_IDENT = mfschunkserver-bench$n
NICE_LEVEL = 0
DATA_PATH = $C/data
HDD_CONF_FILENAME = $C/mfshdd.cfg
BIND_HOST = $HOST
MASTER_HOST = 0.0.0.0
MASTER_PORT = $CS
CSSERV_LISTEN_HOST = $HOST
CSSERV_LISTEN_PORT = $((BASE + 2 + n))
HDD_LEAVE_SPACE_DEFAULT = 1GiB
EOF
    echo "$C/hdd" >"$C/mfshdd.cfg"
    chown mfs:mfs "$C/data" "$C/hdd"
  done
  listening "$CL" && die "port $CL is taken (set MFS_PORT_BASE)"
  start master mfsmaster -a -f -c "$M/mfsmaster.cfg" start
  wait_for 60 listening "$CL" || die "master did not listen (see $ROOT/logs/master.log)"
  wait_for 60 listening "$CS" || die "master did not listen for chunkservers"
  for n in 1 2 3; do start "cs$n" mfschunkserver -f -c "$ROOT/cs$n/mfschunkserver.cfg" start; done
  registered() {
    mfscli -H $HOST -P "$CL" -SCS -s '|' 2>/dev/null |
      awk -F'|' -v a=$((BASE + 3)) -v c=$((BASE + 5)) '$1 ~ /chunk servers/ && $3>=a && $3<=c {n++} END{exit !(n>=3)}'
  }
  wait_for 60 registered || die "chunkservers did not register (see $ROOT/logs/cs*.log)"
  start mfsmount mfsmount -f -H $HOST -P "$CL" -o mfsnice=0 -o mfsbind=$HOST -o mfsproxy=$HOST "$ROOT/mnt"
  wait_for 60 mounted || die "mfsmount did not mount (see $ROOT/logs/mfsmount.log)"
  wait_for 30 stat "$ROOT/mnt/." || die "mount not usable"
  # Goal 2 = two copies, like dfs's R = 2. Trash time 0: MooseFS otherwise keeps deleted
  # files for a day, which makes unlink a rename.
  mfssetgoal 2 "$ROOT/mnt" >/dev/null
  mfssettrashtime 0 "$ROOT/mnt" >/dev/null
  say "up: $ROOT/mnt"
}

# The pid of NAME as recorded, if that process is still ours (its command line names ROOT).
pid_of() {
  local pid
  pid=$(awk -v n="$1" '$1==n{p=$2} END{print p}' "$ROOT/pids" 2>/dev/null)
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$ROOT" && echo "$pid"
  return 0
}

down() {
  [[ -d $ROOT ]] || return 0
  if mounted; then umount "$ROOT/mnt" 2>/dev/null || umount -l "$ROOT/mnt" 2>/dev/null || true; fi
  # Mount first, master last: the master saves its metadata on SIGTERM.
  local name pid i
  for name in mfsmount cs1 cs2 cs3 master; do
    pid=$(pid_of "$name")
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do [[ -n $(pid_of "$name") ]] || break; sleep 0.2; done
    [[ -z $(pid_of "$name") ]] || { say "$name ($pid) ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
  done
  mounted && { umount -l "$ROOT/mnt" 2>/dev/null || true; }
  rm -rf --one-file-system "$ROOT"
  say "down: $ROOT removed"
}

case $cmd in
  up) up ;;
  down) down ;;
  pids) [[ -f $ROOT/pids ]] && awk '{print $1, $2}' "$ROOT/pids" ;;
  *) die "usage: moosefs.sh up|down ROOT" ;;
esac
