#!/usr/bin/env bash
# A Debian guest hands virtio devices malformed descriptor chains
# (tests/guest-tools/virtio-bad-chain, a userspace driver on an unbound
# device): each kind breaks the device (NEEDS_RESET), a reset recovers it,
# the VMM logs one line per break and keeps running, and the devices nobody
# attacked still work: the disk reads back, /dev/hwrng gives data, hvc0
# carries output, the network reaches an HTTP server on the rig. The guest
# then powers off and the VMM exits with status 0.
#
# VIREO_TEST_VMM=qemu runs the same guest under Debian's QEMU (to check the
# tool and the flow against a reference VMM); default: Vireo.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm=${VIREO_TEST_VMM:-vireo}
tool="$build/tests/guest-tools/virtio-bad-chain"
[ -x "$tool" ] || fail "$tool is not built (static executables need libc6-dev)"
kinds="loop outside-ram oversized write-before-read"
port=18080

cat > "$work/guest.sh" <<'GUEST'
# PCI addresses of virtio functions whose device ID is one of $@, in bus order.
find_virtio() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1af4 ] || continue
		for id in "$@"; do
			[ "$(cat "$d/device")" = "$id" ] && echo "${d##*/}"
		done
	done
}
unbind() { echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"; }
rng=$(find_virtio 0x1044 0x1005 | head -1)
blk=$(find_virtio 0x1042 0x1001 | sed -n 2p)
echo "@victim virtio-rng-pci $rng"
echo "@victim virtio-blk-pci $blk"
unbind "$rng"
for k in KINDS; do
	virtio-bad-chain "$rng" "$k"
	echo "@bad-chain rng $k rc=$?"
done
unbind "$blk"
virtio-bad-chain "$blk" loop
echo "@bad-chain blk loop rc=$?"
echo "@disk: $(head -c 17 /dev/vda)"
echo "@hwrng: $(head -c 64 /dev/hwrng | wc -c) bytes"
echo "hvc0-carries-this" > /dev/hvc0
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "@http: $(timeout 60 wget -q -O - http://10.0.2.2:PORT/hello.txt)"
GUEST
sed -i "s/KINDS/$kinds/; s/PORT/$port/" "$work/guest.sh"
"$rig" initramfs -o "$work/initrd" --modules-dir "$("$rig" path guest-modules:bookworm-cloud)" --script "$work/guest.sh" --file "/bin/virtio-bad-chain=$tool" \
	-m virtio_pci -m virtio_blk -m virtio_net -m virtio_console -m virtio-rng
kernel=$("$rig" path guest-kernel:bookworm-cloud)

case "$vmm" in
vireo) cmd="$build/vireo-system-x86_64 -nographic" ;;
qemu) cmd="qemu-system-x86_64 -accel kvm -M pc -cpu host -nodefaults -display none -serial stdio" ;;
*) fail "VIREO_TEST_VMM=$vmm: expected vireo or qemu" ;;
esac
cat > "$work/job.sh" <<JOB
set -e
busybox ip link set lo up # the rig's loopback starts down; slirp reaches 10.0.2.2 through it
mkdir -p /tmp/www && echo "served-by-the-rig" > /tmp/www/hello.txt
python3 -m http.server $port --bind 127.0.0.1 -d /tmp/www >/dev/null 2>&1 &
truncate -s 64M /tmp/disk.img && printf 'vireo-disk-marker' | dd of=/tmp/disk.img conv=notrunc 2>/dev/null
truncate -s 16M /tmp/victim.img
: > /tmp/hvc.out
sleep 1
'$src/tests/system/run-guarded.sh' 90 /tmp/vmm.log $cmd -m 512M -kernel '$kernel' -initrd '$work/initrd' \
	-append 'console=ttyS0 panic=-1 quiet lapic=notscdeadline' -no-reboot \
	-device virtio-rng-pci -device virtio-rng-pci \
	-drive file=/tmp/disk.img,if=virtio,format=raw -drive file=/tmp/victim.img,if=virtio,format=raw \
	-device virtio-serial-pci -chardev file,id=con0,path=/tmp/hvc.out -device virtconsole,chardev=con0 \
	-nic user,model=virtio-net-pci
sed 's/^/@hvc0: /' /tmp/hvc.out
JOB
"$rig" run --mem 3G --work "$work" -- sh "$work/job.sh" | tee "$work/out"

out="$work/out"
expect "$out" '^@vireo-init: ready' "$vmm: the guest reached its init"
for k in $kinds; do
	expect "$out" "^bad-chain $k: status=0x[0-9a-f]+ needs_reset=yes" "$vmm: virtio-rng-pci: a $k chain sets NEEDS_RESET"
	expect "$out" "^@bad-chain rng $k rc=0" "$vmm: virtio-rng-pci: after the $k chain a reset clears NEEDS_RESET and the device serves a request"
done
expect "$out" "^@bad-chain blk loop rc=0" "$vmm: virtio-blk-pci: a loop breaks it, a reset recovers it"
expect "$out" '^@disk: vireo-disk-marker' "$vmm: the other disk still reads"
expect "$out" '^@hwrng: 64 bytes' "$vmm: /dev/hwrng (the other virtio-rng) still gives data"
expect "$out" '^@hvc0: hvc0-carries-this' "$vmm: hvc0 still carries output"
expect "$out" '^@http: served-by-the-rig' "$vmm: the network still reaches the rig's HTTP server"
expect "$out" '^@vireo-init: done rc=' "$vmm: the guest finished its script"
expect "$out" '^=== exit 0$' "$vmm: exited with status 0 at poweroff"

# One log line per break: Vireo names the device ("virtio-rng-pci 00:04.0");
# QEMU's virtio_error lines name only the fault.
nkinds=$(echo $kinds | wc -w)
if [ "$vmm" = vireo ]; then
	for model in virtio-rng-pci virtio-blk-pci; do
		addr=$(sed -n "s/^@victim $model 0000:\(.*\)/\1/p" "$out")
		want=$([ $model = virtio-rng-pci ] && echo "$nkinds" || echo 1)
		n=$(grep -v '^@\|^bad-chain\|^reset:\|^recover:' "$out" | grep -c "$model $addr" || true)
		[ "$n" = "$want" ] || fail "vireo: $n log lines name $model $addr, expected $want (one per break)"
		echo "ok: vireo: $want log line(s) name $model $addr, one per break"
	done
else
	n=$(grep -c '^qemu-system-x86_64: ' "$out" || true)
	[ "$n" = $((nkinds + 1)) ] || fail "qemu: $n error lines, expected $((nkinds + 1)) (one per break)"
	echo "ok: qemu: $n error lines, one per break"
fi
