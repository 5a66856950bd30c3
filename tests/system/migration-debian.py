#!/usr/bin/env python3
"""Save/restore and live migration of a busy Debian guest, driven over QMP
with Debian's own client library (python3-qemu-qmp), inside the rig.

migration-debian.py KERNEL INITRD TMPDIR VMM [VMM-ARGS...]

The guest (tests/system/migration-debian.sh builds its initramfs) runs
tests/guest-tools/memcheck, which prints "memcheck: gen=N writes=W ok" about
every second after checking its whole region, and a loop that writes a
numbered block to its virtio disk with O_DIRECT, reads it back and prints
"@disk: n=K ok". Its console is the serial port (ttyS0), logged to a file
per VMM process.

  save     migrate to file:PATH while memcheck writes, kill the VMM, restore
           with -incoming file:PATH in a new process: memcheck and the disk
           loop go on from where they were, and the disk image holds the
           blocks the restored guest wrote.
  live     -incoming defer + migrate-incoming tcp:127.0.0.1:PORT, migrate
           over TCP from the restored VMM: the guest goes on in the
           destination, the source ends in postmigrate (and exits 0 on quit).
  cancel   max-bandwidth made small, migrate, migrate_cancel once RAM is
           flowing: the source says cancelled and its guest keeps running,
           the destination exits non-zero.

Each stage takes the guest the previous one left running, or boots a fresh
one if that stage failed. Prints ok:/FAIL: lines; exits 1 on any failure.
Waits have limits (the rig can stall guests for minutes); nothing asserts
how fast anything is.
"""
import asyncio
import os
import re
import signal
import sys
import time

from qemu.qmp import EventListener, QMPClient
from thread_stacks import thread_stacks

BOOT_TIMEOUT = 180
# A test whose whole run is shorter sets VIREO_STEP_TIMEOUT below the rig's
# limit, so that a step that stops reports which side stopped (diagnose).
STEP_TIMEOUT = int(os.environ.get("VIREO_STEP_TIMEOUT", 300))
MIGRATE_TIMEOUT = min(240, STEP_TIMEOUT)
QMP_TIMEOUT = 60  # for one command's answer
REGION = 64 << 20  # memcheck -s 64 (migration-debian.sh)
LIVE_PORT, CANCEL_PORT = 44461, 44462
GEN = re.compile(r"^memcheck: gen=(\d+) writes=(\d+) ok\r?$", re.M)
DISK = re.compile(r"^@disk: n=(\d+) ok\r?$", re.M)
TROUBLE = re.compile(r"MISMATCH|Kernel panic|Oops|general protection|@disk: n=\d+ FAIL|invalid opcode")
STALL = re.compile(r"soft lockup|rcu_preempt self-detected stall|rcu: INFO")

kernel, initrd, tmp = sys.argv[1:4]
vmm = sys.argv[4:]
disk = os.path.join(tmp, "disk.img")
fails = 0


def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    fails += not ok
    return ok


