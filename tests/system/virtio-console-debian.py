#!/usr/bin/env python3
"""A login shell on hvc0 and /dev/hwrng, seen from a client of the console's socket (inside the rig).

virtio-console-debian.py LABEL INITRD KERNEL VMM [VMM-ARGS...]

The VMM runs bookworm's cloud kernel with
  -chardev socket,id=c0,path=SOCK,server=on,wait=off
  -device virtio-serial-pci -device virtconsole,chardev=c0
  -object rng-random,id=r0,filename=/dev/urandom -device virtio-rng-pci,rng=r0
The guest's init (built by virtio-console-debian.sh) reports rng_current and
64 bytes of /dev/hwrng on ttyS0, then runs `sh -l` on /dev/hvc0, whose
/etc/profile prints a banner. This script, a client of SOCK, waits for the
banner, types commands and checks their output arrives on the socket; `exit`
ends the shell and the guest powers off.
Prints LABEL: ok:/FAIL: lines; exits 1 on any failure.
"""
import codecs
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

BOOT_TIMEOUT = 150
STEP_TIMEOUT = 60
# The whole run, however its steps go: two runs (Vireo, then QEMU) must fit the rig job's limit.
RUN_BUDGET = 200

label, initrd, kernel, vmm = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
fails = 0


def check(ok, what):
    global fails
    print(f"{'ok' if ok else 'FAIL'}: {label}: {what}", flush=True)
    fails += not ok
    return ok


# The rig's /tmp is a tmpfs: the socket goes there, not on the 9p work dir.
tmp = tempfile.mkdtemp(prefix="virtio-console.")
sock_path = os.path.join(tmp, "hvc.sock")
log_path = os.path.join(tmp, "serial.log")
log = open(log_path, "wb")
cmd = vmm + [
    "-m", "512M", "-smp", "1", "-kernel", kernel, "-initrd", initrd,
    "-append", "console=ttyS0 panic=-1 quiet lapic=notscdeadline", "-nographic", "-no-reboot",
    "-chardev", f"socket,id=c0,path={sock_path},server=on,wait=off",
    "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=c0",
    "-object", "rng-random,id=r0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=r0",
]
print(f"{label}: + {' '.join(cmd)}", flush=True)
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
log.close()

text = ""   # what arrived on the socket, \r removed
since = 0   # where the answer to the last typed line may start
conn = None
decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
run_deadline = time.monotonic() + RUN_BUDGET


def connect():
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            return s
        except OSError:
            time.sleep(0.1)
    return None


def wait_for(pattern, timeout=STEP_TIMEOUT):
    """Read the socket until @pattern (a multi-line regex) matches what arrived since the last typed line."""
    global text
    deadline = min(time.monotonic() + timeout, run_deadline)
    regex = re.compile(pattern, re.M)
    while True:
        m = regex.search(text, since)
        if m:
            return m
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None or len(text) - since > (1 << 20):
            return None
        conn.settimeout(min(left, 1.0))
        try:
            data = conn.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return None
        chunk = decoder.decode(data).replace("\r", "")
        if os.environ.get("VIREO_CONSOLE_TRACE"):
            print(f"{label}: <<< {chunk!r}", flush=True)
        text += chunk


def type_line(line):
    global since
    since = len(text)
    conn.sendall(line.encode() + b"\n")


def converse():
    """The client's side of the session; stops at the first step that fails (later ones would only wait)."""
    m = wait_for(r"^@hvc: banner on (\S+)$", BOOT_TIMEOUT)
    if not check(m is not None and m.group(1) == "/dev/hvc0",
                 f"the login shell's banner arrives on the socket from /dev/hvc0 ({m.group(1) if m else 'nothing'})"):
        return False
    # What a command prints, never what the shell echoes: the typed text differs from the answer.
    type_line("echo hvc-$((6*7))")
    if not check(wait_for(r"^hvc-42$") is not None, "typed `echo hvc-$((6*7))`, got hvc-42 back"):
        return False
    type_line("cat /sys/class/tty/hvc0/dev; echo tty-$(tty)")
    if not check(wait_for(r"^229:0$") is not None and wait_for(r"^tty-/dev/hvc0$") is not None,
                 "the shell's terminal is hvc0 (229:0 in sysfs, tty says /dev/hvc0)"):
        return False
    # Input larger than one chardev read and one guest buffer: the shell gets every byte.
    type_line("echo " + "x" * 900 + " | wc -c")
    # A guest that echoes byte by byte (it does under QEMU) needs a while in a loaded rig.
    if not check(wait_for(r"^901$", 3 * STEP_TIMEOUT) is not None,
                 "a 900-character line typed in arrives whole (wc -c says 901)"):
        return False
    # Output larger than the socket's buffers: everything arrives, in order.
    type_line('echo @be""gin; seq 1 5000; echo @e""nd')
    # Wait for the end marker alone (cheap to look for as small chunks arrive), then parse once.
    m = wait_for(r"^@end$") and re.search(r"^@begin\n((?:.*\n)*?)@end$", text[since:], re.M)
    nums = m.group(1).split() if m else []
    if not check(nums == [str(i) for i in range(1, 5001)],
                 f"`seq 1 5000` arrives complete and in order ({len(nums)} lines)"):
        return False
    type_line("exit")
    return True


try:
    conn = connect()
    if check(conn is not None, "a client connects to the console's socket") and converse():
        left = max(1.0, run_deadline - time.monotonic())
        status = proc.wait(timeout=min(BOOT_TIMEOUT, left))
        check(status == 0, f"the guest powered off after the shell exited (exit status {status})")
except subprocess.TimeoutExpired:
    check(False, "the VMM did not exit")
finally:
    if proc.poll() is None:
        print(f"{label}: stopping the VMM after {RUN_BUDGET - (run_deadline - time.monotonic()):.0f}s", flush=True)
        proc.kill()
        proc.wait()

serial = open(log_path, errors="replace").read()
m = re.search(r"^@test: rng_current=(\S*)", serial, re.M)
check(m is not None and m.group(1).startswith("virtio_rng"),
      f"the guest's hw_random uses virtio_rng ({m.group(1) if m else 'no answer'})")
m = re.search(r"^@test: hwrng=([0-9a-f]*)$", serial, re.M)
data = bytes.fromhex(m.group(1)) if m else b""
check(len(data) == 64 and len(set(data)) > 1,
      f"/dev/hwrng gave 64 bytes, not all equal ({len(data)} bytes, {len(set(data))} distinct)")
check("@test: hvc shell exited" in serial, "the guest's init saw the hvc0 shell exit")
if fails:
    print(f"--- {label}: serial console", flush=True)
    print(serial[-4000:], flush=True)
    print(f"--- {label}: socket", flush=True)
    print(text[-3000:], flush=True)
sys.exit(1 if fails else 0)
