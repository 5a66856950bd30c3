#!/usr/bin/env python3
"""A guest's devices across a save to a file and a restore in a new process (in the rig).

devstate-debian.py VMM KERNEL INITRD

Prints ok:/FAIL: lines; exits 1 on any failure.
"""
import asyncio
import os
import re
import sys
import tempfile
import time

from qemu.qmp import QMPClient
from thread_stacks import thread_stacks

# The source reaches its save point in 20-40 s and the restored guest's run takes 15-25 s: the limits
# (and the 10 s each of diagnose's questions) leave room, inside the rig's 180 s, to say where it stopped
# (a guest that stalls in the rig, docs/rig.md).
BOOT_TIMEOUT = 90
STEP_TIMEOUT = 120
CONNECT_TIMEOUT = 30
RESTORED_TIMEOUT = 90
SAVE_AT = "@tick 15"

vmm, kernel, initrd = sys.argv[1:4]
tmp = tempfile.mkdtemp(prefix="devstate.")  # the rig's tmpfs: sockets, the disk, the state
disk = os.path.join(tmp, "disk.img")
state = os.path.join(tmp, "vm.state")
fails = 0


def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    fails += not ok
    return ok


def args(name, extra):
    # The same machine both times; only host paths differ (they are not part of the stream's fingerprint).
    return [vmm, "-m", "512M", "-smp", "1", "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 quiet lapic=notscdeadline",
            "-nographic", "-no-reboot",
            "-drive", f"file={disk},if=virtio,format=raw,cache=none",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-serial-pci",
            "-chardev", f"file,id=hvc,path={os.path.join(tmp, name + '.hvc')}",
            "-device", "virtconsole,chardev=hvc",
            "-device", "virtio-rng-pci",
            "-qmp", f"unix:{os.path.join(tmp, name + '.qmp')},server=on,wait=off"] + extra


async def start(name, extra=()):
    log = os.path.join(tmp, name + ".log")
    out = open(log, "wb")
    proc = await asyncio.create_subprocess_exec(*args(name, list(extra)), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=out, stderr=out)
    out.close()
    qmp = QMPClient(name)
    # Each try bounded too: a VMM that accepts but never greets would hold connect() past the rig's limit.
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            await asyncio.wait_for(qmp.connect(os.path.join(tmp, name + ".qmp")), max(deadline - time.monotonic(), 1))
            break
        except Exception as e:
            if proc.returncode is not None or time.monotonic() > deadline:
                print(f"FAIL: {name}: no QMP greeting in {CONNECT_TIMEOUT} s ({type(e).__name__} {e}); "
                      f"exit status {proc.returncode}", flush=True)
                for line in thread_stacks(proc.pid) if proc.returncode is None else []:
                    print(f"  {name}: {line}", flush=True)
                show(log)
                raise
            await asyncio.sleep(0.2)
    return proc, qmp, log


def text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


async def wait_for(proc, log, marker, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.returncode is None:
        if marker in text(log):
            return True
        await asyncio.sleep(0.5)
    return marker in text(log)


def ticks(s, prefix):
    return [int(m) for m in re.findall(r"^" + prefix + r"(\d+)\r?$", s, re.M)]


def show(path):
    print(f"--- {path}", flush=True)
    sys.stdout.write(text(path)[-4000:])
    print("---", flush=True)


async def diagnose(name, proc, qmp):
    """Where a VMM whose guest stopped making progress is: its migration, its run state, its threads."""
    for cmd in ("query-migrate", "query-status"):
        try:
            print(f"  {name}: {cmd}: {await asyncio.wait_for(qmp.execute(cmd), 10)}", flush=True)
        except Exception as e:
            print(f"  {name}: {cmd}: no answer ({type(e).__name__} {e})", flush=True)
    for line in thread_stacks(proc.pid):
        print(f"  {name}: {line}", flush=True)


async def finish(proc):
    try:
        return await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return "hung"


async def main():
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    src, qmp, log = await start("source")
    try:
        if not check(await wait_for(src, log, SAVE_AT), f"source: the guest's loop reached '{SAVE_AT}'"):
            if src.returncode is None:
                await diagnose("source", src, qmp)
            show(log)
            return
        await qmp.execute("migrate", {"uri": f"file:{state}"})
        deadline = time.monotonic() + STEP_TIMEOUT
        while (st := (await qmp.execute("query-migrate")).get("status")) not in ("completed", "failed") \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        check(st == "completed", f"source: saved to a file (status {st})")
        run = (await qmp.execute("query-status"))["status"]
        check(run == "postmigrate", f"source: paused in postmigrate (got {run})")
        await qmp.execute("quit")
        check(await finish(src) == 0, "source: Vireo exits with status 0")
    finally:
        try:
            await qmp.disconnect()
        except Exception:
            pass
        if src.returncode is None:
            src.kill()
            await src.wait()
    show(log)
    before = ticks(text(log), "@tick ")
    hvc_before = ticks(text(os.path.join(tmp, "source.hvc")), "hvc-")
    check(before and hvc_before, f"source: ticks on the serial console up to {before[-1:]} and on hvc0 up to "
          f"{hvc_before[-1:]}")
    check("@test: lease before" in text(log), "source: a DHCP lease over virtio-net")

    dst, qmp, dlog = await start("restored", ["-incoming", f"file:{state}"])
    done = await wait_for(dst, dlog, "@test: end", RESTORED_TIMEOUT)
    if not done and dst.returncode is None:
        await diagnose("restored", dst, qmp)
    try:
        await qmp.disconnect()
    except Exception:
        pass
    rc = await finish(dst)
    show(dlog)
    out = text(dlog)
    after = ticks(out, "@tick ")
    hvc_after = ticks(text(os.path.join(tmp, "restored.hvc")), "hvc-")
    check(done, "restored: the guest ends its loop")
    check(rc == 0, f"restored: Vireo exits with status 0 (got {rc})")
    # The save may fall in the middle of a line ("@" before, "tick 19" after): the two consoles joined
    # must hold every tick once, in order, with the restored one carrying on where the source stopped.
    joined = ticks(text(log) + out, "@tick ")
    check(after and before and joined == list(range(60)) and after[0] > before[-1],
          f"restored: the serial console goes on from tick {before[-1:]} (got {after[:1]}..{after[-1:]}; "
          f"both consoles together: {len(joined)} ticks, in order: {joined == sorted(set(joined))})")
    hvc_joined = ticks(text(os.path.join(tmp, "source.hvc")) + text(os.path.join(tmp, "restored.hvc")), "hvc-")
    check(hvc_after and hvc_before and hvc_joined == list(range(60)) and hvc_after[0] > hvc_before[-1],
          f"restored: hvc0 goes on from {hvc_before[-1:]} (got {hvc_after[:1]}..{hvc_after[-1:]}; "
          f"both together: {len(hvc_joined)} lines, in order: {hvc_joined == sorted(set(hvc_joined))})")
    check("@bad" not in out and "@bad" not in text(log), "no disk or hwrng check failed, before or after")
    check("@test: 60 of 60 blocks read back from the disk" in out,
          "every block written before and after the restore reads back from the disk")
    check("@test: lease after" in out, "restored: a DHCP lease over virtio-net")


try:
    asyncio.run(main())
except Exception as e:
    check(False, f"{type(e).__name__}: {e}")
sys.exit(1 if fails else 0)
