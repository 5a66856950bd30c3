#!/usr/bin/env bash
# QEMU's snapshot jobs on bookworm's cloud kernel in the rig
# (tests/system/snapshot-jobs-debian.py drives them over QMP): while the guest
# runs tests/guest-tools/memcheck over 64 MiB and a loop (guest-disk-loop.sh) that writes and reads
# back numbered blocks of its virtio disk, snapshot-save takes a background
# snapshot (the guest keeps going), snapshot-load brings the guest, its memory
# and its disk back to that point, snapshot-delete removes the tag.
. "$(dirname "$0")/../rig/selftest/lib.sh"
. "$(dirname "$0")/memcheck-guest.sh"
memcheck_guest "-s 64 -r 20000 -i 1000"

cat > "$work/job.sh" <<JOB
mkdir -p /tmp/sj/snapshots && truncate -s 16M /tmp/sj/disk.img
python3 '$src/tests/system/snapshot-jobs-debian.py' '$kernel' '$work/initrd' /tmp/sj \
	'$build/vireo-system-x86_64' -accel kvm -M pc -cpu host -nodefaults -display none -serial stdio \
	-snapshot-dir /tmp/sj/snapshots
echo "=== status \$?"
JOB
# A step's limit (90 s; the whole test takes about 55) is shorter than the
# rig's, so a stalled step names its side: the restored guest's registers, or
# Vireo not answering.
"$rig" run --mem 3G --work "$work" --env "PYTHONPATH=$qmp" --env VIREO_STEP_TIMEOUT=90 -- sh "$work/job.sh" | tee "$work/out"
expect "$work/out" "^=== status 0$" "snapshot-save while the guest writes, snapshot-load back to it (memory, console, disk), snapshot-delete"
