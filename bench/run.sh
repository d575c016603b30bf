#!/usr/bin/env bash
# bench/run.sh — cltrain against PyTorch on the same cores, back to back.
#
#   bench/run.sh                        MiniCNN, batch 64, T = 1 and 2 threads, 3 rounds
#   bench/run.sh --model cifar          the CIFAR-10-shaped model (3x32x32 input)
#   bench/run.sh --threads "1 2" --rounds 5 --batch 64 --steps 10
#
# For each thread count T and round, `cltrain bench --threads T` (PoCL:
# POCL_MAX_PTHREAD_COUNT=T) and bench/pytorch_minicnn.py --threads T (torch.set_num_threads,
# OMP_NUM_THREADS=T; the better of NCHW and channels_last) run one after the other, so both
# see about the same load from whatever else runs on the machine. Each prints the median
# of its timed runs; this script prints, per T, the median and the best over the rounds
# and their ratio (cltrain / PyTorch: above 1 means cltrain is faster).
#
# Environment: BUILD_DIR (default build) holds the built tree; PYTHON is the interpreter
# with torch (default: the first of python3, /usr/bin/python3 that imports torch).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$here/build}
model=minicnn
threads="1 2"
rounds=3
batch=64
steps=10
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$model" in
  minicnn) spec=minicnn; input=1,28,28 ;;
  cifar) spec="conv(64,3,pad=1) relu conv(64,3,pad=1) relu maxpool(2) conv(128,3,pad=1) relu conv(128,3,pad=1) relu maxpool(2) conv(256,3,pad=1) relu conv(256,3,pad=1) relu maxpool(2) flatten linear(256) relu linear(10)"
         input=3,32,32 ;;
  *) echo "bench/run.sh: --model is minicnn or cifar" >&2; exit 2 ;;
esac

# cltrain: the tool when it has the subcommand, else the stand-in main built here
cltrain=("$build/tools/cltrain/cltrain" bench)
if ! "${cltrain[@]}" --help >/dev/null 2>&1; then
  lib=$build/tools/cltrain/libcltrain_bench.a
  [ -f "$lib" ] || ninja -C "$build" tools/cltrain/libcltrain_bench.a >/dev/null
  runner=$build/bench_main
  cc -std=c11 -O2 -I"$here/tools/cltrain" "$here/bench/bench_main.c" "$lib" \
    -L"$build" -Wl,-rpath,"$build" -lcltrain -lOpenCL -lm -o "$runner"
  cltrain=("$runner" bench)
fi
if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import torch' 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
[ -n "${PYTHON:-}" ] || { echo "bench/run.sh: no python with torch (set PYTHON)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "bench/run.sh: $model, batch $batch, threads: $threads, $rounds rounds; $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  torch $("$PYTHON" -c 'import torch; print(torch.__version__)') ($PYTHON)"
for t in $threads; do
  for r in $(seq "$rounds"); do
    "${cltrain[@]}" --model "$spec" --input "$input" --batch "$batch" --steps "$steps" \
      --threads "$t" --no-peak --no-layers --no-gemm --no-memory --batches 0 \
      --csv "$tmp/c.csv" >"$tmp/c.out" 2>&1 || { cat "$tmp/c.out"; exit 1; }
    ct=$(awk -F, '$1=="train" && $4=="images_per_s" {print $5}' "$tmp/c.csv")
    ci=$(awk -F, '$1=="infer" && $4=="images_per_s" {print $5}' "$tmp/c.csv")
    OMP_NUM_THREADS=$t "$PYTHON" "$here/bench/pytorch_minicnn.py" --model "$model" \
      --input "$input" --batch "$batch" --steps "$steps" --threads "$t" >"$tmp/p.out" 2>&1 ||
      { cat "$tmp/p.out"; exit 1; }
    res=$(grep '^RESULT' "$tmp/p.out")
    pt=$(sed 's/.* train_ips=\([^ ]*\).*/\1/' <<<"$res")
    pi=$(sed 's/.* infer_ips=\([^ ]*\).*/\1/' <<<"$res")
    pf=$(sed 's/.* train_format=\([^ ]*\).*/\1/' <<<"$res")
    printf '  T=%s round %s: cltrain train %8.1f img/s infer %8.1f | torch train %8.1f (%s) infer %8.1f\n' \
      "$t" "$r" "$ct" "$ci" "$pt" "$pf" "$pi"
    echo "$t $ct $ci $pt $pi" >>"$tmp/all"
  done
done
echo
awk '
function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function mx(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
{ t = $1; n[t]++; ct[t, n[t]] = $2; ci[t, n[t]] = $3; pt[t, n[t]] = $4; pi[t, n[t]] = $5; if (!(t in seen)) { seen[t] = 1; order[++no] = t } }
END {
  printf "%-3s %-9s %12s %12s %8s   %12s %12s %8s\n", "T", "images/s", "cltrain", "pytorch", "ratio", "cltrain inf", "pytorch inf", "ratio"
  for (k = 1; k <= no; k++) {
    t = order[k]; m = n[t]
    for (i = 1; i <= m; i++) { a[i] = ct[t, i]; b[i] = pt[t, i]; c[i] = ci[t, i]; d[i] = pi[t, i] }
    A = med(a, m); B = med(b, m); C = med(c, m); D = med(d, m)
    printf "%-3s %-9s %12.1f %12.1f %7.2fx   %12.1f %12.1f %7.2fx\n", t, "median", A, B, A / B, C, D, C / D
    for (i = 1; i <= m; i++) { a[i] = ct[t, i]; b[i] = pt[t, i]; c[i] = ci[t, i]; d[i] = pi[t, i] }
    A = mx(a, m); B = mx(b, m); C = mx(c, m); D = mx(d, m)
    printf "%-3s %-9s %12.1f %12.1f %7.2fx   %12.1f %12.1f %7.2fx\n", t, "best", A, B, A / B, C, D, C / D
  }
}' "$tmp/all"
