#!/usr/bin/env python3
"""Debian's QMP client library (python3-qemu-qmp) drives Vireo, inside the rig.

qmp-debian.py VMM KERNEL INITRD WORKDIR

Run 1: query-status, stop (STOP, paused), cont (RESUME, running),
system_powerdown (the guest's acpid powers it off: SHUTDOWN with guest=true,
Vireo exits 0). Run 2: quit (a reply, SHUTDOWN, exit 0).
Prints ok:/FAIL: lines; exits 1 on any failure.
"""
import asyncio
import os
import sys
import tempfile
import time

from qemu.qmp import EventListener, QMPClient

READY = "@vireo-init: done rc=0"  # the guest's acpid is up, the init holds
BOOT_TIMEOUT = 150
STEP_TIMEOUT = 60

vmm, kernel, initrd, work = sys.argv[1:5]
tmp = tempfile.mkdtemp(prefix="qmp-debian.")
fails = 0


def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    fails += not ok
    return ok


async def start(name):
    """Start Vireo with its output in WORK/NAME.log; returns (process, client, listener, log)."""
    # The rig's /tmp is a tmpfs: a unix socket there, not on the 9p work dir.
    sock = os.path.join(tmp, name + ".qmp")
    log = os.path.join(tmp, name + ".log")
    out = open(log, "wb")
    # One vCPU: with two, idle guests in the rig stalled on their timers in
    # 3 of 8 boots (docs/rig.md); nothing here needs a second vCPU.
    proc = await asyncio.create_subprocess_exec(
        vmm, "-m", "512M", "-smp", "1", "-kernel", kernel, "-initrd", initrd,
        "-append", "console=ttyS0 panic=-1 quiet lapic=notscdeadline vireo.end=hold",
        "-nographic", "-no-reboot", "-qmp", f"unix:{sock},server=on,wait=off",
        stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
    out.close()
    qmp = QMPClient(name)
    listener = EventListener()
    qmp.register_listener(listener)
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        try:
            await qmp.connect(sock)
            break
        except Exception:
            if proc.returncode is not None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    version = (await qmp.execute("query-version"))["qemu"]
    print(f"{name}: connected, QEMU version {version['major']}.{version['minor']}.{version['micro']}",
          flush=True)
    return proc, qmp, listener, log


async def wait_marker(proc, log, marker):
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline and proc.returncode is None:
        with open(log, errors="replace") as f:
            if marker in f.read():
                return True
        await asyncio.sleep(0.5)
    if proc.returncode is None:
        await backtraces(proc)
    return False


async def backtraces(proc):
    """Every Vireo thread's backtrace, as run-guarded.sh prints for a stalled guest."""
    print(f"=== no '{READY}' after {BOOT_TIMEOUT}s; threads of Vireo:", flush=True)
    gdb = await asyncio.create_subprocess_exec(
        "gdb", "-p", str(proc.pid), "-batch", "-ex", "thread apply all bt",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await gdb.communicate()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(("Thread", "#")):
            print(line, flush=True)


async def event(listener, name):
    """The next event called NAME (others are printed and skipped), or None."""
    try:
        while True:
            ev = await asyncio.wait_for(listener.get(), STEP_TIMEOUT)
            print(f"  event {ev['event']} {ev.get('data', {})}", flush=True)
            if ev["event"] == name:
                return ev
    except asyncio.TimeoutError:
        return None


async def status(qmp):
    return (await qmp.execute("query-status"))["status"]


async def exit_status(proc):
    try:
        return await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return "hung"


async def close(qmp):
    try:
        await qmp.disconnect()
    except Exception as e:  # the server hung up first: expected after the exit
        print(f"  disconnect: {type(e).__name__}: {e}", flush=True)


def show_log(log):
    print(f"--- {log}", flush=True)
    with open(log, errors="replace") as f:
        sys.stdout.write(f.read()[-3000:])
    print("---", flush=True)


async def run_powerdown():
    proc, qmp, listener, log = await start("powerdown")
    try:
        if not check(await wait_marker(proc, log, READY), "powerdown: the guest's acpid is up"):
            return
        check(await status(qmp) == "running", "query-status says running")
        await qmp.execute("stop")
        check(await event(listener, "STOP") is not None, "stop: STOP event")
        check(await status(qmp) == "paused", "stop: query-status says paused")
        await qmp.execute("cont")
        check(await event(listener, "RESUME") is not None, "cont: RESUME event")
        check(await status(qmp) == "running", "cont: query-status says running")
        await qmp.execute("system_powerdown")
        ev = await event(listener, "SHUTDOWN")
        check(ev is not None and ev["data"].get("guest") is True,
              f"system_powerdown: the guest powers off (SHUTDOWN {ev and ev.get('data')})")
        rc = await exit_status(proc)
        check(rc == 0, f"system_powerdown: Vireo exits with status 0 (got {rc})")
        with open(log, errors="replace") as f:
            check("@test: power button" in f.read(), "the guest's acpid saw the power button")
    finally:
        await close(qmp)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        show_log(log)


async def run_quit():
    proc, qmp, listener, log = await start("quit")
    try:
        if not check(await wait_marker(proc, log, READY), "quit: the guest reached its init"):
            return
        check(await qmp.execute("quit") == {}, "quit: an empty reply")
        ev = await event(listener, "SHUTDOWN")
        check(ev is not None and ev["data"].get("guest") is False
              and ev["data"].get("reason") == "host-qmp-quit",
              f"quit: SHUTDOWN event from the host ({ev and ev.get('data')})")
        rc = await exit_status(proc)
        check(rc == 0, f"quit: Vireo exits with status 0 (got {rc})")
    finally:
        await close(qmp)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        show_log(log)


async def main():
    for run in (run_powerdown, run_quit):
        try:
            await run()
        except Exception as e:
            check(False, f"{run.__name__}: {type(e).__name__}: {e}")


asyncio.run(main())
sys.exit(1 if fails else 0)
