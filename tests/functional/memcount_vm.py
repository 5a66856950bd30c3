"""A VMM process running tests/guest/memcount, driven over QMP, for the
migration and snapshot tests.

Those scripts take the same arguments, DIR ELF VMM [VMM-ARGS...], read here.
Checks print one "ok:" line each; the first failure exits 1. Every VM is
killed at exit, however the script ends.
"""
import atexit
import json
import os
import re
import socket
import subprocess
import sys
import time

workdir, elf, vmm = sys.argv[1], sys.argv[2], sys.argv[3:]
STEP = 60  # seconds any one wait may take on this slow KVM


def fail(what):
    print(f"FAIL: {what}", flush=True)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    print(f"ok: {what}", flush=True)


class Vm:
    """A VMM process running memcount, with its QMP socket and serial file."""
    count = 0
    every = []  # killed at exit, however the script ends

    def __init__(self, *extra, memory="16M", qmp=True):
        Vm.count += 1
        self.name = f"vm{Vm.count}"
        self.qmp_path = os.path.join(workdir, self.name + ".qmp")
        self.serial = os.path.join(workdir, self.name + ".serial")
        self.log = os.path.join(workdir, self.name + ".log")
        cmd = vmm + ["-m", memory, "-nodefaults", "-nographic", "-serial", "file:" + self.serial,
                     "-kernel", elf, "-qmp", f"unix:{self.qmp_path},server=on,wait=off", *extra]
        print("+ " + " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        Vm.every.append(self)
        self.events = []
        self.sock = None
        if not qmp:
            return  # a VMM expected to exit at once: nothing to talk to
        deadline = time.monotonic() + STEP
        while self.sock is None:
            if self.proc.poll() is not None:
                return  # exited at once; the caller looks at the status
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.qmp_path)
                self.sock = s
            except OSError:
                if time.monotonic() > deadline:
                    fail(f"{self.name}: the QMP socket never appeared")
                time.sleep(0.05)
        self.sock.settimeout(STEP)
        self.f = self.sock.makefile("rb")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.f.readline()
        if not line:
            fail(f"{self.name}: QMP connection closed\n{self.output()}")
        return json.loads(line)

    def call(self, name, fds=(), **args):
        """The whole reply: {"return": ...} or {"error": ...}. @fds go along (SCM_RIGHTS)."""
        req = {"execute": name}
        if args:
            req["arguments"] = args
        socket.send_fds(self.sock, [json.dumps(req).encode()], list(fds))
        while True:
            msg = self.read()
            if "event" in msg:
                self.events.append(msg)
            else:
                return msg

    def cmd(self, name, **args):
        r = self.call(name, **args)
        if "return" not in r:
            fail(f"{self.name}: {name} failed: {r}")
        return r["return"]

    def wait_migration(self, statuses=("completed", "failed", "cancelled")):
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            r = self.cmd("query-migrate")
            if r.get("status") in statuses:
                return r
            time.sleep(0.05)
        fail(f"{self.name}: migration did not end: {r}")

    def gens(self):
        text = open(self.serial, errors="replace").read()
        if "MISMATCH" in text:
            fail(f"{self.name}: the guest found its memory changed:\n{text[-500:]}")
        return [int(g) for g in re.findall(r"memcount: gen (\d+) ok", text)]

    def wait_gen(self, above, what):
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            g = self.gens()
            if g and g[-1] > above:
                return g
            time.sleep(0.1)
        fail(f"{self.name}: {what} (the guest printed up to gen {self.gens()[-1:]})")

    def output(self):
        return open(self.log, errors="replace").read()

    def finish(self):
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def exit_status(self):
        try:
            return self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(f"{self.name}: the VMM did not exit")


@atexit.register
def kill_all():
    for vm in Vm.every:
        vm.finish()


def restored_from(path_uri, *extra, memory="16M", qmp=True):
    return Vm("-incoming", path_uri, *extra, memory=memory, qmp=qmp)


def next_gen(vm):
    """The generation a guest stopped in @vm prints next: its serial may end in the middle of a line,
    which the restored guest's serial then completes."""
    text = open(vm.serial, errors="replace").read()
    partial = re.search(r"memcount: gen (\d+)[^\n]*$", text)
    return int(partial.group(1)) + 1 if partial else vm.gens()[-1] + 1


