"""A VMM process (Vireo or QEMU) driven over QMP, for the benches run in the rig.

Vmm(name, cmd, *extra) starts CMD (a shell command line) with its serial
port in a file and a QMP socket under TMP, and connects; every one started
is in `running`, killed at the end of its round. run_rounds() alternates
the commands round after round, and report() prints medians and ratios.
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import time

TIMEOUT = float(os.environ.get("STEP_TIMEOUT", "600"))
tmp = os.environ.get("BENCH_TMP", "/tmp/bench")
os.makedirs(tmp, exist_ok=True)

running = []  # every VMM started, killed at the end of its round whatever happened


class Vmm:
    def __init__(self, name, cmd, *extra):
        running.append(self)
        self.name = name
        self.serial = f"{tmp}/{name}.serial"
        self.qmp_path = f"{tmp}/{name}.qmp"
        for p in (self.serial, self.qmp_path):
            if os.path.exists(p):
                os.unlink(p)
        self.log = open(f"{tmp}/{name}.log", "wb")
        full = f"{cmd} -serial file:{self.serial} -qmp unix:{self.qmp_path},server=on,wait=off " + " ".join(extra)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(full, shell=True, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(self.qmp_path)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: no QMP socket; exit {self.proc.poll()}: "
                                       f"{open(self.log.name, errors='replace').read()[-2000:]}")
                time.sleep(0.02)
        self.sock.settimeout(TIMEOUT)
        self.f = self.sock.makefile("rb")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode())
        return self.reply(name)

    def cmds(self, *names):
        """Commands without arguments sent in one write, for the VMM to run back to back; their returns."""
        self.sock.sendall("".join(json.dumps({"execute": n}) for n in names).encode())
        return [self.reply(n) for n in names]

    def reply(self, name):
        while True:
            line = self.f.readline()
            if not line:  # a VMM that exited (QEMU did, once, in the middle of a snapshot in the rig)
                raise RuntimeError(f"{name}: {self.name} closed its QMP connection (exit status {self.proc.poll()})")
            msg = json.loads(line)
            if "event" in msg:
                continue
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']}")
            return msg["return"]

    def poll(self, fn, what, interval=0.02):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(interval)
        raise RuntimeError(f"timed out waiting for {what}")

    def wait_migration(self):
        r = self.poll(lambda: (lambda q: q if q.get("status") in ("completed", "failed", "cancelled") else None)(
            self.cmd("query-migrate")), "the migration to end")
        if r["status"] != "completed":
            raise RuntimeError(f"migration {r['status']}: {r.get('error-desc')}")
        return r

    def console(self):
        try:
            return open(self.serial, errors="replace").read()
        except FileNotFoundError:
            return ""

    def gens(self):
        text = self.console()
        if "MISMATCH" in text:
            raise RuntimeError("memcheck found its memory changed: " + text[-400:])
        return [int(g) for g in re.findall(r"memcheck: gen=(\d+) ", text)]

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # Seen once in the rig: a round's VMM still there minutes after SIGKILL, the rig idle, and the
            # bench waiting for it until the rig's own limit. Left behind; the next round goes on.
            print(f"note: {self.name} has not exited {TIMEOUT}s after SIGKILL (stuck in the rig's kernel)", flush=True)




def run_rounds(bench, specs, runs, one_round):
    """Per round, each (label, cmd) of @specs in turn: one_round(label, cmd, m, round) fills m.
    A round that fails is shown with the end of its logs and left out. {label: [m, ...]}."""
    results = {label: [] for label, _ in specs}
    for rnd in range(runs):
        for label, cmd in specs:
            m = {}
            try:
                one_round(label, cmd, m, rnd)
                results[label].append(m)
                print(f"round {rnd + 1} {label}: {m}", flush=True)
            except (RuntimeError, OSError) as e:  # OSError: a VMM that died closes its QMP socket
                print(f"{bench}: round {rnd + 1} {label} failed: {e} (measured so far: {m})", flush=True)
                for vm in running:
                    for path in (vm.serial, vm.log.name):
                        if os.path.exists(path):
                            print(f"--- {path} (end)\n{open(path, errors='replace').read()[-1500:]}", flush=True)
            finally:
                while running:
                    vm = running.pop()
                    vm.kill()
                    if os.environ.get("BENCH_LOGS"):  # kept beside the results (the rig's /tmp goes with it)
                        for path in (vm.log.name, vm.serial):
                            if os.path.exists(path):
                                shutil.copy(path, os.path.join(os.environ["BENCH_LOGS"], f"{rnd + 1}-{os.path.basename(path)}"))
    return results


def report(results, specs, runs, keys, out_json):
    """Medians per label of @keys, and the first label's ratio to each other; all rounds to @out_json."""
    medians = {label: {k: statistics.median(x[k] for x in ms) for k in ms[0]} for label, ms in results.items() if ms}
    print(f"\nmedians over {runs} rounds (rounds that failed are left out: "
          + ", ".join(f"{label} {len(ms)} ok" for label, ms in results.items()) + ")")
    subject = specs[0][0]
    others = [label for label in medians if label != subject]
    print(f"{'metric':18}" + "".join(f"{label:>12}" for label in medians) +
          "".join(f"{subject + '/' + label:>16}" for label in others))
    for k in keys:
        row = f"{k:18}" + "".join(f"{medians[label][k]:12.2f}" for label in medians)
        for label in others:
            if subject in medians and medians[label][k]:
                row += f"{medians[subject][k] / medians[label][k]:16.2f}"
        print(row)
    json.dump({"rounds": results, "medians": medians}, open(out_json, "w"), indent=1)
    return medians
