"""Debian packages from any suite, through a private apt state directory.

The mirror comes from the machine's own apt sources (scripts/apt-sources.py);
nothing is installed: packages are downloaded and unpacked into the cache.
"""
import shutil
import subprocess
from pathlib import Path

from .common import CACHE, REPO, atomic_write, run, say

# The machine's own suites plus the ones the rig draws from.
EXTRA_SUITES = ["bookworm-backports", "trixie-backports"]
STATE = CACHE / "apt" / "rig"
PKGS = CACHE / "pkgs"


def _opts():
    return ["-o", f"Dir::Etc::SourceList={STATE / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={STATE / 'lists'}",
            "-o", f"Dir::Cache={STATE / 'cache'}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1"]


_updated = False


def update():
    """Refresh the private package lists once per process."""
    global _updated
    if _updated:
        return
    (STATE / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (STATE / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = subprocess.run(["python3", REPO / "scripts/apt-sources.py", "--own", *EXTRA_SUITES],
                             check=True, capture_output=True, text=True).stdout
    atomic_write(STATE / "sources.list", sources)
    run(["apt-get", *_opts(), "-qq", "update"])
    _updated = True


def show(spec, field):
    """A field of the candidate of 'name' or 'name/suite', e.g. Version."""
    update()
    out = subprocess.run(["apt-cache", *_opts(), "show", spec], capture_output=True, text=True).stdout
    # apt-cache show lists every version; with a /suite the first is that suite's.
    for line in out.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def resolve_image(meta_spec):
    """The concrete linux-image-<version> package a metapackage depends on."""
    depends = show(meta_spec, "Depends") or ""
    for dep in depends.split(","):
        name = dep.strip().split()[0]
        if name.startswith("linux-image-") and name[len("linux-image-"):][0].isdigit():
            return name
    raise RuntimeError(f"no linux-image dependency in {meta_spec}: {depends!r}")


def fetch_kernel(image_pkg, suite=None):
    """Unpack a kernel image package and the parts it is split into.

    Newer Debian kernels ship vmlinuz and modules in linux-binary-* and
    linux-modules-* packages that the linux-image-* package depends on.
    Returns (list of unpacked roots, version).
    """
    root, version = fetch(image_pkg, suite)
    roots = [root]
    for dep in (show(f"{image_pkg}={version}", "Depends") or "").split(","):
        name = dep.strip().split()[0] if dep.strip() else ""
        if name.startswith(("linux-binary-", "linux-modules-")):
            roots.append(fetch(name, suite)[0])
    return roots, version


def fetch(name, suite=None):
    """Download and unpack a package; returns (directory, version). Cached."""
    spec = f"{name}/{suite}" if suite else name
    version = show(spec, "Version")
    if version is None:
        raise RuntimeError(f"package {spec} not found in the configured suites")
    dest = PKGS / f"{name}_{version.replace(':', '%')}"
    if (dest / ".done").exists():
        return dest, version
    say(f"downloading {name} {version}")
    tmp = PKGS / "download"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run(["apt-get", *_opts(), "-qq", "download", f"{name}={version}"], cwd=tmp)
    deb = next(tmp.glob("*.deb"))
    shutil.rmtree(dest, ignore_errors=True)
    run(["dpkg-deb", "-x", deb, dest])
    shutil.rmtree(tmp)
    (dest / ".done").write_text(version + "\n")
    return dest, version
