#!/usr/bin/env bash
# Debian's own QMP client (python3-qemu-qmp, from `rig assets`) drives Vireo
# running bookworm's cloud kernel in the rig: query-status, stop/cont with
# their events, system_powerdown through the guest's ACPI power button (busybox
# acpid powers the guest off: SHUTDOWN with guest=true, exit 0), and quit.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm="$build/vireo-system-x86_64"
kernel=$("$rig" path guest-kernel:bookworm-cloud)
modules=$("$rig" path guest-modules:bookworm-cloud)
qmp=$("$rig" path qemu-qmp)
# The power button is an input device (button.ko) that busybox acpid reads
# through evdev; its default action for the power button event (PWRF) runs
# /etc/acpi/PWRF/00000080. The init's own shell is PID 1, so the action
# powers off with -f rather than signalling init. acpid -d stays in the
# foreground and logs the events it sees to the console.
"$rig" initramfs -o "$work/initrd" -m button -m evdev --modules-dir "$modules" -c '
mkdir -p /etc/acpi/PWRF
printf "#!/bin/sh\necho \"@test: power button\"\nexec poweroff -f\n" > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
ls /dev/input/
acpid -d -c /etc/acpi &
sleep 1
echo "@test: acpid pid $!"'
"$rig" run --mem 4G --work "$work" --env "PYTHONPATH=$qmp" -- \
	python3 "$src/tests/system/qmp-debian.py" "$vmm" "$kernel" "$work/initrd" "$work"
