#!/usr/bin/env bash
# Installs the library into a temporary root, then builds tools/examples/gemm_example.c
# against it with nothing but pkg-config, and runs it.
set -euo pipefail
build=$1
src=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --quiet --no-rebuild
pc=$(find "$dest" -name cltrain.pc | head -n 1)
[ -n "$pc" ] || { echo "cltrain.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$dest
cc -std=c11 -Wall -Werror -o "$dest/gemm_example" "$src/tools/examples/gemm_example.c" \
  $(pkg-config --cflags --libs cltrain)
libdir=$(dirname "$(find "$dest" -name 'libcltrain.so' | head -n 1)")
LD_LIBRARY_PATH=$libdir "$dest/gemm_example"
