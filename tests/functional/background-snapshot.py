#!/usr/bin/env python3
"""Background snapshots of tests/guest/memcount, as a QMP client sees them.

background-snapshot.py DIR ELF VMM [VMM-ARGS...]

With the capability background-snapshot, `migrate` saves the VM as it was
when the snapshot began while the guest keeps running. memcount rewrites
its region every generation after checking it holds the previous one: a
snapshot that mixed pages from two moments shows up in the restored guest
as a MISMATCH line.
"""
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memcount_vm import STEP, Vm, check, restored_from, workdir  # noqa: E402

BACKGROUND = [{"capability": "events", "state": True}, {"capability": "background-snapshot", "state": True}]


def wait_status(vm, status):
    deadline = time.monotonic() + STEP
    while time.monotonic() < deadline:
        r = vm.cmd("query-migrate")
        if r.get("status") == status:
            return r
        time.sleep(0.02)
    check(False, f"{vm.name}: query-migrate reached '{status}' (last {r})")


# 1. A slow snapshot, so the guest runs many generations while it is written.
src = Vm()
src.wait_gen(2, "the guest runs")
src.cmd("migrate-set-capabilities", capabilities=BACKGROUND)
caps = {c["capability"]: c["state"] for c in src.cmd("query-migrate-capabilities")}
check(caps["background-snapshot"], "query-migrate-capabilities shows background-snapshot on")
src.cmd("migrate-set-parameters", **{"max-bandwidth": 16 << 10})
snap = os.path.join(workdir, "bg-snap")
src.cmd("migrate", uri="file:" + snap)
wait_status(src, "active")
at_start = src.gens()[-1]
check(src.cmd("query-status")["status"] == "running", "the VM runs while the snapshot is written")
while src.cmd("query-migrate")["status"] == "active" and src.gens()[-1] < at_start + 5:
    time.sleep(0.05)
during = src.gens()[-1]
r = src.wait_migration()
check(r["status"] == "completed", f"the snapshot completed ({r})")
check(during >= at_start + 5, f"the guest went on writing during the snapshot (gen {at_start} to {during})")
check("downtime" in r and r["downtime"] < 5000, f"query-migrate reports the pause ({r.get('downtime')} ms)")
check(src.cmd("query-status")["status"] == "running", "the source runs on after the snapshot (not postmigrate)")
names = [e["event"] for e in src.events]
check("STOP" in names and "RESUME" in names, "STOP and RESUME events bracket the pause")
statuses = [e["data"]["status"] for e in src.events if e["event"] == "MIGRATION"]
check(statuses[:2] == ["setup", "active"] and statuses[-1] == "completed", f"MIGRATION events {statuses}")
src.wait_gen(during + 1, "the source keeps running after the snapshot")

# 2. The restored guest holds the moment the snapshot began, not a later one.
dst = restored_from("file:" + snap)
gens = dst.wait_gen(0, "the restored guest runs")
check(gens[0] <= at_start + 1,
      f"the restored guest goes on from the snapshot's start (gen {gens[0]}, the source was at {at_start})")
dst.wait_gen(gens[0] + 2, "the restored guest checks its memory generation after generation")
dst.finish()

# 3. Cancel midway: the guest keeps running, unprotected, and no file is left.
os.unlink(snap)
src.cmd("migrate-set-parameters", **{"max-bandwidth": 16 << 10})
src.cmd("migrate", uri="file:" + snap)
wait_status(src, "active")
src.cmd("migrate_cancel")
r = src.wait_migration()
check(r["status"] == "cancelled", "migrate_cancel stops the snapshot")
check(not os.path.exists(snap), "a cancelled snapshot leaves no file")
last = src.gens()[-1]
src.wait_gen(last + 3, "the guest runs on after the cancel")

# 4. The target fails midway (a pipe closed after 4 KiB): a clear error, the guest runs on.
src.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
src.cmd("migrate", uri="exec:head -c 4096 >/dev/null")
r = src.wait_migration()
check(r["status"] == "failed" and "error-desc" in r, f"a failed write fails the snapshot ({r.get('error-desc')})")
check(src.cmd("query-status")["status"] == "running", "the source runs after the failure")
src.wait_gen(src.gens()[-1] + 2, "the guest runs on after the failure")

# 5. A device is written in place, never replaced by a file renamed over it.
src.cmd("migrate", uri="file:/dev/null")
r = src.wait_migration()
check(r["status"] == "completed", f"a snapshot to file:/dev/null completes ({r.get('error-desc', '')})")
check(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is still a character device")

# 6. Capabilities QEMU refuses together with background-snapshot.
r = src.call("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": True}])
check("error" in r and "not compatible" in r["error"]["desc"] and "postcopy-ram" in r["error"]["desc"],
      f"postcopy-ram with background-snapshot is refused by name ({r.get('error')})")
src.finish()
