# Shared by the rig self-tests (sourced). meson passes VIREO_SRC and VIREO_BUILD.
set -euo pipefail
src=${VIREO_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
build=${VIREO_BUILD:-$src/build}
rig="$src/tests/rig/rig"
work=$(mktemp -d "$build/rig-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# expect FILE PATTERN WHAT: the output FILE has a line matching PATTERN.
expect() {
	grep -qE -- "$2" "$1" || fail "$3 (no line matching '$2' in the output)"
	echo "ok: $3"
}
