"""Initramfs images for the rig and for test guests.

An image holds static busybox, an init script, optional kernel modules (their
dependencies resolved from the module files) and optional extra files. It is
written as a newc cpio directly, so device nodes need no root and the output
is the same for the same inputs.
"""
import lzma
import stat
import subprocess
from pathlib import Path

from .common import REPO, atomic_write

BUSYBOX = Path("/bin/busybox")
GUEST_INIT = REPO / "tests/rig/guest-init.sh"


class Cpio:
    def __init__(self):
        self.out = bytearray()
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out += name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name.strip("/"), stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name.strip("/"), stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        self.out += b"\0" * (-len(self.out) % 512)
        return bytes(self.out)


def _module_files(moddir):
    files = {}
    for f in Path(moddir).rglob("*.ko*"):
        files[f.name.split(".ko")[0].replace("-", "_")] = f
    return files


def _builtin(moddir):
    """Names built into the kernel, or None where the package does not say
    (split Debian kernel packages ship no modules.builtin)."""
    p = Path(moddir) / "modules.builtin"
    if not p.exists():
        return None
    return {Path(line).name.split(".ko")[0].replace("-", "_") for line in p.read_text().splitlines()}


def resolve_modules(moddir, wanted):
    """Module files for `wanted` and all they depend on, dependencies first.

    A name that is built into the kernel is skipped; an unknown one is an
    error, unless the package does not list what is built in.
    """
    files, builtin = _module_files(moddir), _builtin(moddir)
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in files:
            if builtin is None or name in builtin:
                return
            raise ValueError(f"no kernel module named {name} in {moddir}")
        deps = subprocess.run(["modinfo", "-F", "depends", files[name]], check=True,
                              capture_output=True, text=True).stdout.strip()
        for dep in filter(None, deps.split(",")):
            visit(dep)
        order.append(files[name])

    for w in wanted:
        visit(w)
    return order


def _module_data(path):
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    return data


def build(init_script, modules_dir=None, modules=(), files=(), extra_init=None):
    """Return the image bytes. files: (path-in-image, host path or bytes, mode)."""
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "run", "mnt", "root", "etc"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("init", Path(init_script).read_bytes(), 0o755)
    if extra_init is not None:
        c.file("init.d/test.sh", extra_init, 0o755)
    load = []
    if modules:
        for f in resolve_modules(modules_dir, modules):
            name = f.name.split(".ko")[0] + ".ko"
            c.file(f"lib/modules/{name}", _module_data(f))
            load.append(name)
    c.file("etc/modules.load", "".join(m + "\n" for m in load).encode())
    for name, src, mode in files:
        c.file(name, src if isinstance(src, bytes) else Path(src).read_bytes(), mode)
    return c.finish()


def cmd_initramfs(args):
    script = Path(args.script).read_bytes() if args.script else None
    if args.command:
        script = (args.command + "\n").encode()
    image = build(GUEST_INIT, args.modules_dir, args.module, extra_init=script,
                  files=[(dst, src, 0o755) for dst, _, src in (f.partition("=") for f in args.file)])
    atomic_write(args.output, image)
    return 0


def add_parser(sub):
    p = sub.add_parser("initramfs", help="build a test guest initramfs")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--modules-dir", help="the kernel's lib/modules/VERSION directory")
    p.add_argument("-m", "--module", action="append", default=[], help="a module to load (repeatable)")
    p.add_argument("--script", help="shell script the init runs (as /init.d/test.sh)")
    p.add_argument("-c", "--command", help="shell commands the init runs instead of --script")
    p.add_argument("--file", action="append", default=[], help="IMAGE-PATH=HOST-PATH, an extra executable")
    p.set_defaults(func=cmd_initramfs)
