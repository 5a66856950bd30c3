#!/usr/bin/env bash
# virtio-net on -netdev user with Debian's bookworm cloud kernel in the rig.
# The guest gets 10.0.2.15 by DHCP from slirp, fetches a file from an HTTP
# server on the rig host through 10.0.2.2 (its checksum must match), and
# serves a page that a client on the rig host fetches through hostfwd. A
# second boot (-nic shorthand, restrict=on) shows the guest cut off from the
# host's server while hostfwd still reaches the guest.
# VIREO_NET_PEER=qemu runs the same boots under Debian's QEMU, for comparison.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm="$build/vireo-system-x86_64"

# busybox's udhcpc leaves addresses to a script; the initramfs has none.
cat > "$work/udhcpc-script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	: ;;
esac
EOF
cat > "$work/guest.sh" <<'EOF'
mode=open port=8080
for a in $(cat /proc/cmdline); do
	case "$a" in net.mode=*) mode=${a#net.mode=} ;; net.port=*) port=${a#net.port=} ;; esac
done
ip link set lo up
echo "@test: mac $(cat /sys/class/net/eth0/address)"
echo "@test: features $(cat /sys/class/net/eth0/device/features)"
udhcpc -i eth0 -s /bin/udhcpc-script -q -n -t 5 -T 2 >/dev/null 2>&1 || echo "@test: dhcp failed"
echo "@test: addr $(ip -4 addr show dev eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p')"
# (busybox 1.35's wget crashes on -T: timeout bounds it instead)
if timeout 30 wget -q -O /tmp/blob "http://10.0.2.2:$port/blob"; then
	echo "@test: fetched $(sha256sum /tmp/blob | cut -d' ' -f1)"
	# and back: a bulk upload, in 64 KiB segments the device passes on whole
	timeout 60 nc 10.0.2.2 9000 < /tmp/blob
else
	echo "@test: fetch failed"
fi
mkdir -p /www
echo "served by the guest ($mode)" > /www/index.html
httpd -p 80 -h /www
echo "@test: serving"
nc -l -p 81 > /tmp/bye
echo "@test: host said $(cat /tmp/bye)"
EOF
"$rig" initramfs -o "$work/initrd" --modules-dir "$("$rig" path guest-modules:bookworm-cloud)" \
	-m virtio_pci -m virtio_net --file "/bin/udhcpc-script=$work/udhcpc-script" --script "$work/guest.sh"
kernel=$("$rig" path guest-kernel:bookworm-cloud)

if [ "${VIREO_NET_PEER:-}" = qemu ]; then
	vmm="qemu-system-x86_64 -accel kvm -cpu host -nodefaults -serial stdio"
fi
cat > "$work/job.sh" <<EOF
vmm='$vmm' kernel='$kernel' initrd='$work/initrd'
EOF
cat >> "$work/job.sh" <<'EOF'
py=/usr/bin/python3
busybox ip link set lo up # the rig's loopback starts down
mkdir -p /tmp/www
head -c 1048576 /dev/urandom > /tmp/www/blob
echo "@host: blob $(sha256sum /tmp/www/blob | cut -d' ' -f1)"
(cd /tmp/www && exec $py -m http.server --bind 127.0.0.1 8080 > /tmp/http.log 2>&1) &
http=$!
# A sink on 9000: the checksum of what each connection carried.
$py -u -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9000)); s.listen(1)
while True:
    c, _ = s.accept(); h = hashlib.sha256(); n = 0
    while b := c.recv(1 << 16):
        h.update(b); n += len(b)
    print(f"@host: upload {n} bytes sha256 {h.hexdigest()}"); c.close()
' > /tmp/sink.log 2>&1 &
sink=$!
for i in $(seq 100); do
	$py -c 'import socket; socket.create_connection(("127.0.0.1", 8080)).close()' 2>/dev/null && break
	sleep 0.2
