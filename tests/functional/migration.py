#!/usr/bin/env python3
"""Save, restore and live migration of tests/guest/memcount, as a QMP client sees them.

migration.py DIR ELF VMM [VMM-ARGS...]

memcount rewrites a 64 KiB region every generation after checking it holds
the previous one, and prints "memcount: gen N ok". Every VM here runs it
with its serial port in a file; the checks read what the guest printed and
what QMP answered. Prints one "ok:" line per check and exits 1 on the first
failure.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memcount_vm import STEP, Vm, check, next_gen, restored_from, workdir  # noqa: E402


def goes_on(src, dst, what):
    """@src has migrated to @dst, which runs: @src goes, and memcount goes on at @dst exactly where it
    stopped. Returns @src's last generation."""
    last = src.gens()[-1]
    want = next_gen(src)
    src.finish()
    g = dst.wait_gen(last, f"{what}: the guest goes on at the destination")
    check(g[0] == want, f"{what}: memcount goes on at gen {g[0]} after gen {want - 1}, memory intact")
    return last


# 1. Save to a file, the source stays in postmigrate; restore in a new process.
src = Vm()
saved_gen = src.wait_gen(3, "the guest runs")[-1]
src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
snap = os.path.join(workdir, "snap")
src.cmd("migrate", uri="file:" + snap)
r = src.wait_migration()
check(r["status"] == "completed" and r["ram"]["total"] == 16 << 20 and r["ram"]["transferred"] < 4 << 20,
      f"migrate to file: completed, {r['ram']['transferred']} bytes for 16 MiB of mostly zero RAM")
check(src.cmd("query-status")["status"] == "postmigrate", "the source stays paused in postmigrate")
statuses = [e["data"]["status"] for e in src.events if e["event"] == "MIGRATION"]
check(statuses == ["setup", "active", "device", "completed"], f"MIGRATION events {statuses}")
check(not [n for n in os.listdir(workdir) if n.startswith(".snap")], "no temporary file is left beside the snapshot")
time.sleep(1)
last = src.gens()[-1]
check(src.gens()[-1] == last, "the paused source prints nothing more")
want = next_gen(src)
src.finish()
dst = restored_from("file:" + snap)
g = dst.wait_gen(last, "the restored guest goes on")
check(g[0] == want, f"restored from file: memcount goes on at gen {g[0]} after gen {want - 1}, memory intact")
check(dst.cmd("query-status")["status"] == "running", "the restored VM is running")
check(dst.cmd("query-migrate")["status"] == "completed", "query-migrate on the destination says completed")

# 2. Live migration over TCP while the guest writes.
port = 40000 + os.getpid() % 20000
live_dst = Vm("-incoming", f"tcp:127.0.0.1:{port}")
check(live_dst.cmd("query-status")["status"] == "inmigrate", "the destination waits in inmigrate")
r = live_dst.call("migrate", uri="file:" + os.path.join(workdir, "nope"))
check("error" in r and "incoming" in r["error"]["desc"], f"a destination refuses to migrate: {r.get('error')}")
before = dst.gens()[-1]
dst.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
r = dst.wait_migration()
check(r["status"] == "completed", f"live migration over TCP completed (downtime {r.get('downtime')} ms, "
      f"{r['ram']['dirty-sync-count']} dirty syncs)")
check(dst.cmd("query-status")["status"] == "postmigrate", "the live source ends in postmigrate")
last = goes_on(dst, live_dst, "after live migration")
check(last >= before, "the guest ran during the live migration")

# 3. Cancel midway: slow it to a crawl, cancel; the source runs on.
cancel_dst = Vm("-incoming", f"tcp:127.0.0.1:{port + 1}")
live_dst.cmd("migrate-set-parameters", **{"max-bandwidth": 100000, "downtime-limit": 1})
check(live_dst.cmd("query-migrate-parameters")["max-bandwidth"] == 100000, "max-bandwidth is set")
live_dst.cmd("migrate", uri=f"tcp:127.0.0.1:{port + 1}")
live_dst.wait_migration(("active",))
live_dst.cmd("migrate_cancel")
r = live_dst.wait_migration()
check(r["status"] == "cancelled", "migrate_cancel midway: status cancelled")
check(live_dst.cmd("query-status")["status"] == "running", "the source is still running")
g = live_dst.gens()[-1]
live_dst.wait_gen(g, "the source's guest goes on after the cancel")
check(True, "the guest goes on printing after the cancel")
st = cancel_dst.exit_status()
check(st == 1 and "load of migration failed" in cancel_dst.output(),
      f"the abandoned destination exits 1 saying why: {cancel_dst.output().strip()}")

