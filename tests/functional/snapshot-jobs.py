#!/usr/bin/env python3
"""QEMU's snapshot jobs over background snapshots, as a QMP client sees them.

snapshot-jobs.py DIR ELF VMM [VMM-ARGS...]

tests/guest/memcount runs with a raw disk attached and -snapshot-dir.
snapshot-save takes a background snapshot (the guest keeps printing
generations), snapshot-load brings the guest back to it (its next
generation is the one it was in) and the disk back to its copy,
snapshot-delete removes the tag's files. Jobs report QEMU's status
sequence in JOB_STATUS_CHANGE events and query-jobs; bad arguments fail
the job (or, for a bad job id, the command) with one clear line.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memcount_vm import STEP, Vm, check, fail, workdir  # noqa: E402

DONE = ["created", "running", "waiting", "pending", "concluded"]
FAILED = ["created", "running", "aborting", "concluded"]
DISK_SIZE = 1 << 20
SAVE = {"vmstate": "disk0", "devices": ["disk0"]}


def fill(path, byte):
    with open(path, "r+b") as f:
        f.write(bytes([byte]) * DISK_SIZE)


def job_statuses(vm, job_id):
    return [e["data"]["status"] for e in vm.events
            if e["event"] == "JOB_STATUS_CHANGE" and e["data"]["id"] == job_id]


def wait_job(vm, job_id):
    """The job's query-jobs entry once concluded."""
    deadline = time.monotonic() + STEP
    while time.monotonic() < deadline:
        for j in vm.cmd("query-jobs"):
            if j["id"] == job_id and j["status"] == "concluded":
                vm.cmd("query-status")  # reads the events that came before this reply
                return j
        time.sleep(0.05)
    fail(f"{vm.name}: job {job_id} did not conclude: {vm.cmd('query-jobs')}")


def run_job(vm, command, job_id, **args):
    vm.cmd(command, **{"job-id": job_id}, **args)
    return wait_job(vm, job_id)


def refused(vm, command, job_id, why, **args):
    """A job that fails: concluded with an error, QEMU's failure sequence, dismissed."""
    j = run_job(vm, command, job_id, **args)
    check(j["type"] == command and why in j.get("error", ""),
          f"{command} {args}: the job fails with '{j.get('error')}'")
    check(job_statuses(vm, job_id) == FAILED, f"{job_id}: events {job_statuses(vm, job_id)}")
    vm.cmd("job-dismiss", id=job_id)


def gens_after(vm, offset):
    return [int(g) for g in re.findall(r"memcount: gen (\d+) ok", open(vm.serial, errors="replace").read()[offset:])]


snapdir = os.path.join(workdir, "snapshots")
os.mkdir(snapdir)
disk = os.path.join(workdir, "disk.raw")
with open(disk, "wb") as f:
    f.truncate(DISK_SIZE)
fill(disk, 0xA1)
drive = ["-drive", f"file={disk},format=raw,if=virtio,id=disk0"]

# 0. Without -snapshot-dir the commands say what is missing.
plain = Vm(*drive)
r = plain.call("snapshot-save", **{"job-id": "j0", "tag": "t"}, **SAVE)
check("error" in r and "-snapshot-dir" in r["error"]["desc"], f"without -snapshot-dir: {r.get('error')}")
check(plain.cmd("query-jobs") == [], "no job was made")
plain.finish()

vm = Vm(*drive, "-snapshot-dir", snapdir)
vm.wait_gen(2, "the guest runs")
vm.cmd("migrate-set-parameters", **{"max-bandwidth": 64 << 10})

# 1. Save while the guest runs.
vm.cmd("snapshot-save", **{"job-id": "save1", "tag": "t1"}, **SAVE)
at_start = vm.gens()[-1]
check(vm.cmd("query-status")["status"] == "running", "the VM runs while the snapshot is saved")
jobs = vm.cmd("query-jobs")
check(len(jobs) == 1 and jobs[0]["id"] == "save1" and jobs[0]["type"] == "snapshot-save"
      and jobs[0]["status"] in ("running", "concluded") and "current-progress" in jobs[0]
      and "total-progress" in jobs[0], f"query-jobs during the save: {jobs}")
