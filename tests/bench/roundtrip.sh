#!/usr/bin/env bash
# roundtrip.sh DIR [N]: what one metadata round trip costs on a running cluster started
# with `tests/cluster.sh up DIR` (use DFS_PROFILE=release for figures that mean anything).
# Runs N mkdir then N rmdir (default 3000) in DIR/mnt and prints, per operation: wall
# clock, CPU time and context switches of the coordinator and of the mount (from /proc,
# all threads), and UDP datagrams sent on the machine (/proc/net/snmp; other traffic on
# loopback counts too, so keep the machine quiet). docs/PERFORMANCE.md, "Issue 12",
# has the figures this measured before and after each change.
set -euo pipefail
DIR=${1:?usage: roundtrip.sh DIR [N]}
N=${2:-3000}
C=$(cat "$DIR/pids/coord.pid") M=$(cat "$DIR/pids/mount.pid")
D=$DIR/mnt/roundtrip.$$
mkdir -p "$D"
trap 'rm -rf "$D"' EXIT
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{s += $2} END{print s}'; }
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
datagrams() { awk '/^Udp:/{getline; print $5}' /proc/net/snmp; }
hz=$(getconf CLK_TCK)
c0=$(switches "$C") m0=$(switches "$M") ct0=$(ticks "$C") mt0=$(ticks "$M") u0=$(datagrams)
wall=$(python3 - "$D" "$N" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t = time.time()
for i in range(n):
    os.mkdir(f"{d}/e{i}")
for i in range(n):
    os.rmdir(f"{d}/e{i}")
print((time.time() - t) / (2 * n) * 1e6)
PY
)
c1=$(switches "$C") m1=$(switches "$M") ct1=$(ticks "$C") mt1=$(ticks "$M") u1=$(datagrams)
ops=$((2 * N))
awk -v w="$wall" -v ops="$ops" -v hz="$hz" \
  -v cc=$((c1 - c0)) -v mc=$((m1 - m0)) -v ct=$((ct1 - ct0)) -v mt=$((mt1 - mt0)) -v u=$((u1 - u0)) \
  'BEGIN{printf "per op: wall %.0f us | coordinator %.0f us CPU, %.1f switches | mount %.0f us CPU, %.1f switches | %.1f UDP datagrams\n",
    w, ct/hz/ops*1e6, cc/ops, mt/hz/ops*1e6, mc/ops, u/ops}'
