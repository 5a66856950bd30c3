#!/usr/bin/env python3
"""Save/restore and live migration times, Vireo against QEMU, run inside the rig by bench/migration.

migration.py OUT.json RUNS LABEL=CMD [LABEL=CMD ...]

CMD boots the guest (bookworm's kernel, an initramfs running memcheck);
this script adds -serial, -qmp and -incoming. Per round and command, in
the order given (noise falls on all alike):
  save:     the guest has filled its region; stop, migrate to file:, time until completed
  restore:  a new process with -incoming file:, time from exec until the stream is loaded
            (then cont, and check memcheck goes on: a restore that loses the guest does not count)
  live:     the guest keeps writing; migrate over tcp to a second process:
            query-migrate's total-time and downtime, and the guest going on there
Prints the medians per command and the ratio of the first command to each other.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmm import Vmm, report, run_rounds, tmp  # noqa: E402

out_json, runs, specs = sys.argv[1], int(sys.argv[2]), [a.split("=", 1) for a in sys.argv[3:]]


def fast(vm):
    """Both VMMs at the same settings: no bandwidth cap (0 disables QEMU's too), default downtime limit."""
    vm.cmd("migrate-set-parameters", **{"max-bandwidth": 0})


def one_round(label, cmd, m, rnd):
    """Fill @m with the round's metrics (what was measured stays there if a later step fails)."""
    # Save and restore.
    src = Vmm(label + "-src", cmd)
    src.poll(lambda: src.gens(), "memcheck's first check (region filled)", 0.2)
    fast(src)
    src.cmd("stop")
    snap = f"{tmp}/snap"
    t0 = time.monotonic()
    src.cmd("migrate", uri="file:" + snap)
    src.wait_migration()
    m["save_s"] = time.monotonic() - t0
    m["stream_MiB"] = os.path.getsize(snap) / 2**20
    last = src.gens()[-1]
    src.kill()
    dst = Vmm(label + "-restore", cmd, "-incoming", "file:" + snap)
    # Saved paused, it is restored paused (QEMU and Vireo alike): loaded is when it leaves inmigrate.
    # Polled every 20 ms like every other wait: at 5 ms this script and the VMM answering it took a
    # third of the rig's two CPUs (perf) from the restore it was timing.
    dst.poll(lambda: dst.cmd("query-status")["status"] != "inmigrate", "the restore to finish")
    m["restore_s"] = time.monotonic() - dst.started
    dst.cmd("cont")
    os.unlink(snap)
    dst.poll(lambda: [g for g in dst.gens() if g > last], "memcheck going on after the restore", 0.2)

    # Live: the restored guest keeps writing; migrate it to a new process over TCP.
    port = 47000 + rnd * len(specs) + [label for label, _ in specs].index(label)
    live = Vmm(label + "-live", cmd, "-incoming", f"tcp:127.0.0.1:{port}")
    fast(dst)
    dst.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    r = dst.wait_migration()
    m["live_total_ms"] = r["total-time"]
    m["live_downtime_ms"] = r["downtime"]
    m["live_MiB"] = r["ram"]["transferred"] / 2**20
    last = dst.gens()[-1]
    dst.kill()
    live.poll(lambda: [g for g in live.gens() if g > last], "memcheck going on after live migration", 0.2)
    live.kill()


results = run_rounds("bench/migration", specs, runs, one_round)
medians = report(results, specs, runs, ["save_s", "restore_s", "live_total_ms", "live_downtime_ms", "stream_MiB",
                                        "live_MiB"], out_json)
subject = specs[0][0]
for label, med in medians.items():
    if label != subject and subject in medians:
        ratio = (medians[subject]["save_s"] + medians[subject]["restore_s"]) / (med["save_s"] + med["restore_s"])
        print(f"save+restore {subject}/{label}: {ratio:.2f}")
sys.exit(0 if all(results.values()) else 1)