r = vm.call("snapshot-save", **{"job-id": "save1", "tag": "t9"}, **SAVE)
check("error" in r and r["error"]["desc"] == "Job ID 'save1' already in use", f"a job id in use: {r.get('error')}")
r = vm.call("snapshot-save", **{"job-id": "9bad id", "tag": "t9"}, **SAVE)
check("error" in r and r["error"]["desc"] == "Invalid job ID '9bad id'", f"a malformed job id: {r.get('error')}")
refused(vm, "snapshot-save", "busy", "There's a migration process in progress", tag="t2", **SAVE)
j = wait_job(vm, "save1")
check("error" not in j and j["current-progress"] == j["total-progress"], f"the save succeeded: {j}")
during = vm.gens()[-1]
check(during > at_start, f"the guest kept printing during the save (gen {at_start} to {during})")
check(job_statuses(vm, "save1") == DONE, f"save1: events {job_statuses(vm, 'save1')}")
check(os.listdir(snapdir) == ["t1"] and sorted(os.listdir(os.path.join(snapdir, "t1")))
      == ["disk0.raw", "vmstate"], f"the tag's files: {os.listdir(snapdir)}")
r = vm.call("snapshot-save", **{"job-id": "save1", "tag": "t9"}, **SAVE)
check("error" in r and "already in use" in r["error"]["desc"], "a concluded job still holds its id")
vm.cmd("job-dismiss", id="save1")
check(job_statuses(vm, "save1")[-1] == "null" and vm.cmd("query-jobs") == [], "job-dismiss: status null, gone")
r = vm.call("job-dismiss", id="save1")
check("error" in r and r["error"]["desc"] == "Job not found", f"dismiss an unknown job: {r.get('error')}")

# 2. Refusals: each one line, each a failed job.
refused(vm, "snapshot-save", "exists", "Snapshot 't1' already exists", tag="t1", **SAVE)
refused(vm, "snapshot-save", "slash", "Parameter 'tag'", tag="a/b", **SAVE)
refused(vm, "snapshot-save", "nodev", "No block device node 'nodisk'", tag="t3", vmstate="disk0",
        devices=["disk0", "nodisk"])
refused(vm, "snapshot-save", "novm", "vmstate block device 'disk1'", tag="t3", vmstate="disk1",
        devices=["disk0"])
refused(vm, "snapshot-load", "noload", "Snapshot 'missing' does not exist", tag="missing", **SAVE)
refused(vm, "snapshot-delete", "nodel", "Snapshot 'missing' does not exist", tag="missing", devices=["disk0"])
r = vm.call("snapshot-load", **{"job-id": "x", "tag": "t1", "vmstate": "disk0", "devices": "disk0"})
check("error" in r and r["error"]["desc"] == "Parameter 'devices' expects array",
      f"devices not a list: {r.get('error')}")
check(os.listdir(snapdir) == ["t1"], "refused jobs left nothing behind")

# 3. Load: the guest goes back to the saved generation, the disk to its copy.
fill(disk, 0xB2)
vm.wait_gen(during + 2, "the guest runs on after the save")
before = len(open(vm.serial, errors="replace").read())
last = vm.gens()[-1]
vm.events.clear()
j = run_job(vm, "snapshot-load", "load1", tag="t1", **SAVE)
check("error" not in j, f"the load succeeded: {j}")
check(job_statuses(vm, "load1") == DONE, f"load1: events {job_statuses(vm, 'load1')}")
names = [e["event"] for e in vm.events]
check("STOP" in names and "RESUME" in names, f"STOP and RESUME around the load ({names})")
check(vm.cmd("query-status")["status"] == "running", "the VM runs again after the load")
deadline = time.monotonic() + STEP
while not gens_after(vm, before) and time.monotonic() < deadline:
    time.sleep(0.1)
after = gens_after(vm, before)
# The instant is taken on the job's thread, after the command returned: on a
# loaded machine the guest may print one more generation before it.
check(after and after[0] <= at_start + 2 and after[0] < last,
      f"after the load the guest's next gen is the saved one ({after[:1]}; saved at {at_start}, was at {last})")
vm.wait_gen(after[-1] + 2, "the loaded guest checks its memory generation after generation")
with open(disk, "rb") as f:
    check(f.read() == bytes([0xA1]) * DISK_SIZE, "the disk holds what it held at the save")
vm.cmd("job-dismiss", id="load1")

# 4. Delete: the tag's files are gone.
j = run_job(vm, "snapshot-delete", "del1", tag="t1", devices=["disk0"])
check("error" not in j and job_statuses(vm, "del1") == DONE, f"the delete succeeded: {j}")
check(os.listdir(snapdir) == [], f"the tag's files are gone ({os.listdir(snapdir)})")
refused(vm, "snapshot-load", "gone", "Snapshot 't1' does not exist", tag="t1", **SAVE)
check(vm.cmd("query-status")["status"] == "running", "a refused load leaves the guest running")
print("snapshot-jobs: all checks passed")
