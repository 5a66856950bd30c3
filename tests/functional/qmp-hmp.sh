#!/bin/bash
# QMP on -chardev socket + -mon: an inherited listening socket (fd=N) set up
# by a python wrapper, then human-monitor-command against the idle guest
# (tests/guest/idle.c, sitting in a hlt loop), query-chardev and query-block.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

elf=$GUEST_DIR/idle.elf
[[ -f $elf ]] || fail "no guest image $elf"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# Bad -chardev/-mon combinations: exit status 1 and one line.
if [[ $VMM_IS_VIREO == 1 ]]; then
    sock=$dir/x.sock
    while IFS='|' read -r args want; do
        STATUS=0
        # shellcheck disable=SC2086 # the arguments are split on purpose
        out=$("${VMM[@]}" -kernel "$elf" $args 2>&1 </dev/null) || STATUS=$?
        echo "$out"
        [[ $STATUS == 1 ]] || fail "$args: exit status $STATUS, expected 1"
        [[ $(wc -l <<<"$out") == 1 && $out == *"$want"* ]] || fail "$args: not one line with '$want'"
    done <<EOT
-mon chardev=nope,mode=control|chardev 'nope' not found
-chardev socket,id=c,path=$sock,server=on,wait=off -mon chardev=c|only mode=control
-chardev socket,id=c,path=$sock,server=on,wait=off -mon chardev=c,mode=readline|only mode=control
-chardev socket,id=c,path=$sock,server=on,wait=off -mon chardev=c,mode=control -mon chardev=c,mode=control|chardev 'c' is already used by -mon chardev=c
-chardev file,id=c,path=$dir/f -mon chardev=c,mode=control|chardev 'c' is not a socket
-chardev file,id=c,path=/nonexistent-vireo-dir/f|chardev 'c': cannot open '/nonexistent-vireo-dir/f'
-chardev socket,id=c,fd=9,server=on,wait=off -mon chardev=c,mode=control|-chardev id=c: file descriptor 9 is not a socket
-chardev socket,id=c,fd=0,server=on,wait=off -mon chardev=c,mode=control|-chardev id=c:
EOT
fi

python3 - "$dir" "$elf" "$TIMEOUT" "${VMM[@]}" <<'PY' || fail "QMP session over an inherited socket failed"
import json, os, socket, subprocess, sys, time

dir, elf, timeout, vmm = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
path = os.path.join(dir, "inherited.sock")
lsock = socket.socket(socket.AF_UNIX)
lsock.bind(path)
lsock.listen(1)
fd = lsock.detach()
if fd != 3:
    os.dup2(fd, 3, inheritable=False)
    os.close(fd)
cmdline = ["timeout", timeout] + vmm + ["-m", "16M", "-nodefaults", "-nographic", "-serial", "file:" + dir + "/serial",
           "-kernel", elf, "-chardev", "socket,id=c,fd=3,server=on,wait=off", "-mon", "chardev=c,mode=control"]
print("+", " ".join(cmdline))
vm = subprocess.Popen(cmdline, pass_fds=[3], stdin=subprocess.DEVNULL)
os.close(3)

def check(cond, what):
    if not cond:
        vm.terminate()  # timeout(1) passes SIGTERM on to the VMM
        sys.exit("check failed: " + what)

s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(path)
f = s.makefile("rb")

def read():
    while True:
        msg = json.loads(f.readline())
        if "event" not in msg:
            return msg

def cmd(name, **args):
    req = {"execute": name}
    if args:
        req["arguments"] = args
    s.sendall(json.dumps(req).encode())
    r = read()
    print("->", json.dumps(req), "\n<-", json.dumps(r))
    check("return" in r, name + " succeeded")
    return r["return"]

check("QMP" in read(), "greeting")
cmd("qmp_capabilities")
check(cmd("query-status")["status"] == "running", "running")
# Only once the guest is in its hlt loop is there a known place to disassemble.
for _ in range(600):
    if os.path.exists(dir + "/serial") and b"@guest: idling" in open(dir + "/serial", "rb").read():
        break
    time.sleep(0.1)
else:
    check(False, "the guest came up")

hmp = lambda line: cmd("human-monitor-command", **{"command-line": line})
check(hmp("info status") == "VM status: running\r\n", "info status")
regs = hmp("info registers")
check("RIP=" in regs and "CR0=" in regs and "EFER=" in regs, "info registers")
# The serial line is out before the guest has returned from printing: the
# vCPU reaches its hlt loop a moment later.
for _ in range(100):
    code = hmp("x/2i $pc")
    if "hlt" in code or "jmp" in code:
        break
    time.sleep(0.05)
check("hlt" in code or "jmp" in code, "x/2i $pc disassembles the idle loop")
check(len(code.strip().split("\r\n")) == 2, "two instructions")
check(hmp("bogus") == "unknown command: 'bogus'\r\n", "unknown HMP command")
cmd("stop")
check(hmp("info status") == "VM status: paused\r\n", "info status paused")
check("RIP=" in hmp("info registers"), "registers while paused")
cmd("cont")
check(cmd("query-status")["status"] == "running", "still running after HMP")

chardevs = {c["label"]: c for c in cmd("query-chardev")}
check(chardevs["serial0"]["filename"] == "file:" + dir + "/serial", "serial0 in query-chardev")
check("c" in chardevs and chardevs["c"]["frontend-open"], "the monitor's chardev in query-chardev")
check(cmd("query-block") == [], "no block devices")

cmd("quit")
check(vm.wait(timeout=60) == 0, "clean exit after quit")
print("QMP over an inherited socket ok")
PY
# -chardev socket,path=PATH: the monitor listens there, named by its id.
sock=$dir/chardev.sock
echo "+ ${VMM[*]} -S -m 16M -nodefaults -nographic -serial null -kernel $elf -chardev socket,id=mon0,path=$sock,server=on,wait=off -mon chardev=mon0,mode=control"
timeout "$TIMEOUT" "${VMM[@]}" -S -m 16M -nodefaults -nographic -serial null -kernel "$elf" \
    -chardev "socket,id=mon0,path=$sock,server=on,wait=off" -mon chardev=mon0,mode=control </dev/null &
vmm_pid=$!
python3 - "$sock" <<'PY' || { kill "$vmm_pid"; fail "QMP session over -chardev path= failed"; }
import json, socket, sys, time
for _ in range(600):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sys.argv[1])
        break
    except (FileNotFoundError, ConnectionRefusedError):
        time.sleep(0.1)
s.settimeout(30)
f = s.makefile("rb")
json.loads(f.readline())
s.sendall(b'{"execute": "qmp_capabilities"}{"execute": "query-chardev"}')
assert json.loads(f.readline()) == {"return": {}}
cd = json.loads(f.readline())["return"]
assert cd == [{"label": "serial0", "filename": "null", "frontend-open": True}, {"label": "mon0", "filename": "unix:%s,server=on" % sys.argv[1], "frontend-open": True}], cd
s.sendall(b'{"execute": "human-monitor-command", "arguments": {"command-line": "info status"}}')
assert json.loads(f.readline()) == {"return": "VM status: prelaunch\r\n"}
s.sendall(b'{"execute": "quit"}')
assert json.loads(f.readline()) == {"return": {}}
print("QMP over -chardev path= ok")
PY
STATUS=0
wait "$vmm_pid" || STATUS=$?
expect_status 0
pass
