#!/usr/bin/env bash
# A root file system on virtio-blk: an ext4 image built with `mke2fs -d`
# from a busybox tree, booted three times by Debian's bookworm cloud kernel
# (virtio_pci and virtio_blk from the initramfs, which switches root to
# /dev/vda):
#   1. -drive if=virtio,cache=none,discard=unmap,serial=...: the guest writes a
#      token and 8 MiB of random data, syncs, trims, powers off;
#   2. -blockdev (file node + raw node) with -device virtio-blk-pci: the guest
#      reads both back; a second disk whose file lies on a full 1 MiB tmpfs
#      gives the guest I/O errors on writes, and Vireo carries on;
#   3. -drive if=none,readonly=on with -device virtio-blk-pci: the disk is
#      read-only in the guest, writes fail, the token is still there, and the
#      image is unchanged byte for byte.
# The host checks the image with e2fsck and reads the token with debugfs.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm="$build/vireo-system-x86_64"
guard="$src/tests/system/run-guarded.sh"
cloud=$("$rig" path guest-kernel:bookworm-cloud)
modules=$("$rig" path guest-modules:bookworm-cloud)
token="vireo-token-$$-$RANDOM"

# The initramfs's init (rdinit=): load the drivers, mount /dev/vda, switch root to it.
cat > "$work/rootinit" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
	[ -n "$m" ] && insmod "/lib/modules/$m"
done < /etc/modules.load
echo "@vireo-init: ready"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 /dev/vda /newroot; then
	echo "@initramfs: read-write mount of /dev/vda refused"
	mount -t ext4 -o ro /dev/vda /newroot || { echo "@initramfs: cannot mount /dev/vda"; poweroff -f; }
fi
for d in dev proc sys; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /sbin/init
EOF

# The root file system's init: one step of the test, chosen by vireo.mode= on the command line.
mkdir -p "$work/tree/bin" "$work/tree/sbin" "$work/tree/etc"
for d in dev proc sys tmp; do mkdir -p "$work/tree/$d"; done
cp /bin/busybox "$work/tree/bin/busybox"
ln -s busybox "$work/tree/bin/sh"
cat > "$work/tree/sbin/init" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
for arg in $(cat /proc/cmdline); do
	case "$arg" in vireo.mode=*) mode=${arg#*=} ;; vireo.token=*) token=${arg#*=} ;; esac
done
echo "@root: $(grep '^/dev/vda / ' /proc/mounts)"
echo "@root: serial=$(cat /sys/block/vda/serial 2>/dev/null) ro=$(cat /sys/block/vda/ro)"
case "$mode" in
write)
	echo "$token" > /token.txt
	dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null
	md5sum /big > /big.md5
	dd if=/dev/urandom of=/scratch bs=1M count=4 2>/dev/null
	sync
	rm /scratch
	sync
	fstrim / && echo "@root: fstrim ok"
	sync && echo "@root: wrote token"
	;;
read)
	echo "@root: token=$(cat /token.txt)"
	md5sum -c /big.md5 >/dev/null && echo "@root: big file intact"
	dd if=/dev/urandom of=/dev/vdb bs=1M count=4 oflag=direct 2>/dev/null && echo "@root: vdb write succeeded" ||
		echo "@root: vdb write failed"
	dmesg | grep -q "I/O error, dev vdb" && echo "@root: kernel saw an I/O error on vdb"
	dd if=/dev/vdb of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null && echo "@root: vdb still readable"
	;;
ro)
	echo "@root: token=$(cat /token.txt)"
	md5sum -c /big.md5 >/dev/null && echo "@root: big file intact"
	echo x > /newfile 2>/dev/null && echo "@root: file write succeeded" || echo "@root: file write refused"
	dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null && echo "@root: raw write succeeded" ||
		echo "@root: raw write refused"
	;;
esac
mount -o remount,ro / 2>/dev/null
sync
echo "@root: done"
# With a read-only root, busybox's `poweroff -f` (the reboot syscall) hung in
# 6.1 guests under QEMU 10.0 and Vireo alike; the kernel's own power-off works.
echo o > /proc/sysrq-trigger
sleep 60
EOF
chmod 755 "$work/rootinit" "$work/tree/sbin/init"

"$rig" initramfs -o "$work/initrd" -m virtio_pci -m virtio_blk --modules-dir "$modules" \
	--file "rootinit=$work/rootinit" -c 'true'

