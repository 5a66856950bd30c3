#!/bin/bash
# The poweroff guest finds PM1a_CNT and \_S5 through the ACPI tables the VMM
# builds, and entering S5 makes the VMM exit with status 0.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

run_guest poweroff
expect_markers poweroff
expect_match '^@guest: rsdp=0x[0-9a-f]+ source=(start_info|scan) revision=[0-9]+$'
expect_match '^@guest: pm1a_cnt=0x[0-9a-f]+ slp_typ=[0-7]$'
expect_status 0
pass
