#!/usr/bin/env bash
# virtio-console and virtio-rng with bookworm's cloud kernel in the rig: a
# login shell on hvc0 driven by a client of the console's socket chardev,
# and /dev/hwrng fed by -object rng-random (virtio-console-debian.py).
# VIREO_RIG_REFERENCE=1 also runs the same checks under Debian's QEMU, to
# show the test expects what QEMU does; QEMU's result is reported but does
# not decide the test (it echoes typed input byte by byte, which a loaded rig
# can slow past the step limits), so a plain run leaves it out.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm="$build/vireo-system-x86_64"
kernel=$("$rig" path guest-kernel:bookworm-cloud)
modules=$("$rig" path guest-modules:bookworm-cloud)
# setsid -c makes hvc0 the shell's controlling terminal, as getty would.
"$rig" initramfs -o "$work/initrd" -m virtio_pci -m virtio_console -m virtio-rng --modules-dir "$modules" -c '
echo "@test: rng_current=$(cat /sys/class/misc/hw_random/rng_current)"
echo "@test: hwrng=$(head -c 64 /dev/hwrng | od -An -v -tx1 | tr -d " \n")"
printf "%s\n" "echo \"@hvc: banner on \$(tty)\"" "PS1=\"hvc\$ \"" > /etc/profile
setsid -c sh -l <>/dev/hvc0 >&0 2>&1
echo "@test: hvc shell exited"'
reference=":"
if [ "${VIREO_RIG_REFERENCE:-0}" = 1 ]; then
	reference="python3 '$src/tests/system/virtio-console-debian.py' qemu '$work/initrd' '$kernel' qemu-system-x86_64 -accel kvm -cpu host"
fi
cat > "$work/job.sh" <<EOF
python3 '$src/tests/system/virtio-console-debian.py' vireo '$work/initrd' '$kernel' '$vmm'
v=\$?
$reference
q=\$?
echo "=== status vireo=\$v qemu=\$q"
EOF
# Two rig vCPUs: hvc's console driver busy-waits with interrupts off for
# Vireo to take each buffer, and in a one-vCPU rig that spin froze the
# whole rig, its own timer included, in most runs (docs/rig.md).
"$rig" run --mem 3G --smp 2 --tcg-thread multi --work "$work" -- sh "$work/job.sh" | tee "$work/out"
expect "$work/out" "^=== status vireo=0 " "Vireo: console shell and hwrng as a user sees them"
if [ "${VIREO_RIG_REFERENCE:-0}" != 1 ]; then
	echo "note: QEMU's reference run left out (VIREO_RIG_REFERENCE=1 adds it)"
elif grep -qE "^=== status .* qemu=0" "$work/out"; then
	echo "ok: QEMU 10.0 passes the same checks"
else
	echo "note: QEMU 10.0 did not pass the same checks in this run (reference only; see its lines above)"
fi
