#!/bin/bash
# The cpuid guest sees a CPU with the hypervisor bit set and, under Vireo
# (which always runs on KVM), KVM's signature and feature leaf.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

run_guest cpuid
expect_markers cpuid
expect_match '^@guest: vendor=.+$'
expect_match '^@guest: family=[0-9]+ model=[0-9]+ stepping=[0-9]+$'
expect_line "@guest: hypervisor_bit=1"
if [[ $VMM_IS_VIREO == 1 ]]; then
    expect_match '^@guest: hv_signature=KVMKVMKVM hv_max_leaf=0x4000[0-9a-f]{4}$'
    expect_match '^@guest: kvm_features=0x[0-9a-f]{8}$'
else
    # VIREO_VMM overrides the VMM (e.g. QEMU with TCG): no KVM signature.
    echo "note: VIREO_VMM is set, KVM signature checks skipped"
    expect_match '^@guest: hv_signature='
fi
expect_status 0
pass
