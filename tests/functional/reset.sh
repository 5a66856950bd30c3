#!/bin/bash
# A guest reset (ACPI reset register) reboots the VM: the guest boots a
# second time with its RAM kept and powers off. With -no-reboot the VMM
# exits at the reset instead, with status 0.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

REBOOT_OPTION="" run_guest reset
expect_line "@guest: first boot: resetting through port 0xcf9"
expect_line "@guest: second boot after the reset"
expect_line "@guest: pass"
expect_status 0

run_guest reset
expect_line "@guest: first boot: resetting through port 0xcf9"
if grep -Fq "second boot" <<<"$OUTPUT"; then
    fail "with -no-reboot the guest booted again"
fi
expect_status 0
pass
