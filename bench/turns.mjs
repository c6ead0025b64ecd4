#!/usr/bin/env node
// Follow-up chat turns (part of `make bench`, after bench/run.mjs): time to first token of the 3rd turn of a chat,
// with the KV cache holding the conversation so far (prefix reuse: only the new turn is prefilled) vs a fresh
// context (the whole conversation prefilled), in headless Chromium through the package. Medians over --runs.
//
//   node bench/turns.mjs [--runs N] [--threads N|auto] [--model A.gguf]
//
// Each run: one instance plays a 3-turn greedy chat (streamed; the 3rd turn's first piece is timed); a second
// instance, whose cache holds nothing of the chat, gets the 3rd turn's conversation at once. Both must produce the
// same 3rd answer (printed as a check). Both instances are warmed up first (wasm tiers up per worker).

import path from 'node:path';
import fs from 'node:fs';
import { launchBrowser, openPage, TestServer, MODELS_DIR } from '../tests/e2e/harness.mjs';

const TURNS = ['What is the capital of France?', 'What is it famous for?', 'Name one museum there and say why it is worth a visit.'];
const SYSTEM = 'You are a helpful assistant.';

function parseArgs(argv) {
  const o = { runs: 5, threads: 'auto', model: 'SmolLM2-135M-Instruct.Q4_1.gguf' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--threads') o.threads = argv[++i] === 'auto' ? 'auto' : Number(argv[i]);
    else if (a === '--model') o.model = argv[++i];
    else throw new Error(`unknown option ${a} (usage: bench/turns.mjs [--runs N] [--threads N|auto] [--model A.gguf])`);
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs must be a positive integer');
  return o;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(MODELS_DIR, o.model))) throw new Error(`${o.model} is missing in ${MODELS_DIR}: run make models`);
  const server = await new TestServer({ isolation: true }).start();
  const browser = await launchBrowser();
  try {
    const page = await openPage(browser, server.origin);
    const url = `${server.origin}/models/${o.model}`;
    const setup = await page.evaluate(async ([u, threads]) => {
      const { PocketLM } = window.pocketlm;
      window.reuse = await PocketLM.load(u, { threads });
      window.fresh = await PocketLM.load(u, { threads });
      // Warm-up (wasm tier-up happens per worker).
      for (const lm of [window.reuse, window.fresh]) await lm.complete('Once upon a time', { temperature: 0, maxTokens: 32 });
      return { threads: window.reuse.info.threads, backend: window.reuse.info.backend };
    }, [url, o.threads]);
    const rows = [];
    for (let run = 0; run < o.runs; run++) {
      const r = await page.evaluate(async ([turns, system]) => {
        const opts = { temperature: 0, maxTokens: 48 };
        const lm = window.reuse;
        // A different conversation first, so each run's 1st turn starts from a cache that holds something else.
        await lm.chat([{ role: 'user', content: 'Say hello.' }], { temperature: 0, maxTokens: 4 });
        const messages = [{ role: 'system', content: system }];
        let ttft = 0;
        for (let t = 0; t < turns.length; t++) {
          messages.push({ role: 'user', content: turns[t] });
          const t0 = performance.now();
          let first = 0;
          let text = '';
          for await (const piece of lm.chatStream(messages, opts)) {
            if (!first) first = performance.now();
            text += piece;
          }
          if (t === turns.length - 1) ttft = first - t0;
          messages.push({ role: 'assistant', content: text });
        }
        const reuseStats = lm.lastStats;
        const answer = messages.at(-1).content;
        // The other instance: its cache holds a raw-text prompt that shares no first token with the chat, so the
        // whole 3rd-turn conversation is prefilled (its prefilledTokens says so).
        const cold = window.fresh;
        await cold.complete('Once upon a time', { temperature: 0, maxTokens: 1 });
        const t0 = performance.now();
        let first = 0;
        let freshText = '';
        for await (const piece of cold.chatStream(messages.slice(0, -1), opts)) {
          if (!first) first = performance.now();
          freshText += piece;
        }
        const freshStats = cold.lastStats;
        return { ttft, freshTtft: first - t0, reuseStats, freshStats, same: freshText === answer };
      }, [TURNS, SYSTEM]);
      rows.push(r);
      console.log(`turns run ${run + 1}: 3rd-turn TTFT reuse ${r.ttft.toFixed(1)} ms (prefilled ${r.reuseStats.prefilledTokens} of `
        + `${r.reuseStats.promptTokens} prompt tokens), fresh ${r.freshTtft.toFixed(1)} ms (prefilled ${r.freshStats.prefilledTokens}); `
        + `same answer: ${r.same}`);
    }
    const reuse = median(rows.map((r) => r.ttft));
    const fresh = median(rows.map((r) => r.freshTtft));
    const s = rows[0];
    console.log('');
    console.log(`Follow-up turns (${o.model}, ${setup.backend}, ${setup.threads} thread${setup.threads > 1 ? 's' : ''}, `
      + `median of ${o.runs}): time to first token of the 3rd turn`);
    console.log('| 3rd turn | prompt tokens | prefilled | TTFT (ms) |');
    console.log('|---|---|---|---|');
    console.log(`| prefix reuse | ${s.reuseStats.promptTokens} | ${s.reuseStats.prefilledTokens} | ${reuse.toFixed(1)} |`);
    console.log(`| full prefill | ${s.freshStats.promptTokens} | ${s.freshStats.prefilledTokens} | ${fresh.toFixed(1)} |`);
    console.log(`speed-up ${(fresh / reuse).toFixed(2)}x; same 3rd answer in every run: ${rows.every((r) => r.same)}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().catch((e) => {
  console.error(`bench/turns: ${e.stack ?? e}`);
  process.exit(1);
});
