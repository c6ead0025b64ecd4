#!/usr/bin/env bash
# Kernel benchmark (`make bench-kernels`): matvec at SmolLM2-135M's shapes, a 64-token matmul, the activation
# quantizers and the f32 ops, for every weight type:
#   native-scalar  the scalar reference, natively (cargo test --release)
#   wasm-scalar    the scalar reference compiled to wasm, in headless Chromium
#   simd128        the SIMD128 kernels, in headless Chromium
#   relaxed        the relaxed-SIMD kernels (+relaxed-simd build), in headless Chromium
# and prints one table: GB/s of weights streamed (matmul64: weight bytes x tokens / time) and the speedups of the
# SIMD builds over the scalar reference in the same browser. The benchmark code is simd/tests/bench_kernels.rs
# (ignored tests, run here with --include-ignored); the browser runs it in a dedicated worker, as the engine runs.
#
# Usage: scripts/bench_kernels.sh [FILTER]   FILTER selects benchmarks by name, e.g. bench_q4_1 (default: all).
# Builds go to target/bench-* (release profile), so they do not disturb the test builds.
set -euo pipefail
cd "$(dirname "$0")/.."

FILTER=${1:-bench_}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
# The whole run can take several minutes per build on a busy 2-core machine.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-1800}
RELAXED_FLAGS="-C target-feature=+simd128,+relaxed-simd"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() { # run NAME CARGO_ARGS... : keeps the BENCH lines, shows failures
  local name=$1
  shift
  echo "== $name" >&2
  if ! "$@" >"$out/$name.log" 2>&1; then
    tail -30 "$out/$name.log" >&2
    echo "bench_kernels: $name failed" >&2
    exit 1
  fi
  # (natively libtest may print "test NAME ... " in front of the first line of a test's output)
  grep -o 'BENCH .*' "$out/$name.log" >"$out/$name" || true
}

run native cargo test --release -p pocketlm-simd --test bench_kernels --target-dir target/bench-native \
  -- --ignored --nocapture --test-threads=1 "$FILTER"
run simd128 cargo test --release -p pocketlm-simd --test bench_kernels --target wasm32-unknown-unknown \
  --target-dir target/bench-simd128 -- --include-ignored --nocapture "$FILTER"
run relaxed env RUSTFLAGS="$RELAXED_FLAGS" cargo test --release -p pocketlm-simd --test bench_kernels \
  --target wasm32-unknown-unknown --target-dir target/bench-relaxed -- --include-ignored --nocapture "$FILTER"

# BENCH <kind> <variant> <type> <shape> <GB/s> <us>; the wasm-scalar column comes from the SIMD128 build's run.
cat "$out/native" "$out/simd128" <(grep -v ' wasm-scalar ' "$out/relaxed") | awk '
  {
    key = $2 " " $4 " " $5
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    gb[key, $3] = $6
  }
  function cell(k, v) { return ((k, v) in gb) ? sprintf("%8.2f", gb[k, v]) : sprintf("%8s", "-") }
  function ratio(k, v) {
    if (!((k, v) in gb) || !((k, "wasm-scalar") in gb) || gb[k, "wasm-scalar"] == 0) return sprintf("%8s", "-")
    return sprintf("%7.1fx", gb[k, v] / gb[k, "wasm-scalar"])
  }
  END {
    printf "%-9s %-6s %-12s %8s %8s %8s %8s %8s %8s\n", "kernel", "type", "shape", "native", "wasm", "simd128",
      "relaxed", "x simd", "x relax"
    printf "%-9s %-6s %-12s %8s %8s %8s %8s %8s %8s\n", "", "", "", "scalar", "scalar", "GB/s", "GB/s", "", ""
    for (i = 0; i < n; i++) {
      split(order[i], p, " ")
      printf "%-9s %-6s %-12s %s %s %s %s %s %s\n", p[1], p[2], p[3], cell(order[i], "native-scalar"),
        cell(order[i], "wasm-scalar"), cell(order[i], "simd128"), cell(order[i], "relaxed"),
        ratio(order[i], "simd128"), ratio(order[i], "relaxed")
    }
  }'