# The job: the image lives on the rig's tmpfs (cache=none needs O_DIRECT, which tmpfs has).
img=/tmp/vireo-root.img
append="console=ttyS0 panic=-1 quiet lapic=notscdeadline rdinit=/rootinit vireo.token=$token"
boot() {  # boot LABEL MODE VIREO-ARGS...
	local label=$1 mode=$2
	shift 2
	echo "echo '=== $label'"
	echo "'$guard' 240 '$work/boot.log' '$vmm' -m 512M -kernel '$cloud' -initrd '$work/initrd' -append '$append vireo.mode=$mode' -nographic -no-reboot $*"
}
{
	echo "set -e"
	echo "mke2fs -q -t ext4 -L vireo-root -d '$work/tree' '$img' 64M"
	echo "set +e"
	boot write write -drive "file=$img,if=virtio,format=raw,cache=none,discard=unmap,serial=VIREO-SN-1"
	echo "mkdir -p /tmp/tiny && mount -t tmpfs -o size=1m vireo-tiny /tmp/tiny && truncate -s 64M /tmp/tiny/full.img"
	boot read read -blockdev "driver=file,node-name=f0,filename=$img" -blockdev "driver=raw,node-name=disk0,file=f0" \
		-device "virtio-blk-pci,drive=disk0,serial=VIREO-SN-2" -drive "file=/tmp/tiny/full.img,if=virtio,format=raw"
	echo "umount /tmp/tiny"
	echo "before=\$(md5sum < '$img')"
	boot ro ro -drive "file=$img,if=none,id=d0,format=raw,readonly=on" -device "virtio-blk-pci,drive=d0"
	echo "after=\$(md5sum < '$img')"
	echo "echo '=== host'"
	echo "[ \"\$before\" = \"\$after\" ] && echo '@host: image unchanged by the read-only boot'"
	echo "e2fsck -fn '$img' >/dev/null 2>&1 && echo '@host: e2fsck clean'"
	echo "echo \"@host: token=\$(debugfs -R 'cat /token.txt' '$img' 2>/dev/null)\""
	echo "timeout 20 '$vmm' -drive 'file=$img,if=virtio,format=qcow2' -kernel '$cloud' 2>&1 | sed 's/^/@host: /'"
	echo "rm -f '$img'"
} > "$work/job.sh"
"$rig" run --mem 3G --work "$work" -- sh "$work/job.sh" | tee "$work/out"

section() {  # section NAME: the lines of the output between "=== NAME" and the next "==="
	awk -v n="=== $1" '$0 == n { on = 1; next } /^=== / && !/^=== exit/ { on = 0 } on' "$work/out" > "$work/$1.out"
	echo "$work/$1.out"
}
for s in write read ro; do
	f=$(section $s)
	expect "$f" "^=== exit 0" "$s: Vireo exited with status 0"
	expect "$f" "@root: /dev/vda / ext4 r" "$s: the root file system is ext4 on /dev/vda"
	expect "$f" "@root: done" "$s: the guest's init on the virtio disk ran to the end"
done
w=$(section write) r=$(section read) o=$(section ro) h=$(section host)
expect "$w" "@root: /dev/vda / ext4 rw" "write: root mounted read-write"
expect "$w" "@root: serial=VIREO-SN-1 ro=0" "write: the guest sees -drive serial= and a writable disk"
expect "$w" "@root: fstrim ok" "write: fstrim (discard) succeeded"
expect "$w" "@root: wrote token" "write: the token was written and synced"
expect "$r" "@root: serial=VIREO-SN-2 ro=0" "read: the guest sees -device serial= (-blockdev form)"
expect "$r" "@root: token=$token\$" "read: the token is there after a power cycle"
expect "$r" "@root: big file intact" "read: 8 MiB of random data read back with the same md5"
expect "$r" "@root: vdb write failed" "read: writes to a disk whose host file system is full fail in the guest"
expect "$r" "@root: kernel saw an I/O error on vdb" "read: the guest kernel reports an I/O error on vdb"
expect "$r" "@root: vdb still readable" "read: the disk still answers reads after the errors"
expect "$r" "host I/O error on '/tmp/tiny/full.img': No space left on device" "read: Vireo logs the host error once"
expect "$o" "@root: serial= ro=1" "ro: the guest sees a read-only disk"
expect "$o" "@root: /dev/vda / ext4 ro" "ro: root mounted read-only"
expect "$o" "@root: token=$token\$" "ro: the token is still there"
expect "$o" "@root: big file intact" "ro: the data is still intact"
expect "$o" "@root: file write refused" "ro: writing a file fails"
expect "$o" "@root: raw write refused" "ro: writing the block device fails"
expect "$h" "@host: image unchanged by the read-only boot" "host: the read-only boot left the image unchanged"
expect "$h" "@host: e2fsck clean" "host: e2fsck finds the file system clean"
expect "$h" "@host: token=$token\$" "host: debugfs reads the token from the image"
expect "$h" "@host: .*format=qcow2 is not supported" "host: format=qcow2 is refused in one line"
