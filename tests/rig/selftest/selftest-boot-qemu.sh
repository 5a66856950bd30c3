#!/usr/bin/env bash
# The peer baseline: Debian's QEMU boots Debian's stock bookworm cloud kernel
# with KVM inside the rig, and the guest init's markers come out.
. "$(dirname "$0")/lib.sh"
kernel=$("$rig" path guest-kernel:bookworm-cloud)
"$rig" initramfs -o "$work/initrd" -c 'echo "@test: cpus=$(nproc) mem=$(sed -n "s/MemTotal: *//p" /proc/meminfo)"'
"$rig" run --work "$work" -- qemu-system-x86_64 -accel kvm -cpu host -m 512M -smp 2 \
	-kernel "$kernel" -initrd "$work/initrd" -append "console=ttyS0 panic=-1 quiet lapic=notscdeadline" \
	-display none -nodefaults -serial stdio -no-reboot | tee "$work/out"
expect "$work/out" '^@vireo-init: ready' "the guest reached its init under QEMU with KVM"
expect "$work/out" '^@test: cpus=2 ' "the guest sees 2 CPUs"
expect "$work/out" '^@vireo-init: done rc=0' "the guest's test script finished"
