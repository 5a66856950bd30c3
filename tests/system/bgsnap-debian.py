#!/usr/bin/env python3
"""Background snapshots of a busy Debian guest, driven over QMP with Debian's
python3-qemu-qmp, inside the rig.

bgsnap-debian.py KERNEL INITRD TMPDIR VMM [VMM-ARGS...]

The guest and the VM helpers are migration-debian.py's: memcheck rewrites
its 64 MiB region (every page names the generation it was written with,
checked before each rewrite and every second), a loop writes and reads
back numbered blocks of the virtio disk, and the console is the serial port.

  snapshot  capability background-snapshot, migrate to file: at 16 MiB/s:
            the guest keeps running and printing while RAM is written; the
            source runs on afterwards.
  restore   kill the source, -incoming file: in a new process: memcheck
            goes on from the generation at the snapshot's start, finding its
            region exactly as it was then (one point in time), and the disk
            loop goes on.
  cancel    migrate_cancel midway: the guest runs on, no file is left, and
            memcheck's write rate is back to what it was before.
  full      a target tmpfs too small for the snapshot: the snapshot fails
            with the write error, the guest runs on at its old rate, no file.

First, while memcheck runs: HMP's x/1i $pc reads the code at the vCPU's
PC, the program's too (the snapshot's page walk; KVM_TRANSLATE, which
SMAP refuses a program's pages, could not).
"""
import asyncio
import importlib.util
import os
import subprocess
import sys
import time

spec = importlib.util.spec_from_file_location(
    "migration_debian", os.path.join(os.path.dirname(os.path.abspath(__file__)), "migration-debian.py"))
md = importlib.util.module_from_spec(spec)
spec.loader.exec_module(md)
check, VM, tmp = md.check, md.VM, md.tmp

BACKGROUND = [{"capability": "events", "state": True}, {"capability": "background-snapshot", "state": True}]


async def rate(vm, seconds=6):
    """Page writes a second memcheck did over the next @seconds (from its own counter)."""
    w0 = [int(w) for _, w in md.GEN.findall(vm.text())]
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    w1 = [int(w) for _, w in md.GEN.findall(vm.text())]
    t1 = time.monotonic()
    if not w0 or not w1 or w1[-1] <= w0[-1]:
        return 0.0
    return (w1[-1] - w0[-1]) / (t1 - t0)


async def snapshot(src, uri, bandwidth):
    await src.execute("migrate-set-capabilities", capabilities=BACKGROUND)
    await src.execute("migrate-set-parameters", **{"max-bandwidth": bandwidth})
    src.events.clear()
    await src.execute("migrate", uri=uri)


async def stage_code(src):
    in_program = 0
    for _ in range(40):
        out = await src.execute("human-monitor-command", **{"command-line": "x/1i $pc"})
        if "Cannot access" in out or not out.startswith("0x"):
            check(False, f"x/1i $pc: {out.strip()}")
            return src
        in_program += int(out.split(":")[0], 16) < 1 << 47
        if in_program == 3:
            break
        await asyncio.sleep(0.05)
    check(in_program > 0, f"x/1i $pc disassembles at the PC, the program's code too ({in_program} times there)")
    return src


