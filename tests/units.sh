#!/usr/bin/env bash
# units.sh: the systemd unit files (services and the example .mount) parse and reference
# real directives, and the services are Type=notify.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../systemd"
command -v systemd-analyze >/dev/null || { echo "units.sh: systemd-analyze missing; skipped"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# verify needs the ExecStart binaries to exist; point the units at stand-ins.
for b in dfs-coord dfs-node dfs-fuse; do printf '#!/bin/sh\n' >"$tmp/$b"; chmod +x "$tmp/$b"; done
for u in *.service *.mount; do
  name=$u; [[ $u == *@.service ]] && name=${u/@/@test}
  sed "s#/usr/local/bin/#$tmp/#g" "$u" >"$tmp/$name"
done
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.mount 2>&1 | grep -v "Cannot add dependency job\|Failed to \(put\|create\) bus\|is not a symlink\|Unknown user\|Unknown group\|No such file" || true)
if [[ -n $out ]]; then echo "$out"; echo "units.sh: FAIL"; exit 1; fi
# The daemons send READY=1 (dfs_ops::sd_notify); a unit that does not wait for it would
# let dependants start too early.
for u in *.service; do grep -qx "Type=notify" "$u" || { echo "units.sh: FAIL: $u is not Type=notify"; exit 1; }; done
echo "units.sh: all units verify"
