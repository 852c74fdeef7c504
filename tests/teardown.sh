# Sourced by the test scripts. teardown DIR RC [OWNED]: stops the cluster in DIR. A test
# that passed (RC 0) and made DIR itself (OWNED non-empty) deletes it; otherwise only the
# logs stay (`cluster.sh down --purge`), because a failed fsx run can leave gigabytes of
# shards behind and a CI machine's disk is not endless. DFS_KEEP=1 keeps everything.
teardown() {
  local dir=$1 rc=$2 owned=${3:-}
  local cl; cl="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster.sh"
  [[ -d $dir ]] || return 0
  if [[ -n ${DFS_KEEP:-} ]]; then
    "$cl" down "$dir" >/dev/null 2>&1 || true
    echo "state kept in $dir (DFS_KEEP)" >&2
  elif ((rc == 0)) && [[ -n $owned ]]; then
    "$cl" down "$dir" --purge >/dev/null 2>&1 && rm -rf "$dir"
  else
    "$cl" down "$dir" --purge >/dev/null 2>&1 || true
    ((rc == 0)) || echo "logs kept in $dir/logs" >&2
  fi
  return 0
}

# A test stopped by a signal (timeout(1) sends SIGTERM) must count as failed: without
# these, the EXIT trap can see status 0 and delete the logs of a run that never finished.
trap 'exit 143' TERM
trap 'exit 130' INT
