#!/usr/bin/env node
// `make bench` (after bench/run.mjs): what constrained decoding costs, in headless Chromium through the package, one
// thread, SmolLM2 (49k vocabulary) and Gemma 3 270M (262k) when present.
//
//   node bench/structured.mjs [--runs N] [--models A.gguf,B.gguf]
//
// Per model: the vocabulary's trie + grammar tables (built on the first constrained call), then the same chat prompt
// generated unconstrained and under a JSON Schema (an array of records: strings, numbers, enums), 128 tokens each
// (medians over runs): decode tok/s of each and their ratio, the mask time per sampled token (mean, p99), the forced
// tokens; and the 44 schemas of tests/e2e/schemas.mjs in a row (mask mean / p99 over all their tokens).

import { launchBrowser, openPage, TestServer, MODELS_DIR } from '../tests/e2e/harness.mjs';
import { SCHEMA_CASES } from '../tests/e2e/schemas.mjs';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const RUNS = Number(opt('--runs', 3));
const MODELS = opt('--models', 'SmolLM2-135M-Instruct.Q4_1.gguf,gemma-3-270m-q4_k_m.gguf').split(',')
  .filter((m) => fs.existsSync(path.join(MODELS_DIR, m)));

const PROMPT = 'List the planets of the solar system with their order from the Sun, their type and a short note.';
const SCHEMA = {
  type: 'array', minItems: 8, maxItems: 8,
  items: { type: 'object', properties: {
    name: { type: 'string', maxLength: 12 }, order: { type: 'integer', minimum: 1, maximum: 8 },
    type: { enum: ['rocky', 'gas giant', 'ice giant'] }, note: { type: 'string', maxLength: 60 } },
  required: ['name', 'order', 'type', 'note'], additionalProperties: false },
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await new TestServer({ mounts: { '/models/': MODELS_DIR } }).start();
const browser = await launchBrowser();
try {
  const page = await openPage(browser, server.origin);
  console.log(`\nstructured output (1 thread, ${RUNS} runs, 128 tokens, medians)`);
  console.log('| model | trie + tables (ms) | unconstrained decode (tok/s) | JSON Schema decode (tok/s) | ratio | '
    + 'sampled tokens only (tok/s) | ratio | mask mean / p99 (ms) | forced tokens | 44 schemas: mask mean / p99 (ms) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const model of MODELS) {
    const r = await page.evaluate(async ([url, prompt, schema, cases, runs]) => {
      const lm = await window.pocketlm.PocketLM.load(url, { threads: 1, contextSize: 1024 });
      const msgs = [{ role: 'user', content: prompt }];
      const base = { temperature: 0.7, seed: 1, maxTokens: 128 };
      // Warm-up (wasm tier-up) and the one-time trie build, timed on its own.
      await lm.chat(msgs, { ...base, maxTokens: 16 });
      await lm.chat(msgs, { ...base, maxTokens: 4, responseFormat: { type: 'json_object' } });
      const vocabMs = lm.lastStats.constraint.vocabMs;
      const free = [];
      const bound = [];
      for (let i = 0; i < runs; i++) {
        await lm.chat(msgs, { ...base, seed: i, stop: [] });
        free.push(lm.lastStats);
        await lm.chat(msgs, { ...base, seed: i, responseFormat: { type: 'json_schema', schema } });
        bound.push(lm.lastStats);
      }
      const all = [];
      for (const c of cases) {
        await lm.chat([{ role: 'user', content: `${c.prompt} Answer in JSON.` }],
          { temperature: 0, maxTokens: 200, responseFormat: { type: 'json_schema', schema: c.schema } });
        all.push(lm.lastStats.constraint);
      }
      await lm.unload();
      return { vocabMs, free, bound, all };
    }, [`${server.origin}/models/${model}`, PROMPT, SCHEMA, SCHEMA_CASES, RUNS]);
    const freeTps = median(r.free.map((s) => s.decodeTokensPerSecond));
    // The same decode time over the sampled tokens only: a pessimistic figure for a format that forces nothing, since
    // each sampled step here also fed the forced tokens that followed it.
    const sampledTps = median(r.bound.map((s) => s.constraint.masks * s.decodeTokensPerSecond / s.generatedTokens));
    const boundTps = median(r.bound.map((s) => s.decodeTokensPerSecond));
    const maskMean = median(r.bound.map((s) => s.constraint.maskMeanMs));
    const maskP99 = median(r.bound.map((s) => s.constraint.maskP99Ms));
    const forced = median(r.bound.map((s) => s.constraint.forcedTokens));
    const tokens = median(r.bound.map((s) => s.generatedTokens));
    const masks = r.all.reduce((n, c) => n + c.masks, 0);
    const allMean = r.all.reduce((n, c) => n + c.maskMeanMs * c.masks, 0) / Math.max(masks, 1);
    const allP99 = Math.max(...r.all.map((c) => c.maskP99Ms));
    console.log(`| ${model} | ${r.vocabMs.toFixed(0)} | ${freeTps.toFixed(1)} | ${boundTps.toFixed(1)} | `
      + `${(boundTps / freeTps).toFixed(2)} | ${sampledTps.toFixed(1)} | ${(sampledTps / freeTps).toFixed(2)} | ${maskMean.toFixed(3)} / ${maskP99.toFixed(3)} | ${forced} of ${tokens} | `
      + `${allMean.toFixed(3)} / ${allP99.toFixed(3)} (worst schema's p99), ${masks} masks |`);
  }
} finally {
  await browser.close();
  await server.stop();
}
