# Sourced, after tests/rig/selftest/lib.sh, by the rig tests whose guest
# runs memcheck beside the disk loop (migration, background snapshots,
# snapshot jobs). memcheck_guest "MEMCHECK-ARGS" sets $kernel and $qmp and
# builds $work/initrd: bookworm's cloud kernel modules for a virtio disk,
# and an init that runs `memcheck MEMCHECK-ARGS &` and guest-disk-loop.sh.
memcheck_guest() {
	local memcheck="$build/tests/guest-tools/memcheck"
	[ -x "$memcheck" ] || fail "$memcheck is not built (static executables need libc6-dev)"
	kernel=$("$rig" path guest-kernel:bookworm-cloud)
	qmp=$("$rig" path qemu-qmp)
	{ echo "memcheck $1 &"; cat "$src/tests/system/guest-disk-loop.sh"; } > "$work/guest.sh"
	"$rig" initramfs -o "$work/initrd" --modules-dir "$("$rig" path guest-modules:bookworm-cloud)" \
		--file "/bin/memcheck=$memcheck" -m virtio_pci -m virtio_blk --script "$work/guest.sh"
}