async def stage_snapshot(src):
    state = os.path.join(tmp, "bg.mig")
    before = await rate(src)
    # What the guest printed before the migrate command is before the pause,
    # what it printed by the `active` status after it (the setup before the
    # pause faults in the copy pool, a second or two in this rig): the
    # restored guest goes on from a point between.
    at_start_gens, at_start_disk = src.gens(), src.disk_ns()
    await snapshot(src, f"file:{state}", 16 << 20)
    info = await md.wait_migration(src, want=("active", "completed", "failed", "cancelled"))
    check(info.get("status") == "active", f"snapshot: the snapshot is being written ({info.get('status')})")
    at_active = src.gens(), src.disk_ns()
    lines_at_start = len(src.text().splitlines())
    during = await rate(src, 4)
    info = await md.wait_migration(src)
    ram = info.get("ram", {})
    print(f"  snapshot: total-time {info.get('total-time')} ms, pause {info.get('downtime')} ms, "
          f"setup-time {info.get('setup-time')} ms, ram {ram}", flush=True)
    print(f"  snapshot: memcheck wrote {before:.0f} pages/s before, {during:.0f} during", flush=True)
    check(info.get("status") == "completed", f"snapshot: query-migrate says completed ({info.get('error-desc', '')})")
    statuses = md.migration_events(src)
    check(statuses[:2] == ["setup", "active"] and statuses[-1] == "completed", f"snapshot: MIGRATION events {statuses}")
    check(len(src.gens()) > len(at_start_gens) and len(src.text().splitlines()) > lines_at_start,
          f"snapshot: the console went on while it was written (memcheck {at_start_gens[-1:]} -> {src.gens()[-1:]})")
    check(await src.status() == "running", "snapshot: the source runs on afterwards (not postmigrate)")
    ok = await src.wait_for("2 more memcheck lines", lambda: len(src.gens()) >= len(at_start_gens) + 4)
    check(ok, f"snapshot: memcheck goes on in the source (up to gen {src.gens()[-1:]})")
    src.proc.kill()
    await src.stop()
    print(f"  state file: {os.path.getsize(state) >> 20} MiB", flush=True)

    dst = VM("restored")
    await dst.start(incoming=f"file:{state}")
    info = await md.wait_migration(dst, want=("completed", "failed"))
    check(info.get("status") == "completed", f"restore: the destination's query-migrate says completed ({info})")
    ok = await md.continues(at_start_gens, at_start_disk, dst, "restore of the snapshot's start", until=at_active)
    return dst if ok else None


async def interrupted(src, label, uri, path, bandwidth, act):
    """Start a snapshot to @uri, let @act interrupt it; the guest runs on unprotected."""
    before = await rate(src)
    await snapshot(src, uri, bandwidth)
    info = await act()
    print(f"  {label}: {info}", flush=True)
    check(not os.path.exists(path), f"{label}: no snapshot file is left")
    check(await src.status() == "running", f"{label}: the guest runs on")
    after = await rate(src)
    print(f"  {label}: memcheck wrote {before:.0f} pages/s before, {after:.0f} after", flush=True)
    check(after >= 0.5 * before, f"{label}: memcheck's write rate is back ({after:.0f} pages/s, "
          f"{before:.0f} before): no page is left protected")
    trouble = md.TROUBLE.search(src.text())
    check(not trouble, f"{label}: memcheck and the disk loop found nothing wrong "
          f"({trouble.group(0) if trouble else 'none'})")
    return info


async def stage_cancel(src):
    path = os.path.join(tmp, "cancelled.mig")

    async def cancel():
        deadline = time.monotonic() + md.STEP_TIMEOUT
        info = {}
        while time.monotonic() < deadline:
            info = await src.execute("query-migrate")
            if info.get("status") not in ("setup", "active") or info.get("ram", {}).get("transferred", 0) >= 4 << 20:
                break
            await asyncio.sleep(0.3)
        check(info.get("status") == "active", f"cancel: the snapshot is active ({info.get('status')})")
        await src.execute("migrate_cancel")
        info = await md.wait_migration(src, want=("cancelled", "failed", "completed"))
        check(info.get("status") == "cancelled", f"cancel: query-migrate says cancelled ({info.get('status')})")
        return info

    await interrupted(src, "cancel", f"file:{path}", path, 2 << 20, cancel)
    return src


async def stage_full(src):
    small = os.path.join(tmp, "small")
    os.makedirs(small, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", small], check=True)
    path = os.path.join(small, "snap.mig")

    async def fill():
        info = await md.wait_migration(src, want=("completed", "failed", "cancelled"))
        err = info.get("error-desc", "")
        check(info.get("status") == "failed" and "No space left on device" in err,
              f"full: the snapshot fails naming the write error ({info.get('status')}: {err})")
        check("failed" in md.migration_events(src), f"full: MIGRATION events {md.migration_events(src)}")
        return info

    try:
        await interrupted(src, "full", f"file:{path}", path, 0, fill)
    finally:
        subprocess.run(["umount", small])
    return src


async def main():
    vm = None
    for stage in (stage_code, stage_snapshot, stage_cancel, stage_full):
        print(f"=== {stage.__name__[6:]}", flush=True)
        try:
            if vm is None:
                vm = await md.boot("source")
            vm = await stage(vm)
        except Exception as e:
            check(False, f"{stage.__name__[6:]}: {type(e).__name__}: {e}")
            vm = None
        if vm is None:
            for other in VM.all:
                await other.stop()
    for other in VM.all:
        await other.stop()


asyncio.run(main())
sys.exit(1 if md.fails else 0)
