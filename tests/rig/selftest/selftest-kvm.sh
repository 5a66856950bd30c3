#!/usr/bin/env bash
# The rig's KVM offers what Vireo's features need: Xen HVM emulation,
# guest_memfd and SW-protected VMs (the last skipped, visibly, only when the
# rig runs Debian's packaged kernel).
. "$(dirname "$0")/lib.sh"
mode=require
if [ "$("$rig" path rig-flavour)" = packaged ]; then
	echo "NOTICE: the rig runs Debian's packaged kernel: SW-protected VMs are unavailable, that check is skipped"
	mode=skip
fi
"$rig" run --work "$work" -- "$build/tests/rig/kvm-probe" --sw-protected=$mode | tee "$work/out"
expect "$work/out" '^ok: Xen HVM' "KVM_CAP_XEN_HVM has HYPERCALL_MSR, INTERCEPT_HCALL and SHARED_INFO"
expect "$work/out" '^ok: guest_memfd' "KVM_CAP_GUEST_MEMFD is set"
[ $mode = skip ] || expect "$work/out" '^ok: SW-protected VM' "VM type 1 (SW-protected) can be created"
expect "$work/out" '^0 check\(s\) failed' "no probe check failed"
