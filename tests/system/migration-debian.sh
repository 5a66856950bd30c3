#!/usr/bin/env bash
# Save/restore and live migration of bookworm's cloud kernel in the rig
# (tests/system/migration-debian.py drives it over QMP): while the guest runs
# tests/guest-tools/memcheck (64 MiB rewritten at 2000 pages a second and
# checked every second) and a loop that writes and reads back numbered
# blocks of its virtio disk,
#   save:   migrate to file:, kill the VMM, restore with -incoming file: in a
#           new process; memcheck, the disk loop and the console go on;
#   live:   migrate over TCP to a second process (-incoming defer +
#           migrate-incoming); the guest goes on there, the source ends in
#           postmigrate;
#   cancel: migrate_cancel midway (max-bandwidth 1 MiB/s) leaves the source
#           running, and the destination exits non-zero.
#
# VIREO_TEST_VMM=qemu runs it under Debian's QEMU 10.0 (the reference: the
# test expects what QEMU does); default: Vireo. Both get the same command
# line: -accel kvm -M pc -cpu host -nodefaults -display none -serial stdio.
# docs/rig.md ("Save and restore in the rig") says what was tried.
. "$(dirname "$0")/../rig/selftest/lib.sh"
case "${VIREO_TEST_VMM:-vireo}" in
vireo) vmm="$build/vireo-system-x86_64" ;;
qemu) vmm=qemu-system-x86_64 ;;
*) fail "VIREO_TEST_VMM=$VIREO_TEST_VMM: expected vireo or qemu" ;;
esac
. "$(dirname "$0")/memcheck-guest.sh"
memcheck_guest "-s 64 -r 2000"

cat > "$work/job.sh" <<JOB
busybox ip link set lo up # the rig's loopback starts down; the TCP migrations use it
mkdir -p /tmp/mig && truncate -s 16M /tmp/mig/disk.img
python3 '$src/tests/system/migration-debian.py' '$kernel' '$work/initrd' /tmp/mig \
	'$vmm' -accel kvm -M pc -cpu host -nodefaults -display none -serial stdio
echo "=== status \$?"
JOB
"$rig" run --mem 3G --work "$work" --env "PYTHONPATH=$qmp" -- sh "$work/job.sh" | tee "$work/out"
expect "$work/out" "^=== status 0$" "${VIREO_TEST_VMM:-vireo}: save/restore, live migration and cancel as the guest sees them"
