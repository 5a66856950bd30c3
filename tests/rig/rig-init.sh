#!/bin/sh
# Init of the rig itself. It mounts the host's root read-only (9p, tag
# hostroot) and the job's work directory writable at the same path (tag
# work), gives the job a tmpfs at /tmp and /var/tmp and a /dev with the rig
# kernel's /dev/kvm, chroots into the host root and runs the job there.
# The job's output goes to ttyS1 (the runner's stdout); its exit status is
# written to WORK/.rig/status.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
	[ -n "$m" ] && insmod "/lib/modules/$m"
done < /etc/modules.load
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rig.work=*) work=${arg#rig.work=} ;;
	rig.tmpfs=*) tmpsize=${arg#rig.tmpfs=} ;;
	rig.keep=*) keep=${arg#rig.keep=} ;;
	rig.interactive=1) interactive=1 ;;
	esac
done
out=/dev/ttyS1
fail() { echo "rig-init: $*" > $out; echo "rig-init: $*"; poweroff -f; }
h=/mnt/host
mkdir -p $h
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=1048576,ro hostroot $h || fail "cannot mount the host root"
# A second view of the host root, to bring back host paths the tmpfs mounts
# below would hide (a checkout under /tmp, say).
mkdir -p /mnt/orig
mount --bind $h /mnt/orig
mount -t devtmpfs devtmpfs $h/dev
mkdir -p $h/dev/pts $h/dev/shm
mount -t devpts devpts $h/dev/pts
mount -t tmpfs tmpfs $h/dev/shm
mount -t proc proc $h/proc
mount -t sysfs sysfs $h/sys
mount -t tmpfs -o size=${tmpsize:-50%} tmpfs $h/tmp
mount -t tmpfs tmpfs $h/var/tmp
mount -t tmpfs tmpfs $h/run
for p in $(echo "$keep" | tr ':' ' '); do
	case "$p" in
	/tmp/*|/var/tmp/*|/run/*) mkdir -p "$h$p" && mount --bind "/mnt/orig$p" "$h$p" ;;
	esac
done
mkdir -p "$h$work" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576 work "$h$work" || fail "cannot mount the work directory $work"
[ -c /dev/kvm ] || echo "rig-init: warning: no /dev/kvm in the rig" > $out
echo "@rig: job start" > $out
in=/dev/null
if [ -n "$interactive" ]; then
	in=$out # the user's keyboard, through the rig's second serial port
	stty -F $out raw -echo
fi
chroot $h /bin/sh -c "cd '$work' && . ./.rig/env && exec /bin/sh ./.rig/job.sh" < $in > $out 2>&1
echo $? > "$h$work/.rig/status"
sync
poweroff -f
