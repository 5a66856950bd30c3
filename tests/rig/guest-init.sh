#!/bin/sh
# Init of a test guest: set up the basics, load the modules the test named,
# run the test's script, print markers the host waits for, then power off.
#   @vireo-init: ready            userspace is up
#   @vireo-init: done rc=N        the test script ended with status N
# The kernel command line may say vireo.end=poweroff|reboot|hold (default poweroff).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
while read -r m; do
	[ -n "$m" ] && insmod "/lib/modules/$m"
done < /etc/modules.load
end=poweroff
for arg in $(cat /proc/cmdline); do
	case "$arg" in vireo.end=*) end=${arg#vireo.end=} ;; esac
done
echo "@vireo-init: ready"
rc=0
if [ -x /init.d/test.sh ]; then
	/init.d/test.sh
	rc=$?
fi
echo "@vireo-init: done rc=$rc"
# Through sysrq rather than the reboot system call: in the rig, `poweroff -f`
# and `reboot -f` left idle guests halted for minutes, under QEMU 10.0 (3 of
# 3 boots of one test) as under Vireo (7 of 10), while sysrq never did.
case "$end" in
	reboot) echo b > /proc/sysrq-trigger; reboot -f ;;
	hold) while :; do sleep 3600; done ;;
	*) echo o > /proc/sysrq-trigger; sleep 60; poweroff -f ;;
esac
