#!/bin/bash
# Save/restore and live migration of a running guest (tests/guest/memcount)
# through QMP: file:, exec:, fd:, tcp:, -incoming defer, cancel, and bad
# streams refused with one line (migration.py has the checks).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

elf=$GUEST_DIR/memcount.elf
[[ -f $elf ]] || fail "no guest image $elf"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 "$(dirname "$0")/migration.py" "$dir" "$elf" "${VMM[@]}" || fail "see the lines above"
pass
