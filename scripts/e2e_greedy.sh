#!/usr/bin/env bash
# The native CLI's greedy outputs for the browser end-to-end test to compare with (same prompts, same engine code):
#   e2e_greedy_smollm2.json  chat answer (32 tokens) to a short question with a short system prompt
#   e2e_greedy_prose.json    raw continuation (128 tokens) of bench/prompt.txt, the benchmark's 128-token prompt
#   e2e_greedy_prose_<kv>.json the same with the KV cache in q8_0 and f32 (the default is f16)
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=${POCKETLM_FIXTURES:-$PWD/target/fixtures}
MODELS=${POCKETLM_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm/models}
bin=target/release/pocketlm
model="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$FIX"

# fixture OUT MAX_TOKENS CHAT PROMPT [SYSTEM] [KV_TYPE]: rewritten when the CLI binary or this script is newer.
fixture() {
  local out=$1 max=$2 chat=$3 prompt=$4 system=${5:-} kv=${6:-}
  [ -f "$out" ] && [ "$out" -nt "$bin" ] && [ "$out" -nt "$0" ] && return 0
  local args=(generate --model "$model" --prompt "$prompt" --temperature 0 --max-tokens "$max" --json)
  [ "$chat" = true ] && args+=(--chat)
  [ -n "$system" ] && args+=(--system "$system")
  [ -n "$kv" ] && args+=(--kv-type "$kv")
  "$bin" "${args[@]}" 2>/dev/null | node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const [prompt, out, system, max, chat, kv] = process.argv.slice(1);
  const r = JSON.parse(s);
  const fixture = { prompt, system: system || undefined, maxTokens: Number(max), chat: chat === "true", text: r.text,
    prompt_tokens: r.prompt_tokens, kvType: kv || undefined };
  require("fs").writeFileSync(out + ".tmp", JSON.stringify(fixture, null, 1));
  require("fs").renameSync(out + ".tmp", out);
  console.log("e2e greedy fixture", require("path").basename(out) + ":", JSON.stringify(r.text.slice(0, 80)));
});' "$prompt" "$out" "$system" "$max" "$chat" "$kv"
}

fixture "$FIX/e2e_greedy_smollm2.json" 32 true "What is the capital of France?" "You are a helpful AI assistant."
fixture "$FIX/e2e_greedy_prose.json" 128 false "$(cat bench/prompt.txt)"
for kv in q8_0 f32; do
  fixture "$FIX/e2e_greedy_prose_$kv.json" 128 false "$(cat bench/prompt.txt)" "" "$kv"
done
