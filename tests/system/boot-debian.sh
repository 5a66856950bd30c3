#!/usr/bin/env bash
# Debian's stock kernels boot under Vireo in the rig: bookworm's cloud kernel
# (6.1) and a 7.x generic kernel, with 2 vCPUs and 512 MiB or 5 GiB. The
# guest's init sees 2 CPUs and all the memory, its kernel log has no ACPI
# errors, a power-off (sysrq o) ends Vireo with status 0, and a reboot (sysrq b) with
# -no-reboot ends it too.
. "$(dirname "$0")/../rig/selftest/lib.sh"
vmm="$build/vireo-system-x86_64"
guard="$src/tests/system/run-guarded.sh"
"$rig" initramfs -o "$work/initrd" -c '
echo "@test: cpus=$(nproc)"
dmesg | grep "BIOS-e820" | sed "s/^/@e820: /"
n=$(dmesg | grep -cE "ACPI (BIOS )?Error")
echo "@test: acpi_errors=$n"
dmesg | grep -E "ACPI (BIOS )?Error" | head -5'
cloud=$("$rig" path guest-kernel:bookworm-cloud)
seven=$("$rig" path guest-kernel:7.x)
boot() {  # boot LABEL KERNEL MEM [EXTRA-APPEND]: one Vireo run, between markers
	printf '%s\n' "echo '=== $1 $3'" \
		"'$guard' 240 '$work/boot.log' '$vmm' -m $3 -smp 2 -kernel '$2' -initrd '$work/initrd' -append 'console=ttyS0 panic=-1 quiet lapic=notscdeadline ${4:-}' -nographic -no-reboot"
}
{
	boot bookworm-cloud "$cloud" 512M
	boot bookworm-cloud "$cloud" 5G
	boot 7.x "$seven" 512M
	boot 7.x "$seven" 5G
	boot reboot "$cloud" 512M vireo.end=reboot | sed 's/=== reboot 512M/=== reboot/'
} > "$work/job.sh"
"$rig" run --mem 8G --work "$work" -- sh "$work/job.sh" | tee "$work/out"

python3 - "$work/out" <<'PY'
import re, sys
sections, cur = {}, None
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m = re.match(r"=== (\S+)(?: (\S+))?$", line)
    if m and m.group(1) != "exit":
        cur = " ".join(g for g in m.groups() if g)
        sections[cur] = []
    elif cur:
        sections[cur].append(line)
fails = 0
def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what)
    fails += not ok
for name, lines in sections.items():
    text = "\n".join(lines)
    status = re.findall(r"^=== exit (\S+)$", text, re.M)
    check(status == ["0"], f"{name}: Vireo exited with status 0 (got {status})")
    if name == "reboot":
        check("@vireo-init: done rc=0" in text, "reboot: the guest ran its init before rebooting")
        continue
    mem = int(name.split()[1][:-1]) << (30 if name.endswith("G") else 20)
    check("@vireo-init: ready" in text, f"{name}: the guest reached its init")
    check("@test: cpus=2" in text, f"{name}: the guest sees 2 CPUs")
    usable = 0
    for a, b in re.findall(r"@e820: .*\[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] +(?:usable|System RAM)", text):
        usable += int(b, 16) - int(a, 16) + 1
    check(mem - usable < (1 << 20), f"{name}: the e820 map gives the guest all its memory ({usable >> 20} of {mem >> 20} MiB)")
    check("@test: acpi_errors=0" in text, f"{name}: no ACPI errors in the kernel log")
sys.exit(1 if fails or len(sections) != 5 else 0)
PY
