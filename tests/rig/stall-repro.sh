#!/usr/bin/env bash
# Reproducer of the rig's guest stalls (docs/rig.md, "Guests that stall"):
# boot bookworm's cloud kernel N times in a row under Debian's QEMU in one
# rig; each guest idles IDLE seconds printing "tick I UPTIME" every second.
# A stall is a gap of more than 5 s (rig clock) between two lines of the
# guest's output once its init is up, or a soft lockup / RCU stall report
# (gaps during the kernel's boot are listed but not counted: the rig
# itself sometimes pauses a few seconds then, see its heartbeat). A boot
# that outlives IDLE+90 s is killed and counted as stalled.
# Knobs (environment): N (10), IDLE (60), GUEST_APPEND (extra guest kernel
# options), GUEST_CPU (host), RIG_APPEND (extra rig kernel options, e.g.
# kvm.x=y), L1_SETUP (shell run in the rig before the boots).
# Output: one line per boot, then "@stall: RATE k/N" and the rig's kernel
# log lines about TSC, clocksource and KVM.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
rig="$src/tests/rig/rig"
N=${N:-10} IDLE=${IDLE:-60}
work=$(mktemp -d "$src/build/stall.XXXXXX")
"$rig" initramfs -o "$work/initrd" -c "for i in \$(seq $IDLE); do echo \"tick \$i \$(cut -d' ' -f1 /proc/uptime)\"; sleep 1; done"
kernel=$("$rig" path guest-kernel:bookworm-cloud)
cat > "$work/count.py" <<'PY'
import os, re, subprocess, sys, time, select
n, idle, kernel, initrd, cpu, extra = sys.argv[1:7]
n, idle = int(n), int(idle)
stalled = 0
for b in range(1, n + 1):
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-M", "pc", "-cpu", cpu, "-m", "512M",
           "-kernel", kernel, "-initrd", initrd,
           "-append", ("console=ttyS0 panic=-1 " + extra).strip(),
           "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    last = None; maxgap = 0.0; gaps = []; reports = []; ticks = 0; buf = b""
    killed = False; booted = None
    log = open(os.path.join(os.path.dirname(initrd), f"boot{b}.log"), "w")
    while True:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        now = time.monotonic()
        if now - t0 > idle + 90:
            p.kill(); killed = True; break
        if not r:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.decode(errors="replace").rstrip("\r")
            if last is not None:
                gap = now - last
                if gap > maxgap: maxgap = gap
                if gap > 5: gaps.append(f"{gap:.0f}s {'idle' if booted else 'during boot'} before '{line[:60]}'")
            last = now
            log.write(f"{now - t0:8.2f} {line}\n"); log.flush()
            if "@vireo-init: ready" in line: booted = now - t0
            if line.startswith("tick "): ticks += 1
            if re.search(r"soft lockup|rcu_preempt kthread timer wakeup|rcu: INFO|self-detected stall", line):
                reports.append(line.strip()[:110])
    p.wait()
    bad = killed or reports or any(" idle " in g for g in gaps)
    stalled += bool(bad)
    print(f"@boot {b}: {'STALL' if bad else 'ok'} ticks={ticks}/{idle} boot={booted and round(booted,1)}s "
          f"total={time.monotonic()-t0:.0f}s maxgap={maxgap:.1f}s killed={killed}", flush=True)
    for g in gaps: print(f"@boot {b}:   gap {g}", flush=True)
    for r in reports[:4]: print(f"@boot {b}:   {r}", flush=True)
print(f"@stall: {stalled}/{n} boots stalled (cpu={cpu} guest='{extra}')", flush=True)
PY
cat > "$work/job.sh" <<JOB
echo "@rig cmdline: \$(cat /proc/cmdline)"
echo "@rig clocksource: \$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource) of \$(cat /sys/devices/system/clocksource/clocksource0/available_clocksource)"
echo "@rig tsc flags: \$(grep -m1 ^flags /proc/cpuinfo | tr ' ' '\\n' | grep -E 'tsc|apic|svm|hypervisor|monitor|arat|vgif|constant' | tr '\\n' ' ')"
echo "@rig idle: cpuidle \$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null) governor \$(cat /sys/devices/system/cpu/cpuidle/current_governor 2>/dev/null)"
${L1_SETUP:-}
# A heartbeat of the rig itself: if these stop too, the rig (L1), not only the guest, is asleep.
( i=0; while sleep 10; do i=\$((i+10)); echo "@rig heartbeat \$i s"; done ) &
hb=\$!
python3 '$work/count.py' $N $IDLE '$kernel' '$work/initrd' '${GUEST_CPU:-host}' '${GUEST_APPEND:-}'
kill \$hb
echo "@rig clocksource at end: \$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
dmesg | grep -iE 'tsc|clocksource|kvm|hpet|clockevent|timer|watchdog' | sed 's/^/@rig dmesg: /'
JOB
echo "@host: start $(date -u +%T) rig append '${RIG_APPEND:-}' guest '${GUEST_APPEND:-}' cpu '${GUEST_CPU:-host}'"
VIREO_RIG_APPEND=${RIG_APPEND:-} "$rig" run --mem 3G ${RIG_SMP:+--smp $RIG_SMP} --work "$work" -- sh "$work/job.sh" 2>&1 |
	while IFS= read -r line; do printf '%s %s\n' "$(date -u +%T)" "$line"; done | tee "$work/out"
echo "output in $work/out"
