#!/usr/bin/env bash
# Smoke test of `cltrain bench`: a tiny run prints every section and writes its CSV, and a
# bad option is refused. Nothing here is timed; it checks that the benchmark runs end to
# end (peak kernel, training, inference, memory, GEMM, profiles, sweep) on the device.
# Exit 77 (meson: skipped) while the executable has no `bench` subcommand yet.
set -uo pipefail
exe=${1:?usage: test_bench.sh CLTRAIN_EXE}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check NAME COMMAND...: runs it, reports
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

if ! "$exe" bench --help >"$tmp/help" 2>&1 || ! grep -q 'usage: cltrain bench' "$tmp/help"; then
  echo "skip: $exe has no bench subcommand yet"
  cat "$tmp/help"
  exit 77
fi
if ! "$exe" devices >/dev/null 2>&1; then
  echo "skip: no OpenCL device"
  exit 77
fi

"$exe" bench --batch 8 --batches 4 --steps 2 --runs 1 --warmup 1 --csv "$tmp/b.csv" \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/out" "$tmp/err"
check "exit status 0" test "$rc" -eq 0
for want in 'FP32 peak' 'training step' 'images/s' 'inference' 'device memory' \
  'per layer group' 'per kernel' 'batch sweep'; do
  check "prints '$want'" grep -qF "$want" "$tmp/out"
done
# the GEMM section names the backend in use: kernels/gemm.cl on CPUs, CLBlast on GPUs
check "prints the GEMM section" grep -qE '^GEMM \((kernels/gemm.cl|CLBlast)\) at the' "$tmp/out"
# the sweep row for batch 4, and the conv layer groups of MiniCNN
check "sweep row for batch 4" grep -qE '^ +4 +[0-9.]+ +[0-9]+' "$tmp/out"
check "layer group 0-2" grep -qE '^  0-2 +conv 1->32 3x3, relu, maxpool 2' "$tmp/out"
# every layer-group row gives its rates, or marks its times with ~ (a difference within the
# run-to-run noise of the groups before it: linear 128->10 after linear 3136->128) and gives
# '-' for every rate, with the footnote that says why
sed -n '/^per layer group/,/^$/p' "$tmp/out" | grep -E '^  [0-9]' >"$tmp/rows"
group_rows_ok() {
  grep -qE '[0-9]~ .* - +- +- +- +-$' "$tmp/rows" && ! grep -qF '~ a difference' "$tmp/out" &&
    return 1
  ! grep -vE ' [0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+( +[0-9.]+ +([0-9.]+%|-))? *$' \
    "$tmp/rows" | grep -vE '[0-9]~ +[0-9.]+~ +[0-9.]+ +- +- +- +- +-$' | grep -q .
}
check "layer-group rows: rates, or ~ and '-' with the footnote" group_rows_ok
check "csv header" grep -qx 'section,item,batch,metric,value' "$tmp/b.csv"
check "csv training rate" grep -qE '^train,step,8,images_per_s,[0-9.e+]+$' "$tmp/b.csv"
check "csv sweep rate" grep -qE '^sweep,train,4,images_per_s,[0-9.e+]+$' "$tmp/b.csv"
"$exe" bench --steps 0 >/dev/null 2>&1
check "--steps 0 refused with status 2" test $? -eq 2
"$exe" bench --no-such-option >/dev/null 2>&1
check "unknown option refused with status 2" test $? -eq 2
"$exe" bench --model 'conv(8,3) relu' --input 1,8,8 --no-peak >/dev/null 2>&1
check "a model without a (N, classes) output refused with status 2" test $? -eq 2
exit $fail