done
# boot LABEL WEBPORT BYEPORT ARGS...: one Vireo run; the host fetches the guest's page, then lets it finish.
boot() {
	label=$1 web=$2 bye=$3
	shift 3
	log=/tmp/$label.log
	echo "=== $label"
	$vmm -m 256M -kernel "$kernel" -initrd "$initrd" -nographic -no-reboot \
		-append "console=ttyS0 panic=-1 quiet lapic=notscdeadline net.mode=$label net.port=8080" "$@" > "$log" 2>&1 &
	pid=$!
	n=0
	while kill -0 $pid 2>/dev/null && ! grep -q "@test: serving" "$log" && [ $n -lt 240 ]; do
		sleep 0.5
		n=$((n + 1))
	done
	if grep -q "@test: serving" "$log"; then
		echo "@host: got '$(curl -s --max-time 30 "http://127.0.0.1:$web/index.html")' through hostfwd $web"
		$py -c "import socket; s = socket.create_connection(('127.0.0.1', $bye)); s.sendall(b'bye\n'); s.close()"
	fi
	n=0
	while kill -0 $pid 2>/dev/null && [ $n -lt 120 ]; do
		sleep 0.5
		n=$((n + 1))
	done
	if kill -0 $pid 2>/dev/null; then
		echo "=== threads of the hung Vireo:"
		gdb -p $pid -batch -ex "thread apply all bt" 2>&1 | grep -E '^Thread|^#'
		kill -9 $pid
		wait $pid 2>/dev/null
		cat "$log"
		echo "=== exit hung"
		return
	fi
	wait $pid
	status=$?
	cat "$log"
	echo "=== exit $status"
}
boot open 5555 5556 -netdev user,id=n0,hostfwd=tcp::5555-:80,hostfwd=tcp::5556-:81 \
	-device virtio-net-pci,netdev=n0
boot restrict 5557 5558 -nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp::5557-:80,hostfwd=tcp::5558-:81
kill $http $sink
cat /tmp/sink.log
grep -c '"GET /blob' /tmp/http.log | sed 's/^/@host: blob requests /'
EOF
"$rig" run --mem 3G --work "$work" -- sh "$work/job.sh" | tee "$work/out"

python3 - "$work/out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
sections = dict(re.findall(r"^=== (open|restrict)\n(.*?)^=== exit", text, re.M | re.S))
status = dict(re.findall(r"^=== (open|restrict)\n.*?^=== exit (\S+)", text, re.M | re.S))
blob = re.search(r"^@host: blob ([0-9a-f]{64})$", text, re.M)
fails = 0
def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what)
    fails += not ok
check(blob is not None, "the rig host made a file to serve")
for mode in ("open", "restrict"):
    out = sections.get(mode, "")
    check(status.get(mode) == "0", f"{mode}: the VMM exited with status 0 (got {status.get(mode)})")
    check("@test: mac 52:54:00:12:34:56" in out, f"{mode}: the NIC has QEMU's default MAC")
    check("@test: addr 10.0.2.15" in out, f"{mode}: the guest got 10.0.2.15 by DHCP")
    check(f"@host: got 'served by the guest ({mode})'" in out,
          f"{mode}: a client on the rig host fetched the guest's page through hostfwd")
    check("@test: host said bye" in out, f"{mode}: a second hostfwd carried the host's word to the guest")
    check("@vireo-init: done rc=0" in out, f"{mode}: the guest's script finished")
sha = blob.group(1) if blob else "?"
check(f"@test: fetched {sha}" in sections.get("open", ""),
      "open: the guest fetched the host's file through 10.0.2.2, checksum equal")
check(f"@host: upload 1048576 bytes sha256 {sha}" in text,
      "open: the guest uploaded the file back to the rig host intact (1 MiB)")
feats = re.search(r"^@test: features ([01]+)$", sections.get("open", ""), re.M)
check(feats is not None and feats.group(1)[0] == "1" and feats.group(1)[11] == "1",
      "open: the driver took checksum offload and TSO (features bits 0 and 11)")
check("@test: fetch failed" in sections.get("restrict", ""),
      "restrict: restrict=on keeps the guest from the host's server")
sys.exit(1 if fails else 0)
PY
