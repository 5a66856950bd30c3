#!/usr/bin/env bash
# Bad command lines: each gives exactly one line on stderr, naming what was
# wrong, and exit status 1, before any guest runs.
set -euo pipefail
build=${VIREO_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
vmm="$build/vireo-system-x86_64"
guest="$build/tests/guest/hello.elf"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "just some text" > "$dir/not-a-kernel"
fails=0

# expect_error "WHAT" "TEXT IN THE MESSAGE" ARGS...
expect_error() {
	local what=$1 text=$2 status=0
	shift 2
	"$vmm" "$@" > "$dir/out" 2> "$dir/err" || status=$?
	local lines
	lines=$(wc -l < "$dir/err")
	if [ "$status" = 1 ] && [ "$lines" = 1 ] && grep -qF -- "$text" "$dir/err" && [ ! -s "$dir/out" ]; then
		echo "ok: $what: $(cat "$dir/err")"
	else
		echo "FAIL: $what: status $status, $lines stderr line(s), expected one naming '$text':"
		sed 's/^/  | /' "$dir/err" "$dir/out"
		fails=$((fails + 1))
	fi
}

expect_error "unknown option" "-bogus: invalid option" -bogus
expect_error "-m 0" "-m 0: memory size must be greater than 0" -m 0 -kernel "$guest"
expect_error "-smp 0" "-smp 0: cpus must be a number" -smp 0 -kernel "$guest"
expect_error "missing kernel file" "-kernel $dir/missing" -kernel "$dir/missing"
expect_error "kernel that is not a bzImage" "-kernel $dir/not-a-kernel: not a Linux bzImage" -kernel "$dir/not-a-kernel"
expect_error "no kernel" "no kernel given" -m 64M
expect_error "unknown machine" "-machine q99: unknown machine type" -machine q99 -kernel "$guest"
expect_error "bad -serial" "-serial tcp:1: serial backend must be" -serial tcp:1
expect_error "missing initrd file" "-initrd $dir/nope" -kernel "$guest" -initrd "$dir/nope"
expect_error "kernel that is a directory" "-kernel $dir: not a regular file" -kernel "$dir"
expect_error "unknown chardev backend" "-chardev pty,id=c: unknown backend 'pty'" -chardev pty,id=c -kernel "$guest"
expect_error "chardev used twice" "chardev 'c' is already used by" -chardev null,id=c -serial chardev:c \
	-device virtio-serial-pci -device virtconsole,chardev=c -kernel "$guest"
expect_error "chardev file in a missing directory" "chardev 'c': cannot open '$dir/no/f'" \
	-chardev file,id=c,path="$dir/no/f" -kernel "$guest"
expect_error "virtconsole without its bus" "-device virtconsole: no virtio-serial-pci to attach to" \
	-device virtconsole -kernel "$guest"
expect_error "second virtconsole" "one virtconsole per virtio-serial-pci" \
	-device virtio-serial-pci -device virtconsole -device virtconsole -kernel "$guest"
expect_error "rng file missing" "-object rng-random,id=r,filename=$dir/nope: cannot open" \
	-object rng-random,id=r,filename="$dir/nope" -kernel "$guest"
expect_error "rng backend not found" "-device virtio-rng-pci,rng=r: rng backend 'r' not found" \
	-device virtio-rng-pci,rng=r -kernel "$guest"
exit $((fails > 0))
