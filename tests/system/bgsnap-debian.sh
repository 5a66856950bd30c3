#!/usr/bin/env bash
# Background snapshots of bookworm's cloud kernel in the rig
# (tests/system/bgsnap-debian.py drives it over QMP): while the guest runs
# tests/guest-tools/memcheck at 20000 pages a second over 64 MiB and a loop that
# writes and reads back numbered blocks of its virtio disk,
#   snapshot: the guest keeps running and printing while the snapshot is
#             written; restored in a new process it goes on from the
#             snapshot's start with its memory exactly as it was then;
#   cancel:   migrate_cancel midway: the guest runs on at its old rate;
#   full:     a target tmpfs too small: a clear error, the guest runs on.
. "$(dirname "$0")/../rig/selftest/lib.sh"
. "$(dirname "$0")/memcheck-guest.sh"
memcheck_guest "-s 64 -r 20000 -i 1000"

cat > "$work/job.sh" <<JOB
mkdir -p /tmp/bg && truncate -s 16M /tmp/bg/disk.img
python3 '$src/tests/system/bgsnap-debian.py' '$kernel' '$work/initrd' /tmp/bg \
	'$build/vireo-system-x86_64' -accel kvm -M pc -cpu host -nodefaults -display none -serial stdio
echo "=== status \$?"
JOB
"$rig" run --mem 3G --work "$work" --env "PYTHONPATH=$qmp" -- sh "$work/job.sh" | tee "$work/out"
expect "$work/out" "^=== status 0$" "background snapshot, restore, cancel and a full target as the guest sees them"