# A paused VM resumed during its migration: the vCPUs' writes from then on reach the destination too
# (KVM's dirty log starts only then).
resumed_dst = Vm("-incoming", f"tcp:127.0.0.1:{port + 2}")
live_dst.cmd("stop")
live_dst.cmd("migrate", uri=f"tcp:127.0.0.1:{port + 2}")
live_dst.wait_migration(("active",))
live_dst.cmd("cont")
g = live_dst.gens()[-1]
live_dst.wait_gen(g + 2, "the guest resumed during its migration writes")
live_dst.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
r = live_dst.wait_migration()
check(r["status"] == "completed", "the migration of a VM resumed midway completed")
goes_on(live_dst, resumed_dst, "resumed during its migration")
live_dst = resumed_dst
live_dst.cmd("migrate-set-parameters", **{"max-bandwidth": 100000, "downtime-limit": 1})

# Resets during a live migration (each replaces the KVM VM whose dirty log the migration reads).
reset_dst = Vm("-incoming", f"tcp:127.0.0.1:{port + 3}")
live_dst.cmd("migrate", uri=f"tcp:127.0.0.1:{port + 3}")
live_dst.wait_migration(("active",))
for _ in range(3):
    live_dst.cmd("system_reset")
    time.sleep(0.3)
live_dst.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
r = live_dst.wait_migration()
check(r["status"] == "completed", f"a live migration across 3 resets completed ({r['ram']['dirty-sync-count']} dirty syncs)")
goes_on(live_dst, reset_dst, "reset during its migration")
live_dst = reset_dst
live_dst.cmd("migrate-set-parameters", **{"max-bandwidth": 100000, "downtime-limit": 1})

# A cancelled save to a file leaves no file behind.
live_dst.cmd("migrate", uri="file:" + os.path.join(workdir, "cancelled"))
live_dst.wait_migration(("active",))
live_dst.cmd("migrate_cancel")
live_dst.wait_migration()
check(not [n for n in os.listdir(workdir) if "cancelled" in n], "a cancelled save to a file leaves no file")

# 4. exec: out and in, and -incoming defer + migrate-incoming.
live_dst.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
piped = os.path.join(workdir, "piped")
live_dst.cmd("stop")
live_dst.cmd("migrate", uri=f"exec:cat > {piped}")
check(live_dst.wait_migration()["status"] == "completed", "migrate to exec:cat > FILE completed")
last = live_dst.gens()[-1]
want = next_gen(live_dst)
live_dst.finish()
deferred = Vm("-incoming", "defer")
check(deferred.cmd("query-status")["status"] == "inmigrate", "-incoming defer waits in inmigrate")
deferred.cmd("migrate-incoming", uri=f"exec:cat {piped}")
deadline = time.monotonic() + STEP
while deferred.cmd("query-status")["status"] == "inmigrate" and time.monotonic() < deadline:
    time.sleep(0.05)
check(deferred.cmd("query-status")["status"] == "paused", "a VM saved paused is restored paused (as QEMU)")
deferred.cmd("cont")
g = deferred.wait_gen(last, "the guest restored through exec: goes on")
check(g[0] == want, f"migrate-incoming exec:cat FILE restores the guest (gen {g[0]} after {want - 1})")

# 5. fd: a descriptor passed with getfd.
fdfile = os.path.join(workdir, "byfd")
with open(fdfile, "wb") as f:
    check("return" in deferred.call("getfd", fds=[f.fileno()], fdname="mig"), "getfd took the descriptor")
deferred.cmd("migrate", uri="fd:mig")
check(deferred.wait_migration()["status"] == "completed", "migrate to fd:NAME completed")
last = deferred.gens()[-1]
want = next_gen(deferred)
deferred.finish()
byfd = restored_from("file:" + fdfile)
check(byfd.wait_gen(last, "restored from what fd: wrote")[0] == want, "the stream written to fd:NAME restores")