class VM:
    """One VMM process: its console log, its QMP client and its events."""

    all = []

    def __init__(self, name):
        VM.all.append(self)
        self.name = f"{len(VM.all)}-{name}"
        self.log = os.path.join(tmp, self.name + ".log")
        self.sock = os.path.join(tmp, self.name + ".qmp")
        self.proc = self.qmp = self.collector = None
        self.events = []

    async def start(self, incoming=None):
        args = vmm + ["-m", "512M", "-smp", "1", "-kernel", kernel, "-initrd", initrd,
                      "-append", "console=ttyS0 panic=-1 quiet lapic=notscdeadline vireo.end=hold",
                      "-no-reboot", "-drive", f"file={disk},if=virtio,format=raw",
                      "-qmp", f"unix:{self.sock},server=on,wait=off"]
        if incoming:
            args += ["-incoming", incoming]
        print(f"{self.name}: {' '.join(args)}", flush=True)
        with open(self.log, "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
        self.qmp = QMPClient(self.name)
        listener = EventListener()
        self.qmp.register_listener(listener)
        self.collector = asyncio.get_running_loop().create_task(self.collect(listener))
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                await self.qmp.connect(self.sock)
                break
            except Exception:
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: no QMP socket (exit {self.proc.returncode}): "
                                       + self.text()[-500:])
                await asyncio.sleep(0.2)
        if not incoming:  # a destination sets its own before migrate-incoming (defer)
            await self.execute("migrate-set-capabilities",
                               capabilities=[{"capability": "events", "state": True}])

    async def collect(self, listener):
        async for ev in listener:
            self.events.append(ev)
            print(f"  {self.name}: event {ev['event']} {ev.get('data', {})}", flush=True)

    async def execute(self, cmd, **args):
        try:
            return await asyncio.wait_for(self.qmp.execute(cmd, args or None), QMP_TIMEOUT)
        except asyncio.TimeoutError:
            print(f"  {self.name}: no answer to {cmd} after {QMP_TIMEOUT}s", flush=True)
            self.threads()
            raise

    def threads(self):
        if self.alive():
            for line in thread_stacks(self.proc.pid):
                print(f"  {self.name}: {line}", flush=True)

    async def status(self):
        return (await self.execute("query-status"))["status"]

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def gens(self):
        return [int(g) for g, _ in GEN.findall(self.text())]

    def disk_ns(self):
        return [int(n) for n in DISK.findall(self.text())]

    async def wait_status(self, want, timeout=30):
        deadline = time.monotonic() + timeout
        status = await self.status()
        while status != want and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            status = await self.status()
        return status

    def alive(self):
        return self.proc is not None and self.proc.returncode is None

    async def wait_for(self, what, cond, timeout=STEP_TIMEOUT):
        """Wait until cond() holds (polling the log); False after timeout or an exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            if not self.alive():
                print(f"  {self.name}: exited ({self.proc.returncode}) waiting for {what}", flush=True)
                return cond()
            await asyncio.sleep(0.5)
        print(f"  {self.name}: no {what} after {timeout}s", flush=True)
        await self.diagnose()
        return False

    async def diagnose(self):
        """Where the vCPU is, for a guest that stopped making progress (a VMM
        without human-monitor-command just says so), its threads, and the rig's kernel log."""
        self.threads()
        for _ in range(3):
            try:
                regs = await self.execute("human-monitor-command", **{"command-line": "info registers"})
                print("  " + " | ".join(line for line in regs.splitlines()
                                        if line.startswith(("RAX", "RIP", "CR0", "EFER"))), flush=True)
            except Exception as e:
                print(f"  {self.name}: no register dump: {e}", flush=True)
                break
            await asyncio.sleep(2)
        rig = await asyncio.create_subprocess_shell("dmesg | tail -5", stdout=asyncio.subprocess.PIPE)
        out, _ = await rig.communicate()
        print("  rig dmesg: " + out.decode(errors="replace").replace("\n", "\n  rig dmesg: "), flush=True)

    async def exit_status(self, timeout=STEP_TIMEOUT):
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            return "hung"

    async def stop(self):
        """Disconnect and make sure the process is gone; show the end of its console."""
        if self.proc is None:
            return
        if self.collector:
            self.collector.cancel()
        if self.qmp:
            try:
                await self.qmp.disconnect()
            except Exception:
                pass
            self.qmp = None
        if self.alive():
            self.proc.kill()
            await self.proc.wait()
        text = self.text()
        print(f"--- {self.name} console (last 2500 of {len(text)} chars)", flush=True)
        sys.stdout.write(text[-2500:])
        print(f"\n--- {self.name} end", flush=True)
        self.proc = None
        stalls = len(STALL.findall(text))
        if stalls:
            print(f"note: {self.name}: {stalls} guest stall reports (the rig under load, docs/rig.md)", flush=True)


async def boot(name):
    vm = VM(name)
    await vm.start()
    ok = await vm.wait_for("3 memcheck lines and 2 disk lines",
                           lambda: len(vm.gens()) >= 3 and len(vm.disk_ns()) >= 2, BOOT_TIMEOUT)
    check(ok, f"{vm.name}: the guest booted, memcheck and the disk loop are running")
    return vm


async def wait_migration(vm, want=("completed", "failed", "cancelled"), timeout=MIGRATE_TIMEOUT):
    """Poll query-migrate until its status is one of WANT; the last answer."""
    deadline = time.monotonic() + timeout
    info = {}
    while time.monotonic() < deadline and vm.alive():
        info = await vm.execute("query-migrate")
        if info.get("status") in want:
            break
        await asyncio.sleep(0.3)
    return info


