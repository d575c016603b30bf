#!/usr/bin/env bash
# Every kernel file must compile as OpenCL C 1.2 for a generic SPIR target with fp64
# disabled, so the kernels stay portable to devices without doubles. common.cl is
# prepended exactly as the library does at run time; each file is checked with both the
# CPU and the GPU settings of the tuning table, conv.cl also with a constant kernel size
# (CONV_R, CONV_S: conv_kv_pool's unrolled taps).
set -euo pipefail
src=${1:?usage: check_cl.sh KERNEL_DIR}
clang=$(command -v clang || true)
if [ -z "$clang" ]; then
  echo "clang not found: install the Debian package clang" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
for f in "$src"/*.cl; do
  name=$(basename "$f")
  [ "$name" = common.cl ] && continue
  sets=("-DCT_CPU=1 -DCT_GPU=0 -DCT_VEC=8" "-DCT_CPU=0 -DCT_GPU=1 -DCT_VEC=4")
  # conv.cl also with the layer's kernel size as constants and with 8-pixel vectors; conv.cl
  # and gemm.cl also as a compiler that is not Clang sees them (common.cl's under-aligned
  # vector stores, CT_GSTORE*, are Clang's; vstoreN otherwise)
  [ "$name" = conv.cl ] &&
    sets+=("-DCT_CPU=1 -DCT_GPU=0 -DCT_VEC=8 -DCONV_R=3 -DCONV_S=3 -DCONV_PW=1"
      "-DCT_CPU=1 -DCT_GPU=0 -DCT_VEC=8 -DCONV_QV=8")
  case "$name" in conv.cl | gemm.cl) sets+=("-DCT_CPU=0 -DCT_GPU=1 -DCT_VEC=4 -U__clang__") ;; esac
  for defs in "${sets[@]}"; do
    { cat "$src/common.cl"; printf '\n#line 1 "%s"\n' "$name"; cat "$f"; } > "$tmp/$name"
    # shellcheck disable=SC2086
    if ! "$clang" -cl-std=CL1.2 -target spir64 -Xclang -cl-ext=-cl_khr_fp64 \
        -Xclang -finclude-default-header -fsyntax-only -Werror $defs "$tmp/$name"; then
      echo "FAIL: $name ($defs)" >&2
      fail=1
    fi
    n=$((n + 1))
  done
done
echo "checked $n kernel builds"
exit $fail
