#!/bin/sh
# run-guarded.sh SECONDS LOG CMD...: run CMD with its output in LOG (a file
# never blocks the VMM the way a stalled terminal can), print LOG and
# "=== exit N". If CMD outlives SECONDS, print every thread's backtrace
# (gdb) before killing it, so a hang is diagnosed rather than just timed out.
limit=$1 log=$2
shift 2
"$@" > "$log" 2>&1 &
pid=$!
n=0
while kill -0 $pid 2>/dev/null && [ $n -lt "$limit" ]; do
	sleep 1
	n=$((n + 1))
done
if kill -0 $pid 2>/dev/null; then
	cat "$log"
	echo "=== hung after ${limit}s; threads of $1:"
	gdb -p $pid -batch -ex "thread apply all bt" 2>&1 | grep -E '^Thread|^#'
	kill -9 $pid
	wait $pid 2>/dev/null
	echo "=== exit hung"
	exit 1
fi
wait $pid
status=$?
cat "$log"
echo "=== exit $status"
