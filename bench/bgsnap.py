#!/usr/bin/env python3
"""Background snapshots of a busy guest, Vireo against QEMU, run inside the rig by bench/bgsnap.

bgsnap.py OUT.json RUNS LABEL=CMD [LABEL=CMD ...]

CMD boots the guest (bookworm's kernel, an initramfs running hotwriter over
256 MiB: one word per page, as fast as it can, timing each write and
printing its rate, worst and 99th-percentile write time every 250 ms).
Per round and command, in the order given (noise falls on all alike): once
hotwriter is up to speed, background-snapshot on, max-bandwidth 0, migrate
to a file on the rig's tmpfs, until completed. Measured: the snapshot's
total-time, setup-time (until the pause ends) and pause (query-migrate's downtime), hotwriter's rate during
the snapshot against the 2 s before, and the worst and p99 write times in
the intervals that fell inside the snapshot. Prints medians per command and
the ratio of the first command to each other. Then, as a control, a bare
stop and cont sent together: the writer's worst write time across that
pause (stop_cont_stall_ms), what any pause costs it in the rig.
"""
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmm import Vmm, report, run_rounds, tmp  # noqa: E402

out_json, runs, specs = sys.argv[1], int(sys.argv[2]), [a.split("=", 1) for a in sys.argv[3:]]
LINE = re.compile(r"^hotwriter: t=([\d.]+) pages=(\d+) rate=(\d+) max=(\d+) p99=(\d+)", re.M)


def lines(vm):
    return [tuple(float(x) for x in m) for m in LINE.findall(vm.console())]


def one_round(label, cmd, m, rnd):
    vm = Vmm(label, cmd)
    vm.poll(lambda: len(lines(vm)) >= 12, "hotwriter up to speed (3 s of lines)", 0.2)
    vm.cmd("migrate-set-capabilities", capabilities=[{"capability": "background-snapshot", "state": True}])
    vm.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    snap = f"{tmp}/bgsnap"
    if os.path.exists(snap):
        os.unlink(snap)
    first = len(lines(vm))
    t0 = time.monotonic()
    vm.cmd("migrate", uri="file:" + snap)
    r = vm.wait_migration()
    m["wall_s"] = time.monotonic() - t0
    last = len(lines(vm))
    m["total_s"] = r["total-time"] / 1000
    m["pause_ms"] = r.get("downtime", 0)
    m["setup_ms"] = r.get("setup-time", 0)
    m["file_MiB"] = os.path.getsize(snap) / 2**20
    os.unlink(snap)
    vm.poll(lambda: len(lines(vm)) >= last + 2, "hotwriter going on after the snapshot", 0.2)
    ls = lines(vm)
    before = ls[max(first - 8, 0):first]
    # The intervals that ended after the migrate and not after the end: all or part inside the snapshot.
    during = ls[first:last + 1] or ls[first:first + 1]
    m["rate_before"] = statistics.mean(x[2] for x in before)
    m["rate_during"] = statistics.mean(x[2] for x in during)
    m["rate_ratio"] = m["rate_during"] / m["rate_before"]
    m["worst_stall_ms"] = max(x[3] for x in during) / 1000
    # The same before the snapshot: what the rig itself costs the writer (a vCPU thread preempted on the host).
    m["worst_before_ms"] = max(x[3] for x in before) / 1000
    m["p99_stall_ms"] = max(x[4] for x in during) / 1000
    m["intervals"] = len(during)
    # The control, a second later: a bare stop and cont sent together. What a pause alone costs the writer here.
    vm.poll(lambda: len(lines(vm)) >= last + 6, "hotwriter settled after the snapshot", 0.2)
    mark = len(lines(vm))
    vm.cmds("stop", "cont")
    vm.poll(lambda: len(lines(vm)) >= mark + 2, "hotwriter going on after a stop and cont", 0.2)
    m["stop_cont_stall_ms"] = max(x[3] for x in lines(vm)[mark:mark + 2]) / 1000


results = run_rounds("bench/bgsnap", specs, runs, one_round)
report(results, specs, runs, ["total_s", "wall_s", "setup_ms", "pause_ms", "rate_before", "rate_during", "rate_ratio",
                              "worst_stall_ms", "worst_before_ms", "stop_cont_stall_ms", "p99_stall_ms", "file_MiB",
                              "intervals"], out_json)
print("goals: total_s ratio <= 0.25, rate_ratio >= 0.8, worst_stall_ms <= 10")
sys.exit(0 if all(results.values()) else 1)
