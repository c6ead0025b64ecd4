#!/usr/bin/env bash
# `make bench`: pocketlm vs wllama in one browser (headless Chromium, or --browser firefox / webkit), the native CLI,
# and the memory-bandwidth bound.
# Arguments go to bench/run.mjs: [--browser B] [--runs N] [--tokens N] [--engines pocketlm,wllama] [--models A.gguf,...]
#   [--native-runs N] [--no-native] [--ctx N]. Expects `make pkg cli` and the npm dev packages (make setup).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f pkg/dist/index.js ] || { echo "bench: pkg/dist is missing: run make pkg" >&2; exit 1; }
# The bandwidth probe: one dependency-free Rust file, rebuilt when it changes.
mkdir -p target/bench
if [ ! -x target/bench/bandwidth ] || [ bench/bandwidth.rs -nt target/bench/bandwidth ]; then
  rustc -C opt-level=3 -o target/bench/bandwidth bench/bandwidth.rs
fi
node bench/run.mjs "$@"
# Structured output: constrained vs free decode, trie build, mask time (its own page; default models).
node bench/structured.mjs
# Follow-up chat turns: 3rd-turn time to first token, KV prefix reuse vs full prefill (bench/turns.mjs).
node bench/turns.mjs
# Restored sessions: next-turn time to first token, restoreSession vs re-prefill of the history (bench/sessions.mjs).
node bench/sessions.mjs
