#!/bin/bash
# QEMU's snapshot jobs over background snapshots (snapshot-jobs.py): save while
# memcount runs, load back to the saved generation and disk, delete, refusals.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

elf=$GUEST_DIR/memcount.elf
[[ -f $elf ]] || fail "no guest image $elf"
dir=$(mktemp -d)
if ! python3 "$(dirname "$0")/snapshot-jobs.py" "$dir" "$elf" "${VMM[@]}"; then
    for log in "$dir"/*.log; do echo "--- $log"; cat "$log"; done
    rm -rf "$dir"
    fail "see the lines above"
fi
rm -rf "$dir"
pass
