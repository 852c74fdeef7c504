#!/usr/bin/env bash
# faults/all.sh: every fault scenario, each on a fresh cluster, each bounded in time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for t in node-loss unavailable coord-crash coord-restart restart netns fsx-kill repair gc corruption disk-full empty-disk; do
  printf '\n--- faults/%s\n' "$t"
  # fsx-kill runs 2 x 30,000 verified operations: a few minutes on 2 cores, more on a
  # busy machine. Every other scenario takes a minute or two at most.
  limit=600; [[ $t == fsx-kill ]] && limit=1800
  timeout "$limit" "./$t.sh"
done
