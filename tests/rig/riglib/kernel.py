"""The rig kernel: built from Debian's linux-source, cached by its inputs.

If it cannot be built, Debian's packaged kernel and its modules are used
instead; SW-protected VMs (VM type 1) are then unavailable.
"""
import json
import os
import shutil
import tarfile
from pathlib import Path

from . import apt
from .common import CACHE, REPO, atomic_write, digest, run, say

SOURCE_PKG = ("linux-source-7.2", "trixie-backports")
PACKAGED_META = ("linux-image-amd64", "trixie-backports")
FRAGMENT = REPO / "tests/rig/rig-kernel.config"
# Bump when the build recipe below changes in a way that changes the kernel.
RECIPE = "defconfig+kvm_guest+fragment v1"
# Modules the packaged kernel needs loaded for KVM and 9p (in dependency order
# they are resolved from modules.dep anyway).
PACKAGED_MODULES = ["kvm-amd", "9p", "9pnet_virtio", "virtio_pci", "overlay", "tun"]


def _fragment_options():
    opts = {}
    for line in FRAGMENT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            opts[key] = value
    return opts


def _build(src_dir, version, out):
    tarball = next(src_dir.glob("usr/src/linux-source-*.tar.*"))
    work = CACHE / "rig-kernel" / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    say(f"building the rig kernel from {tarball.name} ({version}); about 15 minutes on 2 cores")
    with tarfile.open(tarball) as tf:
        # Debian's own source tarball: trusted, and it has symlinks the default filter refuses.
        if hasattr(tarfile, "data_filter"):
            tf.extractall(work, filter="fully_trusted")
        else:
            tf.extractall(work)
    tree = next(p for p in work.iterdir() if p.is_dir())
    jobs = str(os.cpu_count() or 2)
    log = open(out / "build.log", "w")
    make = ["make", "-C", tree, f"-j{jobs}"]
    run(make + ["x86_64_defconfig", "kvm_guest.config"], stdout=log, stderr=log)
    opts = _fragment_options()
    cfg = ["scripts/config"]
    for key, value in opts.items():
        cfg += ["--enable" if value == "y" else "--set-val", key[len("CONFIG_"):]]
        if value != "y":
            cfg.append(value)
    run(cfg, cwd=tree, stdout=log, stderr=log)
    run(make + ["olddefconfig"], stdout=log, stderr=log)
    config = (tree / ".config").read_text().splitlines()
    missing = [f"{k}={v}" for k, v in opts.items() if f"{k}={v}" not in config]
    if missing:
        raise RuntimeError(f"rig kernel config lacks {', '.join(missing)}")
    run(make + ["bzImage"], stdout=log, stderr=log)
    shutil.copy(tree / "arch/x86/boot/bzImage", out / "bzImage")
    shutil.copy(tree / ".config", out / "config")
    shutil.rmtree(work)


def rig_kernel():
    """Return a dict describing the rig kernel (path, modules, flavour)."""
    src_dir, version = apt.fetch(*SOURCE_PKG)
    key = digest(SOURCE_PKG[0], version, FRAGMENT.read_bytes(), RECIPE)
    out = CACHE / "rig-kernel" / key
    info_file = out / "info.json"
    if info_file.exists():
        info = json.loads(info_file.read_text())
        say(f"rig kernel: cache hit ({info['describe']}), no rebuild")
        return info
    out.mkdir(parents=True, exist_ok=True)
    try:
        _build(src_dir, version, out)
        info = {"flavour": "built", "kernel": str(out / "bzImage"), "modules": None,
                "describe": f"built from {SOURCE_PKG[0]} {version}, key {key}",
                "sw_protected": True}
        atomic_write(info_file, json.dumps(info, indent=1))
        say(f"rig kernel: built ({info['describe']})")
        return info
    except Exception as e:  # the packaged kernel still gives a working rig
        say(f"rig kernel: build failed ({e}); see {out / 'build.log'}")
        say("rig kernel: falling back to Debian's packaged kernel: "
            "SW-protected VMs (VM type 1) are unavailable in the rig")
        return packaged_kernel()


def packaged_kernel():
    image_pkg = apt.resolve_image("/".join(PACKAGED_META))
    roots, version = apt.fetch_kernel(image_pkg, PACKAGED_META[1])
    return {"flavour": "packaged", "kernel": str(vmlinuz(roots)), "modules": str(modules_dir(roots)),
            "load": PACKAGED_MODULES, "describe": f"Debian's {image_pkg} {version}",
            "sw_protected": False}


def vmlinuz(roots):
    for root in roots:
        for pattern in ("boot/vmlinuz-*", "usr/lib/modules/*/vmlinuz"):
            found = sorted(Path(root).glob(pattern))
            if found:
                return found[0]
    raise RuntimeError(f"no vmlinuz in {', '.join(map(str, roots))}")


def modules_dir(roots):
    for root in roots:
        for base in ("usr/lib/modules", "lib/modules"):
            dirs = [d for d in (Path(root) / base).glob("*") if (d / "kernel").is_dir()]
            if dirs:
                return dirs[0]
    raise RuntimeError(f"no kernel modules in {', '.join(map(str, roots))}")
