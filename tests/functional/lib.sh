# shellcheck shell=bash disable=SC2034  # the tests read VMM_IS_VIREO
# Shared by the functional tests; sourced, not run.
#
# Environment:
#   VIREO_BUILD  the meson build directory (required)
#   VIREO_SRC    the source directory (set by meson; unused so far)
#   VIREO_VMM    a command line that replaces "$VIREO_BUILD/vireo-system-x86_64
#                -accel kvm", to check these scripts against another VMM, e.g.
#                VIREO_VMM="qemu-system-x86_64 -accel tcg -M pc".  Checks that
#                only hold on KVM are skipped then (see VMM_IS_VIREO).
#   VIREO_GUEST_DIR  where the guests are (default $VIREO_BUILD/tests/guest)
#   VIREO_TIMEOUT    seconds before the VMM is killed (default 120)

: "${VIREO_BUILD:?set VIREO_BUILD to the meson build directory}"
GUEST_DIR=${VIREO_GUEST_DIR:-$VIREO_BUILD/tests/guest}
TIMEOUT=${VIREO_TIMEOUT:-120}
TEST_NAME=$(basename "$0" .sh)

if [[ -n ${VIREO_VMM:-} ]]; then
    read -r -a VMM <<<"$VIREO_VMM"
    VMM_IS_VIREO=0
else
    VMM=("$VIREO_BUILD/vireo-system-x86_64" -accel kvm)
    VMM_IS_VIREO=1
    if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
        echo "SKIP: /dev/kvm is not usable"
        exit 77            # meson's "skipped"
    fi
fi

fail() {
    echo "FAIL: $TEST_NAME: $*" >&2
    exit 1
}

# run_guest NAME: boot tests/guest/NAME.elf with its serial port on stdout.
# Sets OUTPUT (the serial output without carriage returns) and STATUS.
# REBOOT_OPTION (default -no-reboot) may be set empty to let a reset reboot.
run_guest() {
    local elf=$GUEST_DIR/$1.elf log
    [[ -f $elf ]] || fail "no guest image $elf"
    log=$(mktemp)
    local reboot=(${REBOOT_OPTION--no-reboot})
    echo "+ timeout $TIMEOUT ${VMM[*]} -m 16M -nodefaults -nographic ${reboot[*]} -serial stdio -kernel $elf"
    STATUS=0
    timeout "$TIMEOUT" "${VMM[@]}" -m 16M -nodefaults -nographic "${reboot[@]}" -serial stdio \
        -kernel "$elf" </dev/null >"$log" || STATUS=$?
    OUTPUT=$(tr -d '\r' <"$log")
    rm -f "$log"
    printf '%s\n' "$OUTPUT"
    echo "+ exit status $STATUS"
}

expect_status() {
    [[ $STATUS != 124 ]] || fail "the VMM was still running after $TIMEOUT s"
    [[ $STATUS == "$1" ]] || fail "exit status $STATUS, expected $1"
}

# expect_line TEXT: some output line is exactly TEXT.
expect_line() {
    grep -Fxq -- "$1" <<<"$OUTPUT" || fail "no line '$1'"
}

# expect_match REGEX: some output line matches the extended REGEX.
expect_match() {
    grep -Eq -- "$1" <<<"$OUTPUT" || fail "no line matching /$1/"
}

# expect_markers NAME: the guest's marker lines open with "start NAME", close
# with "pass", and none of them reports a failure.
expect_markers() {
    local markers
    markers=$(grep '^@guest: ' <<<"$OUTPUT" || true)
    [[ -n $markers ]] || fail "no '@guest:' lines on the serial port"
    [[ $(head -n1 <<<"$markers") == "@guest: start $1" ]] ||
        fail "first marker is not '@guest: start $1'"
    if grep -E '^@guest: (fail|poweroff failed)' <<<"$markers" >&2; then
        fail "the guest reported a failure"
    fi
    [[ $(tail -n1 <<<"$markers") == "@guest: pass" ]] ||
        fail "last marker is not '@guest: pass'"
}

pass() {
    echo "PASS: $TEST_NAME"
}
