"""Everything the rig needs, fetched or built once and cached by version."""
import json

from . import apt, kernel
from .common import CACHE, atomic_write, say

# Debian's stock kernels booted as test guests: name -> (metapackage, suite).
GUEST_KERNELS = {
    "bookworm-cloud": ("linux-image-cloud-amd64", "bookworm"),
    "7.x": ("linux-image-amd64", "trixie-backports"),
}
# Pure-Python Debian packages that tests run inside the rig, put on PYTHONPATH:
# name -> (package, suite). qemu-qmp is the QMP client library (and qmp-shell)
# of QEMU's own tests; its backport runs on bookworm's Python 3.11.
PYTHON_PACKAGES = {
    "qemu-qmp": ("python3-qemu-qmp", "trixie-backports"),
}
INDEX = CACHE / "assets.json"


def guest_kernel(name):
    meta, suite = GUEST_KERNELS[name]
    image_pkg = apt.resolve_image(f"{meta}/{suite}")
    roots, version = apt.fetch_kernel(image_pkg)
    return {"kernel": str(kernel.vmlinuz(roots)), "modules": str(kernel.modules_dir(roots)),
            "package": f"{image_pkg} {version}"}


def python_package(name):
    pkg, suite = PYTHON_PACKAGES[name]
    root, version = apt.fetch(pkg, suite)
    return {"path": str(root / "usr/lib/python3/dist-packages"), "package": f"{pkg} {version}"}


def ensure():
    """Fetch or build every asset; returns the index (also saved as JSON)."""
    index = {"rig": kernel.rig_kernel(), "guests": {}}
    for name in GUEST_KERNELS:
        index["guests"][name] = guest_kernel(name)
        say(f"guest kernel {name}: {index['guests'][name]['package']}")
    index["python"] = {}
    for name in PYTHON_PACKAGES:
        index["python"][name] = python_package(name)
        say(f"python package {name}: {index['python'][name]['package']}")
    atomic_write(INDEX, json.dumps(index, indent=1))
    return index


def load():
    """The index written by the last ensure(), without touching the network."""
    if not INDEX.exists():
        raise SystemExit("rig: assets are not prepared; run 'tests/rig/rig assets' (make check does)")
    return json.loads(INDEX.read_text())
