"""Run a job inside the rig and hand back its output and exit status."""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import assets, initramfs
from .common import CACHE, REPO, say

RIG_INIT = REPO / "tests/rig/rig-init.sh"
RIG_FAILED = 125  # the rig itself broke, as opposed to the job failing
# Variables a job inherits from the caller (plus any VIREO_* and --env ones).
PASS_ENV = ("PATH", "LANG", "TERM", "CI")


def _env_lines(extra):
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("VIREO_")})
    env["HOME"] = "/tmp/home"
    env["VIREO_IN_RIG"] = "1"
    env["VIREO_CACHE"] = str(CACHE)
    for kv in extra:
        k, _, v = kv.partition("=")
        env[k] = v
    return "mkdir -p /tmp/home\n" + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def run_job(command, mem="8G", smp=1, timeout=1800, work=None, env=(), tmpfs="50%", interactive=False,
            tcg_thread="single"):
    """Run `command` (a shell string) in the rig; returns its exit status.

    Interactive: the caller's terminal is the job's (QEMU puts it in raw
    mode), and the job's output is not filtered.
    """
    rig = assets.load()["rig"]
    work = Path(work or tempfile.mkdtemp(prefix="rig-", dir=REPO / "build")).resolve()
    meta = work / ".rig"
    shutil.rmtree(meta, ignore_errors=True)
    meta.mkdir(parents=True)
    (meta / "env").write_text(_env_lines(env))
    (meta / "job.sh").write_text(command + "\n")
    image = initramfs.build(RIG_INIT, rig.get("modules"), rig.get("load", []))
    (meta / "initramfs").write_bytes(image)
    qemu = ["qemu-system-x86_64", "-accel", f"tcg,thread={tcg_thread}", "-cpu", "max",
            "-m", mem, "-smp", str(smp), "-display", "none", "-monitor", "none",
            "-no-reboot", "-nodefaults", "-kernel", rig["kernel"], "-initrd", meta / "initramfs",
            # tsc=reliable: under emulation the clocksource watchdog sees jitter as TSC frequency
            # skew and marks the TSC unstable; guest stalls seemed to follow it, and were rarer
            # with this option (docs/rig.md, "Guests that stall"). VIREO_RIG_APPEND adds options.
            "-append", f"console=ttyS0 panic=-1 quiet tsc=reliable rig.work={work} rig.tmpfs={tmpfs} "
                       f"rig.keep={REPO}:{CACHE}" + (" rig.interactive=1" if interactive else "")
                       + (" " + os.environ["VIREO_RIG_APPEND"] if os.environ.get("VIREO_RIG_APPEND") else ""),
            "-serial", f"file:{meta / 'console.log'}",
            "-chardev", "stdio,id=job,signal=off", "-serial", "chardev:job",
            "-fsdev", "local,id=hr,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hr,mount_tag=hostroot",
            "-fsdev", f"local,id=wk,path={work},security_model=none",
            "-device", "virtio-9p-pci,fsdev=wk,mount_tag=work"]
    start = time.monotonic()
    if interactive:
        proc = subprocess.run([str(a) for a in qemu], timeout=None)
        return _finish(meta, proc.returncode, time.monotonic() - start, None, timeout, rig)
    proc = subprocess.Popen([str(a) for a in qemu], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    ready = None
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").replace("\r", "")
            if ready is None and line.startswith("@rig: job start"):
                ready = time.monotonic() - start
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
        proc.wait()
    finally:
        timer.cancel()
    return _finish(meta, proc.returncode, time.monotonic() - start, ready, timeout, rig)


def _finish(meta, qemu_status, total, ready, timeout, rig):
    """The job's exit status, or RIG_FAILED with the rig's last console lines."""
    status_file = meta / "status"
    if not status_file.exists():
        why = f"timed out after {timeout}s" if total >= timeout else f"QEMU exited with {qemu_status}"
        say(f"the job did not finish: {why}; last rig console lines ({meta / 'console.log'}):")
        console = (meta / "console.log").read_text(errors="replace").splitlines() if (meta / "console.log").exists() else []
        for line in console[-25:]:
            say("  " + line)
        return RIG_FAILED
    status = int(status_file.read_text().strip() or RIG_FAILED)
    timing = f"rig ready in {ready:.1f}s, job ran {total - ready:.1f}s" if ready is not None else f"rig ran {total:.1f}s"
    say(f"{timing}, exit status {status} ({rig['flavour']} rig kernel)")
    return status


def cmd_run(args):
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        say("run: nothing to run (rig run [opts] -- CMD...)")
        return 2
    command = args.command[0] if len(args.command) == 1 else shlex.join(args.command)
    return run_job(command, mem=args.mem, smp=args.smp, timeout=args.timeout,
                   work=args.work, tcg_thread=args.tcg_thread, env=args.env, tmpfs=args.tmpfs, interactive=args.interactive)


def add_parser(sub):
    p = sub.add_parser("run", help="run a job inside the rig")
    p.add_argument("--mem", default=os.environ.get("VIREO_RIG_MEM", "8G"))
    # One rig vCPU: with two (even with thread=single) a KVM guest inside the
    # rig hung during boot in 3 of 4 runs; with one, 6 of 6 booted in 6-8 s,
    # 2-vCPU guests included (docs/rig.md).
    p.add_argument("--smp", type=int, default=1, help="rig vCPUs (default 1, see docs/rig.md)")
    p.add_argument("--tcg-thread", choices=("single", "multi"), default=os.environ.get("VIREO_RIG_TCG_THREAD", "single"),
                   help="one host thread for all rig vCPUs, or one each (default single, see docs/rig.md)")
    p.add_argument("--timeout", type=int, default=int(os.environ.get("VIREO_RIG_TIMEOUT", 1800)),
                   help="seconds (default: $VIREO_RIG_TIMEOUT, else 1800)")
    p.add_argument("--work", help="writable work directory (default: a new one under build/)")
    p.add_argument("--tmpfs", default="50%", help="size of the rig's /tmp")
    p.add_argument("--env", action="append", default=[], help="K=V for the job")
    p.add_argument("--interactive", action="store_true", help="give the job this terminal")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)
