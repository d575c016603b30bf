#!/usr/bin/env bash
# Fails every device allocation, enqueue and program build of a small training run in
# turn (tests/fault/shim.c in front of the OpenCL loader) and checks that each one ends in
# a clean error: exit status 3 from the driver, with a message; never a crash, never a
# silent success. Under the sanitizer build (.ci/sanitize) LeakSanitizer also checks that
# every failure path releases what it allocated.
set -uo pipefail
shim=$1
driver=$2
report=$(mktemp)
trap 'rm -f "$report"' EXIT
# the shim is not instrumented; ASan must not insist on coming first
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
# every program build goes through clBuildProgram, from source or from a cached binary
export CLTRAIN_CACHE=0

out=$(LD_PRELOAD=$shim CT_FAULT_REPORT=$report "$driver" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
  echo "the run without faults failed (exit $rc): $out"
  exit 1
fi
declare -A count
while read -r kind n; do count[$kind]=$n; done < "$report"
echo "points: ${count[alloc]} allocations, ${count[enqueue]} enqueues, ${count[build]} builds"
[ "${count[alloc]}" -gt 0 ] && [ "${count[enqueue]}" -gt 0 ] && [ "${count[build]}" -gt 0 ] || {
  echo "the shim saw no calls: is it loaded?"
  exit 1
}
fail=0
tried=0
for kind in alloc enqueue build; do
  var=CT_FAULT_${kind^^}
  for ((n = 1; n <= count[$kind]; n++)); do
    out=$(env LD_PRELOAD="$shim" "$var=$n" "$driver" 2>&1)
    rc=$?
    tried=$((tried + 1))
    if [ $rc -ne 3 ]; then
      echo "FAIL: $kind #$n: exit $rc (expected 3, a clean error): $(echo "$out" | tail -n 3)"
      fail=$((fail + 1))
    fi
  done
done
echo "$tried injected faults, $fail not handled cleanly"
[ $fail -eq 0 ]