def migration_events(vm):
    return [ev["data"]["status"] for ev in vm.events if ev["event"] == "MIGRATION"]


async def continues(src_gens, src_disk, dst, label, until=None):
    """The guest goes on in DST from where SRC left it: memcheck (no reboot, no
    mismatch), the disk loop, the console. SRC_GENS and SRC_DISK are what the
    source printed before its state was taken; UNTIL, the same printed by the
    time it was surely taken (a background snapshot's instant lies between
    the command and the `active` status)."""
    last_gen = max(src_gens) if src_gens else 0
    last_n = max(src_disk) if src_disk else 0
    until_gen, until_n = (max(until[0], default=last_gen), max(until[1], default=last_n)) if until else (last_gen, last_n)
    ok = await dst.wait_for("3 memcheck lines and 2 disk lines after the switch",
                            lambda: len(dst.gens()) >= 3 and len(dst.disk_ns()) >= 2
                            or TROUBLE.search(dst.text()) is not None)
    gens, ns = dst.gens(), dst.disk_ns()
    trouble = TROUBLE.search(dst.text())
    check(ok and not trouble, f"{label}: memcheck keeps checking its memory "
          f"({len(gens)} ok lines, trouble: {trouble.group(0) if trouble else 'none'})")
    # A line the source had begun may end in the destination's log, so the
    # first whole line there is the next generation or the one after it.
    src_range = f"{last_gen}" if until_gen == last_gen else f"{last_gen}-{until_gen}"
    check(bool(gens) and last_gen < gens[0] <= until_gen + 2 and gens == list(range(gens[0], gens[0] + len(gens))),
          f"{label}: memcheck's generations go on from the source's {src_range} "
          f"(destination: {gens[:1]}..{gens[-1:]}), the guest did not restart")
    check(bool(ns) and last_n < ns[0] <= until_n + 2,
          f"{label}: the disk loop goes on from block {last_n}{'' if until_n == last_n else f'-{until_n}'} "
          f"(destination: {ns[:1]}..{ns[-1:]})")
    return ok and not trouble


def image_holds(n):
    with open(disk, "rb") as f:
        f.seek((n % 256) * 4096)
        return f.read(19) == b"disk-block-%08d" % n


async def stage_save(src):
    state = os.path.join(tmp, "state.mig")
    await src.execute("migrate", uri=f"file:{state}")
    info = await wait_migration(src)
    check(info.get("status") == "completed", f"save: query-migrate says completed ({info})")
    check("completed" in migration_events(src), f"save: MIGRATION events {migration_events(src)}")
    check(await src.status() == "postmigrate", "save: the source is paused in postmigrate")
    gens, ns = src.gens(), src.disk_ns()
    src.proc.send_signal(signal.SIGKILL)
    await src.stop()
    print(f"  state file: {os.path.getsize(state) >> 20} MiB", flush=True)

    dst = VM("restored")
    await dst.start(incoming=f"file:{state}")
    info = await wait_migration(dst, want=("completed", "failed"))
    check(info.get("status") == "completed", f"restore: the destination's query-migrate says completed ({info})")
    status = await dst.wait_status("running")
    check(status == "running", f"restore: the restored guest is running (query-status {status})")
    ok = await continues(gens, ns, dst, "restore")
    n = max(dst.disk_ns(), default=0)
    check(n > max(ns, default=0) and image_holds(n),
          f"restore: the disk image holds block {n}, written by the restored guest")
    return dst if ok else None


