#!/bin/bash
# QMP over a unix socket against a running guest (tests/guest/idle.c): the
# greeting and negotiation, run-state commands and their events, vCPU thread
# ids, a QMP reset, and quit delivering its reply before a clean exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

elf=$GUEST_DIR/idle.elf
[[ -f $elf ]] || fail "no guest image $elf"
dir=$(mktemp -d)
vmm_pid=
cleanup() {
    if [[ -n $vmm_pid ]]; then kill "$vmm_pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

# Bad -qmp values: exit status 1 and one line naming the option.
if [[ $VMM_IS_VIREO == 1 ]]; then
    for bad in "unix:$dir/x" "unix:$dir/x,server=on,wait=on" "udp:1.2.3.4:5,server=on,wait=off" \
               "tcp:localhost,server=on,wait=off" "unix:$dir/x,server=on,wait=off,color=red"; do
        STATUS=0
        out=$("${VMM[@]}" -kernel "$elf" -qmp "$bad" 2>&1) || STATUS=$?
        echo "$out"
        [[ $STATUS == 1 ]] || fail "-qmp $bad: exit status $STATUS, expected 1"
        [[ $(wc -l <<<"$out") == 1 && $out == *"-qmp $bad: "* ]] || fail "-qmp $bad: not one line naming it"
    done
fi

sock=$dir/qmp.sock
echo "+ ${VMM[*]} -m 16M -smp 2 -name qmp-test -nodefaults -nographic -serial file:$dir/serial -kernel $elf -qmp unix:$sock,server=on,wait=off -pidfile $dir/pid"
timeout "$TIMEOUT" "${VMM[@]}" -m 16M -smp 2 -name qmp-test -nodefaults -nographic -serial "file:$dir/serial" \
    -kernel "$elf" -qmp "unix:$sock,server=on,wait=off" -pidfile "$dir/pid" </dev/null >"$dir/stdout" 2>&1 &
vmm_pid=$!

python3 - "$sock" "$dir/pid" "$dir/serial" <<'PY' || { cat "$dir/stdout"; fail "QMP session failed"; }
import json, os, socket, sys, time

path, pidfile, serial = sys.argv[1], sys.argv[2], sys.argv[3]
deadline = time.time() + 60

def check(cond, what):
    if not cond:
        sys.exit("check failed: " + what)

while True:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        break
    except OSError:
        check(time.time() < deadline, "the QMP socket never appeared")
        time.sleep(0.1)
s.settimeout(30)
f = s.makefile("rb")
events = []

def read():
    line = f.readline()
    check(line.endswith(b"\r\n"), "a reply ending in CRLF, got %r" % line)
    print("<-", line.decode().rstrip())
    return json.loads(line)

def cmd(name, **args):
    req = {"execute": name, "id": name}
    if args:
        req["arguments"] = args
    print("->", json.dumps(req))
    s.sendall(json.dumps(req).encode())
    while True:
        msg = read()
        if "event" in msg:
            events.append(msg)
        else:
            check(msg.get("id") == name, "reply id %r" % msg.get("id"))
            check("return" in msg, "%s succeeded" % name)
            return msg["return"]

def event(name):
    while not any(e["event"] == name for e in events):
        events.append(read())
    e = next(e for e in events if e["event"] == name)
    events.remove(e)
    check(set(e["timestamp"]) == {"seconds", "microseconds"}, "event timestamp")
    return e

def serial_has(text, count=1):
    end = time.time() + 30
    while time.time() < end:
        with open(serial, "rb") as sf:
            if sf.read().decode(errors="replace").count(text) >= count:
                return True
        time.sleep(0.1)
    return False

pid = int(open(pidfile).read())  # the VMM's, not timeout's
greeting = read()
check(greeting["QMP"]["version"]["qemu"]["major"] >= 8, "greeting version")
cmd("qmp_capabilities")
check(serial_has("@guest: idling"), "the guest came up")
st = cmd("query-status")
check(st["status"] == "running" and st["running"], "running at first")
check(cmd("query-name") == {"name": "qmp-test"}, "query-name")
check(cmd("query-kvm") == {"enabled": True, "present": True}, "query-kvm")

cmd("stop")
event("STOP")
st = cmd("query-status")
check(st["status"] == "paused" and not st["running"], "paused after stop")
cmd("cont")
event("RESUME")
check(cmd("query-status")["status"] == "running", "running after cont")

cpus = cmd("query-cpus-fast")
check(len(cpus) == 2, "two vCPUs")
tids = {c["thread-id"] for c in cpus}
check(len(tids) == 2, "distinct thread ids")
for c in cpus:
    check(os.path.isdir("/proc/%d/task/%d" % (pid, c["thread-id"])), "thread %d in the VMM" % c["thread-id"])

cmd("system_reset")
e = event("RESET")
check(e["data"] == {"guest": False, "reason": "host-qmp-system-reset"}, "RESET data")
check(serial_has("@guest: start idle", 2), "the guest booted again after the reset")

cmd("quit")
e = event("SHUTDOWN")
check(e["data"] == {"guest": False, "reason": "host-qmp-quit"}, "SHUTDOWN data")
check(f.readline() == b"", "the connection closed after quit")
print("QMP session ok")
PY

STATUS=0
wait "$vmm_pid" || STATUS=$?
vmm_pid=
cat "$dir/stdout"
expect_status 0

# -S: prelaunch until cont, which emits RESUME; two clients see the events.
sock=$dir/qmp-S.sock
echo "+ ${VMM[*]} -S -m 16M -nodefaults -nographic -serial null -kernel $elf -qmp unix:$sock,server=on,wait=off"
timeout "$TIMEOUT" "${VMM[@]}" -S -m 16M -nodefaults -nographic -serial null -kernel "$elf" \
    -qmp "unix:$sock,server=on,wait=off" </dev/null >"$dir/stdout" 2>&1 &
vmm_pid=$!
python3 - "$sock" <<'PY' || { cat "$dir/stdout"; fail "QMP session with -S failed"; }
import json, socket, sys, time

def connect(path):
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.settimeout(30)
            f = s.makefile("rb")
            json.loads(f.readline())
            s.sendall(b'{"execute": "qmp_capabilities"}')
            assert json.loads(f.readline()) == {"return": {}}
            return s, f
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.1)
    sys.exit("the QMP socket never appeared")

(a, fa), (b, fb) = connect(sys.argv[1]), connect(sys.argv[1])
a.sendall(b'{"execute": "query-status"}')
st = json.loads(fa.readline())["return"]
assert st["status"] == "prelaunch" and not st["running"], st
a.sendall(b'{"execute": "cont"}')
for f in (fa, fb):
    ev = json.loads(f.readline())
    assert ev["event"] == "RESUME", ev
assert json.loads(fa.readline()) == {"return": {}}
b.sendall(b'{"execute": "quit", "id": 5}')
assert json.loads(fb.readline()) == {"return": {}, "id": 5}
for f in (fa, fb):
    ev = json.loads(f.readline())
    assert ev["event"] == "SHUTDOWN" and ev["data"]["reason"] == "host-qmp-quit", ev
print("QMP session with -S ok")
PY
STATUS=0
wait "$vmm_pid" || STATUS=$?
vmm_pid=
expect_status 0
pass
