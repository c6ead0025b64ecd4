#!/usr/bin/env bash
# Checks that the release .wasm builds contain the SIMD instructions of our kernels (and that the plain SIMD128
# build contains no relaxed-SIMD instruction, which would make it fail to validate in browsers without relaxed SIMD).
#
# Usage: scripts/check_wasm_simd.sh [SIMD128_WASM [RELAXED_WASM [THREADS_WASM]]]
#   THREADS_WASM (optional, `make wasm`'s threads build) must have the relaxed-SIMD kernels and atomic waits.
#   Without arguments both builds are made first, as `make wasm` makes them:
#     cargo build --release --lib --target wasm32-unknown-unknown                      (+simd128, .cargo/config.toml)
#     RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" ... --target-dir target/relaxed
#   Works as well on wasm-bindgen / wasm-opt output. Prints instruction counts; exits non-zero when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wasm-objdump >/dev/null || { echo "wasm-objdump not found (apt-get install wabt)" >&2; exit 2; }

SIMD128=${1:-}
RELAXED=${2:-}
THREADS=${3:-}
if [ -z "$SIMD128" ]; then
  cargo build --release --lib --target wasm32-unknown-unknown
  SIMD128=target/wasm32-unknown-unknown/release/pocketlm.wasm
fi
if [ -z "$RELAXED" ]; then
  RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
    cargo build --release --lib --target wasm32-unknown-unknown --target-dir target/relaxed
  RELAXED=target/relaxed/wasm32-unknown-unknown/release/pocketlm.wasm
fi

# Instructions worth counting: what the kernels are built from.
SHOWN=(v128.load i8x16.shuffle i16x8.extend_low_i8x16_s i32x4.dot_i16x8_s i32x4.dot_i8x16_i7x16_add_s
  f32x4.relaxed_madd f32x4.mul f32x4.add f32x4.convert_i32x4_s f64x2.promote_low_f32x4)

fail=0
# check FILE LABEL REQUIRED... -- FORBIDDEN...
check() {
  local file=$1 label=$2
  shift 2
  [ -f "$file" ] || { echo "$label: $file not found" >&2; fail=1; return; }
  local dis
  dis=$(mktemp)
  wasm-objdump -d "$file" >"$dis"
  echo "$label: $file ($(stat -c %s "$file") bytes)"
  for ins in "${SHOWN[@]}"; do
    printf '  %-32s %6d\n' "$ins" "$(grep -cw -- "$ins" "$dis" || true)"
  done
  local mode=need
  for ins in "$@"; do
    if [ "$ins" = "--" ]; then mode=forbid; continue; fi
    local n
    n=$(grep -cw -- "$ins" "$dis" || true)
    if [ "$mode" = need ] && [ "$n" -eq 0 ]; then
      echo "  MISSING: $ins" >&2; fail=1
    elif [ "$mode" = forbid ] && [ "$n" -ne 0 ]; then
      echo "  FORBIDDEN in this build: $ins ($n)" >&2; fail=1
    fi
  done
  rm -f "$dis"
}

check "$SIMD128" simd128 i32x4.dot_i16x8_s f32x4.mul v128.load \
  -- i32x4.dot_i8x16_i7x16_add_s f32x4.relaxed_madd i16x8.relaxed_dot_i8x16_i7x16_s
# f32x4.relaxed_madd is forbidden in every build: it may or may not fuse depending on the CPU (see madd_f32 in
# simd/src/simd128/common.rs), which would break bit-exactness with the native CLI.
check "$RELAXED" relaxed i32x4.dot_i8x16_i7x16_add_s i32x4.dot_i16x8_s -- f32x4.relaxed_madd
if [ -n "$THREADS" ]; then
  check "$THREADS" threads i32x4.dot_i8x16_i7x16_add_s memory.atomic.wait32 memory.atomic.notify -- f32x4.relaxed_madd
fi

if [ "$fail" -ne 0 ]; then
  echo "check_wasm_simd: FAILED" >&2
  exit 1
fi
echo "check_wasm_simd: ok"
