#!/bin/sh
# run-fuzz.sh FUZZER SEEDS WORK: run a libFuzzer target for FUZZ_SECONDS
# (default 60) on WORK/corpus (kept between runs; new inputs go there) and the
# read-only SEEDS. On a finding, print the reproducer and how to rerun it.
set -u
fuzzer=$(realpath "$1") seeds=$2 work=$3
mkdir -p "$work/corpus" "$work/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
"$fuzzer" -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -timeout=10 \
	-print_final_stats=1 -artifact_prefix="$work/artifacts/" \
	"$work/corpus" "$seeds" 2>"$work/fuzz.log"
rc=$?
grep -E '^(INFO: Seed|#[0-9]+ +(INITED|DONE)|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$work/fuzz.log"
if [ $rc -ne 0 ]; then
	tail -n 60 "$work/fuzz.log"
	for f in $(grep -oE 'Test unit written to [^ ]+' "$work/fuzz.log" | cut -d' ' -f5); do
		echo "FAIL: reproducer $f (rerun: $fuzzer $f)"
	done
	exit 1
fi
echo "ok: no finding in ${FUZZ_SECONDS:-60} s (log: $work/fuzz.log)"
