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
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmm import Vmm, running, tmp  # noqa: E402

out_json, runs, specs = sys.argv[1], int(sys.argv[2]), [a.split("=", 1) for a in sys.argv[3:]]


def fast(vm):
    """Both VMMs at the same settings: no bandwidth cap (0 disables QEMU's too), default downtime limit."""
    vm.cmd("migrate-set-parameters", **{"max-bandwidth": 0})


def one_round(label, cmd, m):
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
    dst.poll(lambda: dst.cmd("query-status")["status"] != "inmigrate", "the restore to finish", 0.005)
    m["restore_s"] = time.monotonic() - dst.started
    dst.cmd("cont")
    os.unlink(snap)
    dst.poll(lambda: [g for g in dst.gens() if g > last], "memcheck going on after the restore", 0.2)

    # Live: the restored guest keeps writing; migrate it to a new process over TCP.
    port = 47000 + runs_done[0]
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


results = {label: [] for label, _ in specs}
runs_done = [0]
for rnd in range(runs):
    for label, cmd in specs:
        runs_done[0] += 1
        m = {}
        try:
            one_round(label, cmd, m)
            results[label].append(m)
            print(f"round {rnd + 1} {label}: {m}", flush=True)
        except RuntimeError as e:
            print(f"bench/migration: round {rnd + 1} {label} failed: {e} (measured so far: {m})", flush=True)
            for vm in running:
                for path in (vm.serial, vm.log.name):
                    if os.path.exists(path):
                        print(f"--- {path} (end)\n{open(path, errors='replace').read()[-1500:]}", flush=True)
        finally:
            while running:
                running.pop().kill()

medians = {}
for label, ms in results.items():
    if ms:
        medians[label] = {k: statistics.median(x[k] for x in ms) for k in ms[0]}
print(f"\nmedians over {runs} rounds (rounds that failed are left out: "
      + ", ".join(f"{label} {len(ms)} ok" for label, ms in results.items()) + ")")
keys = ["save_s", "restore_s", "live_total_ms", "live_downtime_ms", "stream_MiB", "live_MiB"]
print(f"{'metric':18}" + "".join(f"{label:>12}" for label in medians) +
      "".join(f"{specs[0][0] + '/' + label:>16}" for label in list(medians)[1:]))
subject = specs[0][0]
for k in keys:
    row = f"{k:18}" + "".join(f"{medians[label][k]:12.2f}" for label in medians)
    for label in list(medians)[1:]:
        if subject in medians and medians[label][k]:
            row += f"{medians[subject][k] / medians[label][k]:16.2f}"
    print(row)
save_restore = {label: med["save_s"] + med["restore_s"] for label, med in medians.items()}
for label in list(medians)[1:]:
    if subject in save_restore:
        print(f"save+restore {subject}/{label}: {save_restore[subject] / save_restore[label]:.2f}")
json.dump({"rounds": results, "medians": medians}, open(out_json, "w"), indent=1)
sys.exit(0 if all(results.values()) else 1)
