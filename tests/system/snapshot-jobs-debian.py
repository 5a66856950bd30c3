#!/usr/bin/env python3
"""QEMU's snapshot jobs on a busy Debian guest, driven over QMP with Debian's
python3-qemu-qmp, inside the rig.

snapshot-jobs-debian.py KERNEL INITRD TMPDIR VMM [VMM-ARGS...]   (VMM-ARGS hold -snapshot-dir)

The guest and the VM helpers are migration-debian.py's: memcheck rewrites
its 64 MiB region and prints its generation, a loop writes and reads back
numbered blocks of the virtio disk (drive "virtio0"), the console is the
serial port.

  save   snapshot-save while the guest writes: it keeps printing, the job
         goes created, running, waiting, pending, concluded; the tag holds
         the VM state and the disk's copy.
  on     the guest goes on; the host marks a block the guest never uses.
  load   snapshot-load: the guest is back at the save: memcheck's next
         generation and the disk loop's next block are the ones it was at,
         its memory is exactly as then (no MISMATCH), and the disk is back
         (the host's mark is gone).
  delete snapshot-delete: the tag's files are gone.
"""
import asyncio
import importlib.util
import os
import sys
import time

spec = importlib.util.spec_from_file_location(
    "migration_debian", os.path.join(os.path.dirname(os.path.abspath(__file__)), "migration-debian.py"))
md = importlib.util.module_from_spec(spec)
spec.loader.exec_module(md)
check, tmp = md.check, md.tmp

DONE = ["created", "running", "waiting", "pending", "concluded"]
SNAPDIR = md.vmm[md.vmm.index("-snapshot-dir") + 1]
DRIVE = {"vmstate": "virtio0", "devices": ["virtio0"]}
MARK_AT, MARK = 1000 * 4096, b"host-mark-after-the-save"  # past the 256 blocks the guest loop uses


def job_statuses(vm, job_id):
    return [ev["data"]["status"] for ev in vm.events
            if ev["event"] == "JOB_STATUS_CHANGE" and ev["data"]["id"] == job_id]


async def run_job(vm, command, job_id, **args):
    await vm.execute(command, **{"job-id": job_id}, **args)
    return await wait_job(vm, job_id)


async def wait_job(vm, job_id):
    deadline = time.monotonic() + md.MIGRATE_TIMEOUT
    while time.monotonic() < deadline:
        jobs = [j for j in await vm.execute("query-jobs") if j["id"] == job_id]
        if jobs and jobs[0]["status"] == "concluded":
            await asyncio.sleep(0.5)  # the events before it reach the listener
            print(f"  {job_id}: {jobs[0]}", flush=True)
            return jobs[0]
        await asyncio.sleep(0.3)
    check(False, f"{job_id}: the job concluded within {md.MIGRATE_TIMEOUT}s")
    await vm.diagnose()
    return {}


def disk_at(offset, size):
    with open(md.disk, "rb") as f:
        f.seek(offset)
        return f.read(size)


