#!/usr/bin/env bash
# faults/all.sh: every fault scenario, each on a fresh cluster, each bounded in time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for t in node-loss unavailable coord-crash netns fsx-kill repair gc corruption disk-full empty-disk; do
  printf '\n--- faults/%s\n' "$t"
  timeout 600 "./$t.sh"
done
