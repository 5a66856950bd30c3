#!/usr/bin/env bash
# bench/harness runs a Vireo command and a QEMU command alternately in one
# rig run and prints medians and their ratio.
. "$(dirname "$0")/lib.sh"
"$rig" run --work "$work" -- "$src/bench/harness" --runs 3 --json "$work/result.json" \
	vireo="$build/vireo-system-x86_64 -version" qemu="qemu-system-x86_64 -version" | tee "$work/out"
expect "$work/out" '^vireo +wall +[0-9.]+ ms' "a median for the Vireo command"
expect "$work/out" '^qemu +wall +[0-9.]+ ms' "a median for the QEMU command"
expect "$work/out" '^ratio vireo/qemu +wall +[0-9.]+x' "the ratio of the medians"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['order'][:4]==['vireo','qemu','vireo','qemu'], r['order']" "$work/result.json" \
	|| fail "runs were not alternated"
echo "ok: runs alternated"
