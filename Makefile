# pocketlm: every entry point. `make demo` and `make test` work on a fresh Debian machine (they install what is missing).
SHELL := /bin/bash
.DEFAULT_GOAL := help

MODELS ?= $(or $(POCKETLM_MODELS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pocketlm/models)
export POCKETLM_MODELS := $(MODELS)
export POCKETLM_FIXTURES ?= $(CURDIR)/target/fixtures
export CHROMEDRIVER ?= /usr/bin/chromedriver
# The browser engines the e2e suites run in (tests/e2e/browsers.mjs): all three unless narrowed, e.g.
# `make test-e2e POCKETLM_BROWSERS=firefox`.
export POCKETLM_BROWSERS ?= chromium,firefox,webkit
WASM_OUT := target/wasm-out
RELAXED_FLAGS := -C target-feature=+simd128,+relaxed-simd
# The threads build (wasm-bindgen-rayon): nightly + build-std, shared memory imported from JS (on this
# nightly +atomics alone no longer gives a shared memory: the linker is asked for it and the TLS symbols exported). --max-memory 4 GiB (the wasm32 limit): room for a 253 MB Gemma file plus its KV cache.
# It is also a relaxed-SIMD build, so it requires relaxed SIMD: the package picks it only when that validates too.
NIGHTLY := nightly-2026-05-20
THREADS_FLAGS := -C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128,+relaxed-simd \
  -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
  -C link-arg=--export=__heap_base -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
  -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
WASM_OPT := node_modules/.bin/wasm-opt

.PHONY: help setup models fixtures synthetic test test-full test-host test-wasm test-e2e wasm pkg demo cli bench bench-kernels

help:
	@echo "make demo   - set up, fetch the default model, build the package and serve the demo"
	@echo "make test   - set up and run every test suite (host, wasm in Chromium, end-to-end in Chromium, Firefox, WebKit)"
	@echo "make bench  - pocketlm vs wllama in headless Chromium + native CLI + bandwidth bound (BENCH_ARGS=...)"
	@echo "make test-full - make test, then the 1B-class synthetic files in Chromium (minutes: GBs through IndexedDB)"
	@echo "make setup | models | fixtures | synthetic | wasm | pkg | cli | bench-kernels"

setup:
	@bash scripts/setup.sh

models: setup
	@bash scripts/fetch_models.sh all

fixtures: setup models
	@bash scripts/fixtures.sh

# Random-weight files with the exact shapes of Llama-3.2-1B (Q4_0, Q8_0) and Qwen2.5-0.5B (Q8_0), into the models
# directory (scripts/make_synthetic.py; skipped when up to date).
synthetic: setup models
	@$(or $(POCKETLM_VENV),$(CURDIR)/.venv)/bin/python scripts/make_synthetic.py $(MODELS)

cli:
	cargo build --release --bin pocketlm

# --- wasm builds: SIMD128, relaxed SIMD and threads (+relaxed SIMD), each bindgen'd for --target web and optimized
# with binaryen's wasm-opt.
wasm: setup
	cargo build --release --lib --target wasm32-unknown-unknown
	wasm-bindgen --target web --no-typescript --out-name pocketlm --out-dir $(WASM_OUT)/simd128 \
	  target/wasm32-unknown-unknown/release/pocketlm.wasm
	RUSTFLAGS="$(RELAXED_FLAGS)" cargo build --release --lib --target wasm32-unknown-unknown --target-dir target/relaxed
	wasm-bindgen --target web --no-typescript --out-name pocketlm --out-dir $(WASM_OUT)/relaxed \
	  target/relaxed/wasm32-unknown-unknown/release/pocketlm.wasm
	$(WASM_OPT) -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
	  --enable-mutable-globals $(WASM_OUT)/simd128/pocketlm_bg.wasm -o $(WASM_OUT)/simd128/pocketlm_bg.wasm
	$(WASM_OPT) -O3 --enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
	  --enable-sign-ext --enable-mutable-globals $(WASM_OUT)/relaxed/pocketlm_bg.wasm -o $(WASM_OUT)/relaxed/pocketlm_bg.wasm
	RUSTFLAGS="$(THREADS_FLAGS)" cargo +$(NIGHTLY) build --release --lib --target wasm32-unknown-unknown \
	  --target-dir target/threads --features threads -Z build-std=panic_abort,std
	wasm-bindgen --target web --no-typescript --out-name pocketlm --out-dir $(WASM_OUT)/threads \
	  target/threads/wasm32-unknown-unknown/release/pocketlm.wasm
	$(WASM_OPT) -O3 --enable-threads --enable-simd --enable-relaxed-simd --enable-bulk-memory \
	  --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
	  $(WASM_OUT)/threads/pocketlm_bg.wasm -o $(WASM_OUT)/threads/pocketlm_bg.wasm

pkg: wasm
	cd pkg && POCKETLM_WASM_OUT=$(CURDIR)/$(WASM_OUT) npm run build

# --- tests
test: setup models fixtures
	$(MAKE) --no-print-directory test-host
	$(MAKE) --no-print-directory test-wasm
	$(MAKE) --no-print-directory test-e2e

# Everything in `make test` plus the 1B-class files loaded and run in Chromium (tests/e2e/big_models.test.mjs).
test-full: test synthetic
	POCKETLM_E2E_ENGINE=1 POCKETLM_E2E_BIG=1 node --test --test-concurrency=1 tests/e2e/big_models.test.mjs

test-host:
	cargo test --workspace

# The same kernel and engine tests in headless Chromium, SIMD128 build then relaxed-SIMD build.
test-wasm:
	cargo test --target wasm32-unknown-unknown -p pocketlm-simd
	RUSTFLAGS="$(RELAXED_FLAGS)" cargo test --target wasm32-unknown-unknown -p pocketlm-simd --target-dir target/relaxed

test-e2e: pkg cli
	bash scripts/check_wasm_simd.sh $(WASM_OUT)/simd128/pocketlm_bg.wasm $(WASM_OUT)/relaxed/pocketlm_bg.wasm \
	  $(WASM_OUT)/threads/pocketlm_bg.wasm
	bash scripts/e2e_greedy.sh
	POCKETLM_E2E_ENGINE=1 node --test --test-concurrency=1 tests/e2e/

demo: setup models pkg
	node tests/e2e/server.mjs --serve

# Side by side with wllama in headless Chromium, plus the native CLI and the memory-bandwidth bound.
bench: setup models pkg cli
	bash scripts/bench.sh $(BENCH_ARGS)

# Kernel throughput: scalar vs SIMD128 vs relaxed SIMD in headless Chromium, and natively.
bench-kernels: setup
	bash scripts/bench_kernels.sh
