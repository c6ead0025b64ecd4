#!/usr/bin/env node
// Restored sessions (part of `make bench`): time to first token of the next turn of a saved conversation, restored
// from its bytes (lm.restoreSession: the KV rows come back, only the new turn is prefilled) vs the same conversation
// re-prefilled in a new session. Headless Chromium through the package; medians over --runs.
//
//   node bench/sessions.mjs [--runs N] [--threads N|auto] [--model A.gguf]
//
// The restored figure includes restoreSession itself (the bytes copied to the worker, checked and unpacked).

import path from 'node:path';
import fs from 'node:fs';
import { launchBrowser, openPage, TestServer, MODELS_DIR } from '../tests/e2e/harness.mjs';

const HISTORY = ['What is the capital of France?', 'What is it famous for?', 'Name three museums there.',
  'Which one is the oldest?'];
const NEXT = 'And which one is the largest?';
const SYSTEM = 'You are a helpful assistant who answers in detail.';

function options(argv) {
  const o = { runs: 5, threads: 'auto', model: 'SmolLM2-135M-Instruct.Q4_1.gguf' };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--runs') o.runs = Number(v);
    else if (k === '--threads') o.threads = v === 'auto' ? 'auto' : Number(v);
    else if (k === '--model') o.model = v;
    else throw new Error(`unknown option ${k} (usage: bench/sessions.mjs [--runs N] [--threads N|auto] [--model A.gguf])`);
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs must be a positive integer');
  return o;
}

const middle = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main() {
  const o = options(process.argv.slice(2));
  if (!fs.existsSync(path.join(MODELS_DIR, o.model))) throw new Error(`${o.model} is missing in ${MODELS_DIR}: run make models`);
  const server = await new TestServer({ isolation: true }).start();
  const browser = await launchBrowser();
  try {
    const page = await openPage(browser, server.origin);
    const setup = await page.evaluate(async ([u, threads, sys, history]) => {
      const lm = await window.pocketlm.PocketLM.load(u, { threads });
      window.lm = lm;
      await lm.complete('Once upon a time', { temperature: 0, maxTokens: 32 }); // warm-up (wasm tier-up)
      const s = lm.session({ system: sys });
      for (const q of history) await s.chat(q, { temperature: 0, maxTokens: 48 });
      window.saved = await s.save();
      window.conversation = s.messages;
      await s.destroy();
      return { threads: lm.info.threads, backend: lm.info.backend, bytes: window.saved.length };
    }, [`${server.origin}/models/${o.model}`, o.threads, SYSTEM, HISTORY]);
    const rows = [];
    for (let run = 0; run < o.runs; run++) {
      const r = await page.evaluate(async (next) => {
        const opts = { temperature: 0, maxTokens: 1 };
        const lm = window.lm;
        let t0 = performance.now();
        const restored = await lm.restoreSession(window.saved);
        const text = await restored.chat(next, opts);
        const restoredMs = performance.now() - t0;
        const restoredStats = restored.lastStats;
        await restored.destroy();
        t0 = performance.now();
        const fresh = lm.session();
        const freshText = await fresh.chat([...window.conversation, { role: 'user', content: next }], opts);
        const freshMs = performance.now() - t0;
        const freshStats = fresh.lastStats;
        await fresh.destroy();
        return { restoredMs, freshMs, restoredStats, freshStats, same: text === freshText };
      }, NEXT);
      rows.push(r);
      console.log(`sessions run ${run + 1}: TTFT restored ${r.restoredMs.toFixed(1)} ms (prefilled `
        + `${r.restoredStats.prefilledTokens} of ${r.restoredStats.promptTokens}), re-prefill ${r.freshMs.toFixed(1)} ms `
        + `(prefilled ${r.freshStats.prefilledTokens}); same first token: ${r.same}`);
    }
    const restored = middle(rows.map((r) => r.restoredMs));
    const fresh = middle(rows.map((r) => r.freshMs));
    const s = rows[0];
    console.log('');
    console.log(`Restored sessions (${o.model}, ${setup.backend}, ${setup.threads} thread${setup.threads > 1 ? 's' : ''}, `
      + `session ${(setup.bytes / 1048576).toFixed(1)} MiB, median of ${o.runs}): time to first token of the next turn`);
    console.log('| next turn | prompt tokens | prefilled | TTFT (ms) |');
    console.log('|---|---|---|---|');
    console.log(`| restored session | ${s.restoredStats.promptTokens} | ${s.restoredStats.prefilledTokens} | ${restored.toFixed(1)} |`);
    console.log(`| re-prefill | ${s.freshStats.promptTokens} | ${s.freshStats.prefilledTokens} | ${fresh.toFixed(1)} |`);
    console.log(`speed-up ${(fresh / restored).toFixed(2)}x; same first token in every run: ${rows.every((r) => r.same)}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().catch((e) => {
  console.error(`bench/sessions: ${e.stack ?? e}`);
  process.exit(1);
});
