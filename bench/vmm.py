"""A VMM process (Vireo or QEMU) driven over QMP, for the benches run in the rig.

Vmm(name, cmd, *extra) starts CMD (a shell command line) with its serial
port in a file and a QMP socket under TMP, and connects; every one started
is in `running`, for the caller to kill at the end of its round.
"""
import json
import os
import re
import socket
import subprocess
import time

TIMEOUT = float(os.environ.get("STEP_TIMEOUT", "600"))
tmp = os.environ.get("BENCH_TMP", "/tmp/bench")
os.makedirs(tmp, exist_ok=True)

running = []  # every VMM started, killed at the end of its round whatever happened


class Vmm:
    def __init__(self, name, cmd, *extra):
        running.append(self)
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
        while True:
            msg = json.loads(self.f.readline())
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
        self.proc.wait()


