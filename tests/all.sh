#!/usr/bin/env bash
# all.sh: every test of the project, the command the README gives and CI runs.
#   1. formatting and lints
#   2. unit, protocol and in-process cluster tests (cargo test)
#   3. the systemd units starting, restarting and stopping a cluster under a real systemd
#      booted in a container (systemd.sh)
#   4. real processes and a real FUSE mount: smoke.sh, posix.sh, unmount.sh, fsx.sh,
#      mount-helper.sh (mount -t fuse.dfs and fstab), cli.sh (the dfs admin command),
#      view.sh (the cluster view in headless Chromium)
#      and the fault scenarios in faults/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n===== %s: %s\n' "$(date +%T)" "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
step "cargo test"
PROPTEST_CASES=${PROPTEST_CASES:-512} cargo test --workspace -q
step "tests/units.sh (systemd units)"
tests/units.sh
step "build binaries"
cargo build --bins -q
step "tests/systemd.sh (the units under a real systemd, in a container)"
tests/systemd.sh
step "tests/smoke.sh"
tests/smoke.sh
step "tests/posix.sh"
tests/posix.sh
step "tests/unmount.sh"
tests/unmount.sh
step "tests/fsx.sh"
tests/fsx.sh
step "tests/mount-helper.sh"
tests/mount-helper.sh
step "tests/cli.sh (the dfs admin command)"
tests/cli.sh
step "tests/view.sh (the live cluster view in headless Chromium)"
tests/view.sh
step "tests/faults/all.sh"
tests/faults/all.sh
step "all tests passed"