# 5b. unix: live, then file: at an offset (the bytes before it are kept, the load reads from there).
sock = os.path.join(workdir, "mig.sock")
by_unix = Vm("-incoming", f"unix:{sock}")
byfd.cmd("migrate", uri=f"unix:{sock}")
check(byfd.wait_migration()["status"] == "completed", "live migration over unix:PATH completed")
goes_on(byfd, by_unix, "after migration over unix:PATH")
container = os.path.join(workdir, "container")
head = b"VIREO-TEST-HEADER" * 241  # 4097 bytes the save must keep
with open(container, "wb") as f:
    f.write(head + b"old stream bytes, replaced")
by_unix.cmd("stop")
by_unix.cmd("migrate", uri=f"file:{container},offset={len(head)}")
check(by_unix.wait_migration()["status"] == "completed", f"migrate to file:PATH,offset={len(head)} completed")
check(open(container, "rb").read(len(head)) == head, "the bytes before the offset are kept")
last = by_unix.gens()[-1]
want = next_gen(by_unix)
by_unix.finish()
at_offset = restored_from(f"file:{container},offset={len(head)}")
at_offset.cmd("cont")
check(at_offset.wait_gen(last, "the guest restored from an offset goes on")[0] == want,
      "-incoming file:PATH,offset=N restores the stream saved there")
at_offset.finish()

# 6. Bad streams: one clear line, exit status 1, no crash.
data = open(snap, "rb").read()
cases = {
    "corrupt": data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x40]) + data[len(data) // 2 + 1:],
    "truncated": data[:len(data) * 2 // 3],
    "empty": b"",
    "not-a-stream": b"QEVM\x00\x00\x00\x03" + data[8:],
}
for name, blob in cases.items():
    path = os.path.join(workdir, name)
    open(path, "wb").write(blob)
    bad = restored_from("file:" + path, qmp=False)
    st = bad.exit_status()
    out = bad.output().strip()
    check(st == 1 and len(out.splitlines()) == 1 and "load of migration failed" in out,
          f"{name} stream: exit 1 with one line: {out}")
bad = restored_from("file:" + snap, memory="32M", qmp=False)
st = bad.exit_status()
out = bad.output().strip()
check(st == 1 and len(out.splitlines()) == 1 and "different" in out,
      f"a stream from another configuration (16M into 32M): exit 1: {out}")
missing = restored_from("file:" + os.path.join(workdir, "missing"), qmp=False)
st = missing.exit_status()
check(st == 1 and "missing" in missing.output(), f"a missing file: exit 1: {missing.output().strip()}")

# 7. Bad QMP arguments: errors that name what was wrong, the VM keeps running.
vm = Vm()
vm.wait_gen(0, "the guest runs")
for args, want in [({"uri": "ftp://x"}, "unknown migration protocol"),
                   ({"uri": "tcp:127.0.0.1:1"}, "cannot connect"),
                   ({"uri": "fd:nosuch"}, "no file descriptor"),
                   ({"uri": "file:/nonexistent-dir/x"}, "cannot create")]:
    r = vm.call("migrate", **args)
    check("error" in r and want in r["error"]["desc"], f"migrate {args['uri']}: {r.get('error', {}).get('desc')}")
r = vm.call("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": True}])
check("error" in r and "postcopy-ram" in r["error"]["desc"], f"an unsupported capability: {r.get('error')}")
r = vm.call("migrate-set-parameters", **{"downtime-limit": -5})
check("error" in r and "downtime-limit" in r["error"]["desc"], f"a negative downtime-limit: {r.get('error')}")
r = vm.call("migrate-incoming", uri="tcp:127.0.0.1:1")
check("error" in r and "-incoming" in r["error"]["desc"], f"migrate-incoming without -incoming: {r.get('error')}")
check(vm.cmd("query-status")["status"] == "running", "the VM still runs after the refusals")
for v in (vm, byfd, deferred, dst, src):
    v.finish()
print("migration: all checks passed", flush=True)
