#!/usr/bin/env bash
# The native CLI's greedy output for the browser end-to-end test to compare with (same prompt, same engine code).
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=${POCKETLM_FIXTURES:-$PWD/target/fixtures}
MODELS=${POCKETLM_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm/models}
out="$FIX/e2e_greedy_smollm2.json"
bin=target/release/pocketlm
mkdir -p "$FIX"
[ -f "$out" ] && [ "$out" -nt "$bin" ] && exit 0
prompt="What is the capital of France?"
system="You are a helpful assistant."
"$bin" generate --model "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" --prompt "$prompt" --system "$system" --chat --temperature 0 \
  --max-tokens 32 --json 2>/dev/null | node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const r = JSON.parse(s);
  const fixture = { prompt: process.argv[1], system: process.argv[3], maxTokens: 32, chat: true, text: r.text, prompt_tokens: r.prompt_tokens };
  require("fs").writeFileSync(process.argv[2], JSON.stringify(fixture, null, 1));
  console.log("e2e greedy fixture:", JSON.stringify(r.text));
});' "$prompt" "$out" "$system"
