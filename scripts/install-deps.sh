#!/usr/bin/env bash
# Install everything Vireo needs to build, test and run its rig, on Debian 12.
# Idempotent: packages already present are left alone.
#
# Build: compiler, meson/ninja, GLib, libslirp, libfdt, capstone, pixman,
# Xen public headers, json-glib (QMP). Rig: Debian's QEMU 10.0 from
# bookworm-backports (the peer and the rig's emulator), busybox-static, cpio
# and the kernel build tools. Suites other than the machine's own come from
# the mirror its apt sources already name, through a private apt state.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
cache=${VIREO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

build_pkgs=(build-essential pkg-config meson ninja-build python3
  libglib2.0-dev libslirp-dev libfdt-dev libcapstone-dev libpixman-1-dev
  libxen-dev libjson-glib-dev acpica-tools clang llvm)
rig_pkgs=(busybox-static cpio kmod xz-utils zstd bc bison flex libelf-dev
  libssl-dev dwarves rsync socat ca-certificates curl e2fsprogs)
peer_version=10.0

missing=()
for p in "${build_pkgs[@]}" "${rig_pkgs[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The peer: Debian's QEMU 10.0 from bookworm-backports.
have=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p' || true)
if [ "$have" != "$peer_version" ]; then
  echo "install-deps: installing Debian's QEMU $peer_version from bookworm-backports (have: ${have:-none})"
  state="$cache/apt/backports"
  mkdir -p "$state/lists/partial"
  python3 "$here/apt-sources.py" --own bookworm-backports > "$state/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$state/lists" -o APT::Sandbox::User=root)
  $sudo apt-get "${apt_opts[@]}" update -qq
  $sudo apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends -t bookworm-backports \
    qemu-system-x86 qemu-utils >/dev/null
  have=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p')
  [ "$have" = "$peer_version" ] || { echo "install-deps: QEMU $peer_version expected, got $have" >&2; exit 1; }
fi
echo "install-deps: ok ($(qemu-system-x86_64 --version | head -1))"
