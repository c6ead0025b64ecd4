#!/usr/bin/env bash
# Write the reference fixtures (independent of our Rust code: PyPI gguf + numpy) into $POCKETLM_FIXTURES.
# Each scripts/fixtures/*.py takes (fixtures_dir, models_dir) and skips work whose outputs are already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=${POCKETLM_FIXTURES:-$PWD/target/fixtures}
MODELS=${POCKETLM_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm/models}
PY=${POCKETLM_VENV:-$PWD/.venv}/bin/python
mkdir -p "$FIX"
for f in scripts/fixtures/*.py; do
  [ -e "$f" ] || continue
  "$PY" "$f" "$FIX" "$MODELS"
done
