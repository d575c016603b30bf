#!/usr/bin/env bash
# `cltrain tune` end to end, for real: a search of two candidates on a tiny model stores
# the device's file in a fresh cache folder; `devices --verbose` and `train --verbose`
# then report the stored parameters; a damaged file is ignored with its reason and
# training still runs; --reset removes the file; --dry-run stores nothing; usage errors.
# Then --conv: the convolution path timed (stored or not, as measured), per shape for a
# model of two convolution shapes, refused under CLTRAIN_TUNE's CONV_GEMM, set by hand
# (--conv-set), a layer shape of its own reported and used by training, ignored when
# damaged, and --conv --reset.
#
# Cost, measured on the 2-core machine: with PoCL's cache (~/.cache/pocl) cold for
# candidate 1, about 47 s to compile its CLBlast program plus up to 14 s for its indirect
# kernels if it wins (the odd-shape check); 1-15 s once PoCL has them. The rest: ~2 s.
#
# usage: test_tune.sh PATH/TO/cltrain   (CLTRAIN_CACHE_DIR: the suite's kernel cache)
set -u
cltrain=${1:?usage: test_tune.sh PATH/TO/cltrain}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() {
  echo "FAIL: $1" >&2
  fail=1
}
check() { # check NAME COMMAND...
  if "${@:2}"; then ok "$1"; else bad "$1"; fi
}

if ! "$cltrain" tune --help 2>&1 | grep -q 'usage: cltrain tune'; then
  echo "skip: $cltrain has no tune subcommand"
  exit 77
fi
if ! "$cltrain" devices >/dev/null 2>&1; then
  echo "skip: no OpenCL device"
  exit 77
fi

