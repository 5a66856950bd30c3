#!/usr/bin/env bash
# Every device of a pc across a save and restore, with bookworm's cloud
# kernel in the rig (devstate-debian.py): the guest writes and verifies
# numbered blocks on a virtio disk, reads /dev/hwrng, writes to hvc0 and
# the serial console, and takes a DHCP lease over virtio-net, in a loop. Vireo
# saves it mid-loop (QMP migrate to a file), the process goes, and a new one
# restores it (-incoming): the loop goes on from the next tick, every block
# written before and after reads back from the disk, and the devices answer.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm="$build/vireo-system-x86_64"
kernel=$("$rig" path guest-kernel:bookworm-cloud)
modules=$("$rig" path guest-modules:bookworm-cloud)
qmp=$("$rig" path qemu-qmp)
"$rig" initramfs -o "$work/initrd" -m virtio_pci -m virtio_blk -m virtio_net -m virtio_console -m virtio-rng \
	--modules-dir "$modules" -c '
ip link set eth0 up
udhcpc -i eth0 -n -q -t 5 -s /bin/true >/dev/null 2>&1 && echo "@test: lease before"
expect() { printf "blk-%08d" "$1"; }
i=0
while [ $i -lt 60 ]; do
	expect $i | dd of=/dev/vda bs=512 seek=$i conv=sync,fsync 2>/dev/null
	[ "$(dd if=/dev/vda bs=512 skip=$i count=1 2>/dev/null | head -c 12)" = "$(expect $i)" ] || echo "@bad: disk $i"
	[ "$(head -c 32 /dev/hwrng | wc -c)" = 32 ] || echo "@bad: hwrng $i"
	echo "hvc-$i" > /dev/hvc0
	echo "@tick $i"
	i=$((i + 1))
	sleep 0.1
done
sync
echo 3 > /proc/sys/vm/drop_caches
ok=0
j=0
while [ $j -lt $i ]; do
	[ "$(dd if=/dev/vda bs=512 skip=$j count=1 2>/dev/null | head -c 12)" = "$(expect $j)" ] && ok=$((ok + 1))
	j=$((j + 1))
done
echo "@test: $ok of $i blocks read back from the disk"
udhcpc -i eth0 -n -q -t 5 -s /bin/true >/dev/null 2>&1 && echo "@test: lease after"
echo "@test: end"
poweroff -f'
"$rig" run --mem 3G --work "$work" --env "PYTHONPATH=$qmp" -- \
	python3 "$src/tests/system/devstate-debian.py" "$vmm" "$kernel" "$work/initrd" | tee "$work/out"
grep -q "^FAIL" "$work/out" && exit 1
expect "$work/out" "^ok: restored: the guest ends its loop" "the restored guest ran to the end"