async def stage_live(src):
    dst = VM("live-dst")
    await dst.start(incoming="defer")
    await dst.execute("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    await dst.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{LIVE_PORT}")
    before = max(src.gens(), default=0)
    src.events.clear()  # a restored source has its incoming migration's events
    await src.execute("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    await src.execute("migrate", uri=f"tcp:127.0.0.1:{LIVE_PORT}")
    info = await wait_migration(src)
    ram = info.get("ram", {})
    print(f"  live: total-time {info.get('total-time')} ms, downtime {info.get('downtime')} ms, "
          f"setup-time {info.get('setup-time')} ms, ram {ram}", flush=True)
    check(info.get("status") == "completed", f"live: query-migrate says completed (status {info.get('status')})")
    check(ram.get("transferred", 0) >= REGION,
          f"live: at least memcheck's {REGION >> 20} MiB went over the wire ({ram.get('transferred', 0) >> 20} MiB)")
    check(await src.status() == "postmigrate", "live: the source is paused in postmigrate")
    check("completed" in migration_events(src), f"live: source MIGRATION events {migration_events(src)}")
    gens, ns = src.gens(), src.disk_ns()
    check(max(gens, default=0) > before, "live: memcheck ran on the source while RAM was being sent")
    info = await wait_migration(dst, want=("completed", "failed"), timeout=STEP_TIMEOUT)
    check(info.get("status") == "completed", f"live: the destination's query-migrate says completed ({info.get('status')})")
    status = await dst.wait_status("running")
    check(status == "running", f"live: the destination is running (query-status {status})")
    ok = await continues(gens, ns, dst, "live")
    await src.execute("quit")
    rc = await src.exit_status()
    check(rc == 0, f"live: the source exits 0 on quit (got {rc})")
    await src.stop()
    return dst if ok else None


async def stage_cancel(src):
    await src.execute("migrate-set-parameters", **{"max-bandwidth": 1 << 20})
    params = await src.execute("query-migrate-parameters")
    check(params.get("max-bandwidth") == 1 << 20, f"cancel: max-bandwidth is 1 MiB/s ({params.get('max-bandwidth')})")
    dst = VM("cancel-dst")
    await dst.start(incoming="defer")
    await dst.execute("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    await dst.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{CANCEL_PORT}")
    src.events.clear()
    await src.execute("migrate", uri=f"tcp:127.0.0.1:{CANCEL_PORT}")
    deadline = time.monotonic() + STEP_TIMEOUT
    info = {}
    while time.monotonic() < deadline:
        info = await src.execute("query-migrate")
        if info.get("status") != "active" and info.get("status") != "setup" or \
                info.get("ram", {}).get("transferred", 0) >= 2 << 20:
            break
        await asyncio.sleep(0.3)
    check(info.get("status") == "active", f"cancel: the migration is active with RAM flowing "
          f"(status {info.get('status')}, {info.get('ram', {}).get('transferred', 0)} bytes)")
    await src.execute("migrate_cancel")
    info = await wait_migration(src, want=("cancelled", "failed", "completed"), timeout=STEP_TIMEOUT)
    check(info.get("status") == "cancelled", f"cancel: query-migrate says cancelled ({info.get('status')})")
    check("cancelled" in migration_events(src), f"cancel: source MIGRATION events {migration_events(src)}")
    status = await src.status()
    check(status == "running", f"cancel: the source is running (query-status {status})")
    gens, ns = src.gens(), src.disk_ns()
    ok = await src.wait_for("2 more memcheck and disk lines",
                            lambda: len(src.gens()) >= len(gens) + 2 and len(src.disk_ns()) >= len(ns) + 1)
    trouble = TROUBLE.search(src.text())
    check(ok and not trouble, f"cancel: the source's guest keeps running, checking its memory and its disk "
          f"(memcheck {src.gens()[-1:]}, disk {src.disk_ns()[-1:]}, trouble: {trouble.group(0) if trouble else 'none'})")
    rc = await dst.exit_status(60)
    check(rc not in (0, "hung"), f"cancel: the destination exits non-zero (got {rc})")
    await dst.stop()
    await src.execute("quit")
    check(await src.exit_status() == 0, "cancel: the source exits 0 on quit")
    await src.stop()


async def main():
    vm = None
    for stage in (stage_save, stage_live, stage_cancel):
        print(f"=== {stage.__name__[6:]}", flush=True)
        try:
            if vm is None:
                vm = await boot("source")
            vm = await stage(vm)
        except Exception as e:
            check(False, f"{stage.__name__[6:]}: {type(e).__name__}: {e}")
            vm = None
        if vm is None:  # a failed stage: clear the field for the next one
            for other in VM.all:
                await other.stop()
    for other in VM.all:
        await other.stop()


if __name__ == "__main__":  # tests/system/bgsnap-debian.py takes its VM and stages from here
    asyncio.run(main())
    sys.exit(1 if fails else 0)