# What a device uses without a stored file: CPUs the built-in set (clblast_params.c), GPUs
# CLBlast's own database. On a GPU that database may win the search, and then nothing is
# stored: that is checked, and the checks that need a stored file are skipped. On a CPU
# (PoCL, as in CI) the file must be stored.
dtype=$("$cltrain" devices 2>/dev/null | awk '/^\*\[/ {d = 1; next} /^ ?\[/ {d = 0}
  d && $1 == "type" {print $2; exit}')
if [ "$dtype" = GPU ]; then
  damaged="CLBlast's database (GPU; ignored"
  default_row="in use now: CLBlast's database"
  default_reset="CLBlast's database (GPU)"
  conv_default=7
else
  damaged="built-in (ignored"
  default_row="in use now: built-in"
  default_reset="built-in"
  conv_default=0
fi

# A fresh cache folder, so the stored file touches no other test; the suite's compiled
# kernels are copied in so that the training run below does not compile them again.
mkdir -p "$tmp/cache"
if [ -n "${CLTRAIN_CACHE_DIR:-}" ] && [ -d "$CLTRAIN_CACHE_DIR" ]; then
  cp "$CLTRAIN_CACHE_DIR"/*.bin "$tmp/cache/" 2>/dev/null || true
fi
export CLTRAIN_CACHE_DIR="$tmp/cache"
unset CLTRAIN_CACHE CLTRAIN_CLBLAST_TUNE

# ---- usage errors ------------------------------------------------------------------------
for args in "--candidates 0" "--budget x" "--reset --dry-run" "--frobnicate" \
  "--model conv(4,3) --input 1,8,8"; do
  # shellcheck disable=SC2086
  "$cltrain" tune $args >/dev/null 2>"$tmp/err"
  rc=$?
  check "tune $args: exit status 2 ($(head -c 120 "$tmp/err"))" test $rc -eq 2
done

tiny=(--model "flatten linear(10)" --input 1,8,8 --batch 4 --runs 2)

# ---- --dry-run measures and stores nothing --------------------------------------------------
"$cltrain" tune "${tiny[@]}" --candidates 1 --dry-run >"$tmp/out" 2>"$tmp/err"
rc=$?
check "dry run: exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
check "dry run: says so" grep -q -- '--dry-run: nothing stored' "$tmp/out"
check "dry run: no file" test -z "$(ls "$tmp/cache"/clblast-*.txt 2>/dev/null)"

# ---- nowhere to store -------------------------------------------------------------------------
CLTRAIN_CACHE=0 "$cltrain" tune "${tiny[@]}" --candidates 1 >/dev/null 2>"$tmp/err"
rc=$?
check "CLTRAIN_CACHE=0: exit status 1" test $rc -eq 1
check "CLTRAIN_CACHE=0: says so" grep -q 'nowhere to store' "$tmp/err"
# a tiny dataset in Fashion-MNIST's format, 8x8 images
python3 - "$tmp/syn" <<'EOF'
import gzip, os, random, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
rng = random.Random(3)
for prefix, n in (("train", 32), ("t10k", 16)):
    labs = bytes(rng.randrange(10) for _ in range(n))
    imgs = bytes(rng.randrange(256) for _ in range(n * 64))
    with gzip.open(os.path.join(d, prefix + "-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 8, 8) + imgs)
    with gzip.open(os.path.join(d, prefix + "-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labs)
EOF
train=(train --data "$tmp/syn" --model "flatten linear(10)" --batch-size 4 --max-steps 2 --verbose)

# ---- a real search of two candidates -------------------------------------------------------
start=$(date +%s)
"$cltrain" tune "${tiny[@]}" --candidates 2 >"$tmp/out" 2>"$tmp/err"
rc=$?
echo "tune --candidates 2 took $(($(date +%s) - start)) s"
cat "$tmp/out"
check "tune: exit status 0 ($(tail -n 3 "$tmp/err"))" test $rc -eq 0
check "tune: table header" grep -qE '^cand +s1 ms +s2 ms +total ms +GFLOP/s +compile s +vs best +chosen' "$tmp/out"
check "tune: candidate 0 row is the set in use" grep -qE "^0 +[0-9.]+ +[0-9.]+ +[0-9.]+ .*$default_row" "$tmp/out"
check "tune: candidate 1 row" grep -qE '^1 +([0-9.]+ +[0-9.]+ +[0-9.]+|rejected)' "$tmp/out"
check "tune: one row chosen" test "$(grep -cE '^[01] +([0-9.]+ +){5}([+-][0-9.]+% +)?\*' "$tmp/out")" -eq 1
check "tune: progress on stderr" grep -q 'candidate 1: .*compiling' "$tmp/err"
if grep -q 'GEMM: ct_gemm runs kernels/gemm.cl' "$tmp/out"; then
  check "tune: kernels/gemm.cl timed for comparison" grep -qE '^own +[0-9.]+ +[0-9.]+ +[0-9.]+$' "$tmp/out"
fi
if [ "$dtype" = GPU ] && grep -q "^CLBlast's own parameters were fastest: nothing stored" "$tmp/out"; then
  check "GPU, CLBlast's own set kept: no file" test -z "$(ls "$tmp/cache"/clblast-*.txt 2>/dev/null)"
  echo "skip: the checks of a stored file (CLBlast's own set won on this GPU)"
  stored=0
fi
if [ "${stored:-1}" = 1 ]; then
  path=$(sed -n 's/^stored \(.*\): used by every.*/\1/p' "$tmp/out")
  check "tune: names the stored file" test -n "$path"
  check "tune: the file is in CLTRAIN_CACHE_DIR" test "$(dirname "$path")" = "$tmp/cache"
  check "tune: the file exists" test -s "$path"
  for key in 'cltrain-clblast-params 1' 'device ' 'platform ' 'driver ' 'clblast ' 'date ' \
    'shapes batch 4: 4x10x64:NT 10x64x4:TN+C' 'Xgemm GEMMK=' 'XgemmDirect KWID=' \
    'GemmRoutine XGEMM_MIN_INDIRECT_SIZE='; do
    check "file has '$key'" grep -q "^$key" "$path"
  done

  # ---- later runs use it ----------------------------------------------------------------------
  "$cltrain" devices --verbose >"$tmp/out" 2>&1
  check "devices --verbose: stored" grep -qF "CLBlast GEMM  stored: $path" "$tmp/out"

  "$cltrain" "${train[@]}" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "train: exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
  check "train --verbose: uses the stored parameters" grep -qF "CLBlast parameters: stored: $path" "$tmp/err"

  # a damaged file is ignored, the reason shown, and training still runs
  echo "Xgemm MWG=banana" >>"$path"
  "$cltrain" "${train[@]}" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "damaged file: train exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
  check "damaged file: the default set, with the reason" \
    grep -qF "CLBlast parameters: $damaged $path: line " "$tmp/err"

  # ---- --reset ---------------------------------------------------------------------------------
  "$cltrain" tune --reset >"$tmp/out" 2>&1
  rc=$?
  check "reset: exit status 0" test $rc -eq 0
  check "reset: says what it removed" grep -qF "removed $path" "$tmp/out"
  check "reset: the file is gone" test ! -e "$path"
  "$cltrain" devices --verbose >"$tmp/out" 2>&1
  check "devices --verbose after reset: the default set" grep -qxF "      CLBlast GEMM  $default_reset" "$tmp/out"
  "$cltrain" tune --reset >"$tmp/out" 2>&1
  check "reset again: nothing to remove" grep -q 'no stored CLBlast parameters' "$tmp/out"
fi # a stored CLBlast file

# ---- --conv: the convolution path (CONV_GEMM) --------------------------------------------
conv_tiny=(--model "conv(32,3,pad=1) relu maxpool(2) flatten linear(10)" --input 1,8,8 --batch 4
  --runs 2)
"$cltrain" tune --conv --model "flatten linear(10)" --input 1,8,8 >/dev/null 2>"$tmp/err"
rc=$?
check "tune --conv without a convolution: exit status 2" test $rc -eq 2
check "tune --conv without a convolution: says so" grep -q 'no convolution' "$tmp/err"
for args in "--conv-set 8" "--conv-set 1 --dry-run" "--conv-set 1 --reset"; do
  # shellcheck disable=SC2086
  "$cltrain" tune $args >/dev/null 2>"$tmp/err"
  rc=$?
  check "tune $args: exit status 2 ($(head -c 120 "$tmp/err"))" test $rc -eq 2
done
"$cltrain" tune --conv "${conv_tiny[@]}" --dry-run >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/out"
check "tune --conv --dry-run: exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
check "tune --conv: table header" grep -qE '^CONV_GEMM +ms/step +vs default +what' "$tmp/out"
check "tune --conv: four rows, the default marked once" \
  test "$(grep -cE '^[0157] +[0-9.]+ +[+-][0-9.]+% ' "$tmp/out")" -eq 4 -a \
  "$(grep -c '(default)$' "$tmp/out")" -eq 1
check "tune --conv --dry-run: says so" grep -q -- '--dry-run: nothing stored' "$tmp/out"
check "tune --conv --dry-run: no file" test -z "$(ls "$tmp/cache"/conv-*.txt 2>/dev/null)"
# two convolution shapes: each one's own choice, the other fixed; one row per shape with
# one choice marked
"$cltrain" tune --conv --model "conv(32,3,pad=1) relu conv(32,3,pad=1) relu maxpool(2) flatten
  linear(10)" --input 1,8,8 --batch 4 --runs 2 --dry-run >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/out"
check "tune --conv, two shapes: exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
check "tune --conv, two shapes: the per-shape table" grep -q '^per convolution shape' "$tmp/out"
check "tune --conv, two shapes: a row per shape, one choice each" test "$(grep -cE \
  '^  [02] +conv [0-9]+->32 3x3 +(1|32)x8x8 k32 r3x3 s1x1 p1x1 d1x1 g1 ( +[0-9.]+[* ]){4}' \
  "$tmp/out")" -eq 2 -a "$(grep -E '^  [02] +conv' "$tmp/out" | grep -o '[*]' | wc -l)" -eq 2
check "tune --conv, two shapes: the choice" grep -qE '^chosen: CONV_GEMM=[0-7]' "$tmp/out"
CLTRAIN_TUNE=-DCONV_GEMM=1 "$cltrain" tune --conv "${conv_tiny[@]}" --dry-run >/dev/null \
  2>"$tmp/err"
rc=$?
check "tune --conv under CLTRAIN_TUNE's CONV_GEMM: exit status 2" test $rc -eq 2
check "tune --conv under CLTRAIN_TUNE's CONV_GEMM: says why" grep -q 'CLTRAIN_TUNE sets CONV_GEMM' \
  "$tmp/err"
"$cltrain" tune --conv "${conv_tiny[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "tune --conv: exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
cpath=$(ls "$tmp/cache"/conv-*.txt 2>/dev/null)
if grep -q '^stored ' "$tmp/out"; then
  check "tune --conv: the stored file holds the choice" grep -qE '^CONV_GEMM=[0-7]$' "$cpath"
else
  check "tune --conv: nothing stored, no file" test -z "$cpath"
fi
# a choice set by hand is stored, reported and used; a damaged file is ignored with why
"$cltrain" tune --conv-set 5 >"$tmp/out" 2>&1
rc=$?
cpath=$(sed -n 's/^stored \(.*\): CONV_GEMM=5 .*/\1/p' "$tmp/out")
check "tune --conv-set 5: exit status 0, file named ($(head -c 160 "$tmp/out"))" \
  test $rc -eq 0 -a -n "$cpath"
check "tune --conv-set 5: the file" grep -qx 'CONV_GEMM=5' "$cpath"
"$cltrain" devices --verbose >"$tmp/out" 2>&1
check "devices --verbose: the stored conv path" \
  grep -qF "conv path     stored: $cpath (CONV_GEMM=5)" "$tmp/out"
"$cltrain" "${train[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "train with a stored conv path: exit status 0 ($(tail -n 2 "$tmp/err"))" test $rc -eq 0
check "train --verbose: the stored conv path" grep -qF "conv path: stored: $cpath" "$tmp/err"
# a layer shape of its own
echo "layer 1x8x8 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=7" >>"$cpath"
"$cltrain" devices --verbose >"$tmp/out" 2>&1
check "devices --verbose: a layer shape of its own" \
  grep -qF "conv path     stored: $cpath (CONV_GEMM=5, 1 layer shape of its own)" "$tmp/out"
check "devices --verbose: the layer line" \
  grep -qxF "        layer 1x8x8 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=7" "$tmp/out"
"$cltrain" train --data "$tmp/syn" --model "conv(32,3,pad=1) relu maxpool(2) flatten linear(10)" \
  --batch-size 4 --max-steps 2 --verbose >"$tmp/out" 2>"$tmp/err"
rc=$?
check "train a conv under a layer shape of its own: exit status 0 ($(tail -n 2 "$tmp/err"))" \
  test $rc -eq 0
check "train --verbose: the layer shape of its own" \
  grep -qF "conv path: stored: $cpath (CONV_GEMM=5, 1 layer shape of its own)" "$tmp/err"
echo "CONV_GEMM=6" >>"$cpath"
"$cltrain" devices --verbose >"$tmp/out" 2>&1
check "devices --verbose: a damaged conv file ignored, with why" \
  grep -qF "conv path     default (CONV_GEMM=$conv_default; ignored $cpath: line " "$tmp/out"
"$cltrain" tune --conv --reset >"$tmp/out" 2>&1
check "tune --conv --reset: removed" grep -qF "removed $cpath" "$tmp/out"
check "tune --conv --reset: the file is gone" test ! -e "$cpath"
"$cltrain" tune --conv --reset >"$tmp/out" 2>&1
check "tune --conv --reset again: nothing to remove" grep -q 'no stored convolution path' \
  "$tmp/out"
exit $fail
