#!/bin/bash
# Background snapshots of a running guest (tests/guest/memcount): the guest runs
# on while the snapshot is written, the restore holds its start, cancel and
# a failing target leave the guest running (background-snapshot.py).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

elf=$GUEST_DIR/memcount.elf
[[ -f $elf ]] || fail "no guest image $elf"
dir=$(mktemp -d)
if ! python3 "$(dirname "$0")/background-snapshot.py" "$dir" "$elf" "${VMM[@]}"; then
    for log in "$dir"/*.log; do echo "--- $log"; cat "$log"; done
    rm -rf "$dir"
    fail "see the lines above"
fi
rm -rf "$dir"
pass