async def main():
    vm = await md.boot("source")
    # Slow enough that writing the guest's RAM spans several of memcheck's lines.
    await vm.execute("migrate-set-parameters", **{"max-bandwidth": 8 << 20})

    print("=== save", flush=True)
    at_gens, at_ns = vm.gens(), vm.disk_ns()
    await vm.execute("snapshot-save", **{"job-id": "save1"}, tag="before", **DRIVE)
    # The snapshot's instant is its pause, after a setup (the copy pool faulted
    # in): by the time query-migrate says active, it has passed.
    await md.wait_migration(vm, want=("active", "completed", "failed", "cancelled"))
    by_gens, by_ns = vm.gens(), vm.disk_ns()
    j = await wait_job(vm, "save1")
    check(j.get("type") == "snapshot-save" and "error" not in j, f"save: the job succeeded ({j.get('error')})")
    check(job_statuses(vm, "save1") == DONE, f"save: JOB_STATUS_CHANGE {job_statuses(vm, 'save1')}")
    check(len(vm.gens()) > len(at_gens) and len(vm.disk_ns()) > len(at_ns),
          f"save: the console went on while it was saved (memcheck {at_gens[-1:]} -> {vm.gens()[-1:]}, "
          f"disk {at_ns[-1:]} -> {vm.disk_ns()[-1:]})")
    check(await vm.status() == "running", "save: the guest runs on (not stopped)")
    files = sorted(os.listdir(os.path.join(SNAPDIR, "before")))
    check(files == ["virtio0.raw", "vmstate"], f"save: the tag holds the VM state and the disk's copy ({files})")
    await vm.execute("job-dismiss", id="save1")
    check(job_statuses(vm, "save1")[-1:] == ["null"], "save: job-dismiss sends status null")

    print("=== on", flush=True)
    ok = await vm.wait_for("3 more memcheck and disk lines",
                           lambda: len(vm.gens()) >= len(at_gens) + 3 and len(vm.disk_ns()) >= len(at_ns) + 3)
    check(ok, f"on: the guest keeps writing its memory, disk and console ({vm.gens()[-1:]}, {vm.disk_ns()[-1:]})")
    with open(md.disk, "r+b") as f:
        f.seek(MARK_AT)
        f.write(MARK)
    last_gen, last_n = vm.gens()[-1], vm.disk_ns()[-1]

    print("=== load", flush=True)
    offset = len(vm.text())
    vm.events.clear()
    j = await run_job(vm, "snapshot-load", "load1", tag="before", **DRIVE)
    check(j.get("type") == "snapshot-load" and "error" not in j, f"load: the job succeeded ({j.get('error')})")
    check(job_statuses(vm, "load1") == DONE, f"load: JOB_STATUS_CHANGE {job_statuses(vm, 'load1')}")
    check(disk_at(MARK_AT, len(MARK)) == bytes(len(MARK)), "load: the disk is back as it was at the save")
    names = [ev["event"] for ev in vm.events]
    check("STOP" in names and "RESUME" in names and await vm.status() == "running",
          f"load: the VM stopped for the load and runs again ({names})")
    after = lambda: vm.text()[offset:]  # noqa: E731
    ok = await vm.wait_for("3 memcheck and 2 disk lines after the load",
                           lambda: len(md.GEN.findall(after())) >= 3 and len(md.DISK.findall(after())) >= 2
                           or md.TROUBLE.search(after()) is not None)
    gens = [int(g) for g, _ in md.GEN.findall(after())]
    ns = [int(n) for n in md.DISK.findall(after())]
    trouble = md.TROUBLE.search(after())
    check(ok and not trouble, f"load: memcheck finds its memory as it was (trouble: {trouble.group(0) if trouble else 'none'})")
    saved_gen, saved_n = (at_gens[-1] if at_gens else 0), (at_ns[-1] if at_ns else 0)
    by_gen, by_n = max(by_gens, default=saved_gen), max(by_ns, default=saved_n)
    check(bool(gens) and saved_gen < gens[0] <= by_gen + 2 and gens[0] <= last_gen,
          f"load: memcheck goes on from the save (gen {gens[:1]}; {saved_gen}-{by_gen} at the save, "
          f"{last_gen} before the load)")
    check(bool(ns) and saved_n < ns[0] <= by_n + 2 and ns[0] <= last_n,
          f"load: the disk loop goes on from the save (block {ns[:1]}; {saved_n}-{by_n} at the save, "
          f"{last_n} before the load)")
    await vm.execute("job-dismiss", id="load1")

    print("=== delete", flush=True)
    j = await run_job(vm, "snapshot-delete", "del1", tag="before", devices=["virtio0"])
    check("error" not in j and job_statuses(vm, "del1") == DONE, f"delete: the job succeeded ({j.get('error')})")
    check(os.listdir(SNAPDIR) == [], f"delete: the tag's files are gone ({os.listdir(SNAPDIR)})")
    await vm.stop()


try:
    asyncio.run(main())
except Exception as e:
    check(False, f"{type(e).__name__}: {e}")
sys.exit(1 if md.fails else 0)
