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

# The README's training loop, built the same way; 120 steps on Fashion-MNIST when the
# Debian package is installed (its loss must fall).
cc -std=c11 -Wall -Werror -o "$dest/train_loop" "$src/tools/examples/train_loop.c" \
  $(pkg-config --cflags --libs cltrain)
if [ -d /usr/share/datasets/fashion-mnist ]; then
  LD_LIBRARY_PATH=$libdir "$dest/train_loop" 120
else
  echo "skipping train_loop run: /usr/share/datasets/fashion-mnist is not installed"
fi
