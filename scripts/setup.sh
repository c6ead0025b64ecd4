#!/usr/bin/env bash
# Idempotent setup of everything pocketlm needs on a fresh Debian machine.
# Each step checks first and only installs what is missing; a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
NIGHTLY=nightly-2026-05-20
VENV=${POCKETLM_VENV:-$PWD/.venv}

say() { echo "setup: $*"; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# 1. Rust wasm target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "installing rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 2. Debian packages: the three browser engines the e2e tests and the bench run in (Chromium + chromedriver,
# Firefox ESR driven over WebDriver BiDi, WebKitGTK's WebKitWebDriver with xvfb for its display), wabt for wasm-objdump.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v firefox-esr >/dev/null || missing+=(firefox-esr)
command -v WebKitWebDriver >/dev/null || missing+=(webkit2gtk-driver)
command -v xvfb-run >/dev/null || missing+=(xvfb xauth)
command -v wasm-objdump >/dev/null || missing+=(wabt)
command -v unzip >/dev/null || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 3. wasm-bindgen CLI matching the pinned crate (unlocked: --locked fails on this index).
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (takes ~6 min cold)"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# 4. Nightly toolchain for the threaded build (RUSTUP_AUTO_INSTALL=0 here: install it explicitly).
# The threads build needs its wasm32 target and rust-src (build-std); a toolchain installed without them gets them.
if [ "${POCKETLM_SKIP_NIGHTLY:-0}" != 1 ]; then
  if ! rustup toolchain list | grep -q "^$NIGHTLY"; then
    say "installing $NIGHTLY (threads build)"
    rustup toolchain install "$NIGHTLY" --profile minimal --target wasm32-unknown-unknown --component rust-src
  fi
  if ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q '^rust-src'; then
    rustup component add --toolchain "$NIGHTLY" rust-src
  fi
  if ! rustup target list --toolchain "$NIGHTLY" --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add --toolchain "$NIGHTLY" wasm32-unknown-unknown
  fi
fi

# 5. npm dev packages (playwright-core, puppeteer-core, binaryen's wasm-opt, wllama) from the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dev packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
fi

# 6. Python venv with the independent reference tools (PyPI gguf + numpy).
# A stamp holding the requirements' checksum: a changed requirements.txt reinstalls.
req_sum=$(sha256sum scripts/requirements.txt | awk '{print $1}')
if [ "$(cat "$VENV/.pocketlm-requirements" 2>/dev/null)" != "$req_sum" ]; then
  say "setting up Python venv $VENV (scripts/requirements.txt)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r scripts/requirements.txt
  echo "$req_sum" > "$VENV/.pocketlm-requirements"
fi
say "ok"
