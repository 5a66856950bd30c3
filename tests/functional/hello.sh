#!/bin/bash
# The hello guest boots through the PVH entry, prints on COM1 and powers the
# machine off through ACPI; the VMM then exits with status 0.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

run_guest hello
expect_markers hello
expect_line "@guest: hello from the guest"
expect_status 0
pass
