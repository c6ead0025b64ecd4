// Structured output in Chromium through the package: JSON Schema (44 schemas, tests/e2e/schemas.mjs), regexes, a
// Lark grammar and tool calls, on SmolLM2 (49k BPE vocabulary) and Gemma 3 270M (262k SentencePiece vocabulary),
// greedy and sampled. Every output is checked by an independent validator: npm `ajv` (JSON Schema draft 2020-12,
// with `ajv-formats` for date/email/uuid/...), JS RegExps, and a small arithmetic evaluator here.
//
// Needs pkg/dist/wasm (make pkg) and the models (make models). Without them the suite is skipped with the reason
// printed; with POCKETLM_E2E_ENGINE=1 (make test-e2e) it fails instead.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { launchBrowser, openPage, TestServer, MODELS_DIR, DIST } from './harness.mjs';
import { SCHEMA_CASES } from './schemas.mjs';

const REQUIRED = process.env.POCKETLM_E2E_ENGINE === '1';
// Gemma 3 270M here is the base model, not an instruction-tuned one: left alone it keeps writing a number's digits
// (`30.5000000...`, any count is valid JSON) until maxTokens. Its runs use a mild repetition penalty over the last
// 16 tokens, as one would run a base model; SmolLM2-Instruct runs with the defaults.
const MODELS = [
  { key: 'smollm2', file: 'SmolLM2-135M-Instruct.Q4_1.gguf', sampling: {} },
  { key: 'gemma', file: 'gemma-3-270m-q4_k_m.gguf', sampling: { repeatPenalty: 1.2, repeatLastN: 16 } },
];
// At least this many of the 44 schemas must complete within maxTokens; every output that completes must validate.
const MIN_COMPLETE = 40;

function missing() {
  if (!fs.existsSync(path.join(DIST, 'wasm', 'simd128', 'pocketlm_bg.wasm'))) {
    return `${DIST}/wasm/simd128 is missing: build the package with the engine (make pkg)`;
  }
  for (const m of MODELS) if (!fs.existsSync(path.join(MODELS_DIR, m.file))) return `${m.file} is missing: run make models`;
  return null;
}

function validator() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats.default ? addFormats.default(ajv) : addFormats(ajv);
  return ajv;
}

/** Value of an arithmetic expression (NUMBER, + - *, parentheses), or null if `s` is not one. */
function evalArithmetic(s) {
  let i = 0;
  const atom = () => {
    if (s[i] === '(') {
      i++;
      const v = sum();
      if (v === null || s[i] !== ')') return null;
      i++;
      return v;
    }
    const m = /^[0-9]+/.exec(s.slice(i));
    if (!m) return null;
    i += m[0].length;
    return Number(m[0]);
  };
  const term = () => {
    let v = atom();
    while (v !== null && s[i] === '*') { i++; const a = atom(); v = a === null ? null : v * a; }
    return v;
  };
  const sum = () => {
    let v = term();
    while (v !== null && (s[i] === '+' || s[i] === '-')) {
      const op = s[i++];
      const t = term();
      v = t === null ? null : op === '+' ? v + t : v - t;
    }
    return v;
  };
  const v = sum();
  return v !== null && i === s.length ? v : null;
}

const ARITHMETIC = `
start: sum
sum: term (("+" | "-") term)~0..3
term: atom ("*" atom)~0..2
atom: NUMBER | "(" sum ")"
NUMBER: /[0-9]{1,4}/
`;

const REGEXES = [
  { name: 'ISO date', prompt: 'When did the Berlin wall fall?', pattern: /^\d{4}-\d{2}-\d{2}$/ },
  { name: 'email', prompt: 'Make up an email address for Alice.', pattern: /^[a-z0-9._]{1,20}@[a-z0-9]{1,15}\.(com|org|net)$/ },
  { name: 'phone number', prompt: 'Make up a phone number.', pattern: /^\+1 \d{3}-\d{3}-\d{4}$/ },
];

const WEATHER_TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 30 },
      unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false } } },
  { type: 'function', function: { name: 'get_time', description: 'Current local time in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 30 } }, required: ['city'],
      additionalProperties: false } } },
];

const reason = missing();
if (reason && REQUIRED) {
  it('structured output end-to-end prerequisites (POCKETLM_E2E_ENGINE=1)', () => assert.fail(reason));
} else if (reason) {
  console.log(`structured output e2e tests skipped: ${reason} (set POCKETLM_E2E_ENGINE=1 to make this a failure)`);
  it('structured output end to end', { skip: reason }, () => {});
} else {
  describe('structured output in Chromium', () => {
    const ajv = validator();
    let browser;
    let server;
    let page;

    before(async () => {
      // Cross-origin isolated, so the threads build runs (the suite's 200+ generations take half the time).
      server = await new TestServer({ mounts: { '/models/': MODELS_DIR }, isolation: true }).start();
      browser = await launchBrowser();
      page = await openPage(browser, server.origin);
      for (const m of MODELS) {
        const r = await page.evaluate(([u, k]) => window.load(u, { contextSize: 1024 }, k),
          [`${server.origin}/models/${m.file}`, m.key]);
        assert.ok(r.ok, `load ${m.file}: ${JSON.stringify(r.error)}`);
      }
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    for (const m of MODELS) {
      for (const [mode, sampling] of [['greedy', { temperature: 0 }], ['sampled', { temperature: 0.8, seed: 42 }]]) {
        it(`${m.key}: ${SCHEMA_CASES.length} JSON Schemas, ${mode}: every output parses and validates (ajv)`, async () => {
          const results = await page.evaluate(async ([key, cases, opts]) => {
            const lm = window.models[key];
            const out = [];
            for (const c of cases) {
              try {
                const text = await lm.chat([{ role: 'user', content: `${c.prompt} Answer in JSON.` }],
                  { ...opts, maxTokens: 200, responseFormat: { type: 'json_schema', schema: c.schema } });
                out.push({ name: c.name, text, stats: lm.lastStats });
              } catch (e) {
                out.push({ name: c.name, error: window.plainError(e) });
              }
            }
            return out;
          }, [m.key, SCHEMA_CASES, { ...sampling, ...m.sampling }]);
          const failures = [];
          const incomplete = [];
          let masks = 0;
          let maskMs = 0;
          let forced = 0;
          let tokens = 0;
          for (const [i, r] of results.entries()) {
            const c = SCHEMA_CASES[i];
            if (r.error) { failures.push(`${c.name}: ${r.error.code}: ${r.error.message}`); continue; }
            const s = r.stats;
            if (s.finishReason !== 'eos') {
              // Out of tokens inside the format: said so (finishReason 'length', constraint.complete false).
              if (s.finishReason !== 'length' || s.constraint?.complete !== false) failures.push(`${c.name}: ${JSON.stringify(s)}`);
              incomplete.push(`${c.name}: ${r.text.slice(0, 80)}...`);
              continue;
            }
            if (!s.constraint?.complete) failures.push(`${c.name}: finished 'eos' but not complete: ${r.text}`);
            let value;
            try { value = JSON.parse(r.text); } catch (e) { failures.push(`${c.name}: not JSON: ${r.text}`); continue; }
            const validate = ajv.compile(c.schema);
            if (!validate(value)) failures.push(`${c.name}: ${ajv.errorsText(validate.errors)}: ${r.text}`);
            masks += s.constraint.masks;
            maskMs += s.constraint.maskMeanMs * s.constraint.masks;
            forced += s.constraint.forcedTokens;
            tokens += s.generatedTokens;
          }
          console.log(`${m.key} ${mode}: ${results.length - failures.length - incomplete.length}/${results.length} valid, `
            + `${incomplete.length} stopped at maxTokens ${JSON.stringify(incomplete)}; ${tokens} tokens, `
            + `${forced} forced; mask ${(maskMs / Math.max(masks, 1)).toFixed(3)} ms mean over ${masks}; e.g. ${results[0].text}`);
          assert.deepEqual(failures, [], `${failures.length} outputs failed:\n${failures.join('\n')}`);
          assert.ok(results.length - incomplete.length >= MIN_COMPLETE,
            `only ${results.length - incomplete.length} of ${results.length} completed:\n${incomplete.join('\n')}`);
        });
      }

      it(`${m.key}: regexes (date, email, phone) match, greedy and sampled`, async () => {
        const results = await page.evaluate(async ([key, cases, extra]) => {
          const lm = window.models[key];
          const out = [];
          for (const c of cases) {
            for (const opts of [{ temperature: 0 }, { temperature: 0.9, seed: 3 }]) {
              const text = await lm.chat([{ role: 'user', content: c.prompt }],
                { ...opts, ...extra, maxTokens: 48, responseFormat: { type: 'regex', pattern: new RegExp(c.source) } });
              out.push({ name: c.name, text, finish: lm.lastStats.finishReason });
            }
          }
          return out;
        }, [m.key, REGEXES.map((r) => ({ ...r, source: r.pattern.source })), m.sampling]);
        for (const [i, r] of results.entries()) {
          const re = REGEXES[Math.floor(i / 2)].pattern;
          assert.equal(r.finish, 'eos', `${r.name}: ${JSON.stringify(r.text)}`);
          assert.match(r.text, re, r.name);
        }
      });

      it(`${m.key}: a Lark arithmetic grammar is honoured`, async () => {
        const results = await page.evaluate(async ([key, lark, extra]) => {
          const lm = window.models[key];
          const out = [];
          for (const opts of [{ temperature: 0 }, { temperature: 0.8, seed: 11 }]) {
            const text = await lm.chat([{ role: 'user', content: 'Write an arithmetic expression that equals 12.' }],
              { ...opts, ...extra, maxTokens: 40, responseFormat: { type: 'grammar', lark } });
            out.push({ text, finish: lm.lastStats.finishReason });
          }
          return out;
        }, [m.key, ARITHMETIC, m.sampling]);
        for (const r of results) {
          assert.equal(r.finish, 'eos', JSON.stringify(r));
          assert.notEqual(evalArithmetic(r.text), null, `${JSON.stringify(r.text)} is not an arithmetic expression`);
        }
      });

      it(`${m.key}: tool calls round-trip (required, named, auto with a tool result)`, async () => {
        const out = await page.evaluate(async ([key, tools]) => {
          const lm = window.models[key];
          const messages = [{ role: 'user', content: 'What is the weather in Paris right now?' }];
          const first = await lm.chat(messages, { tools, toolChoice: 'required', temperature: 0, maxTokens: 80 });
          const named = await lm.chat(messages, { tools, toolChoice: { type: 'function', function: { name: 'get_time' } },
            temperature: 0.7, seed: 5, maxTokens: 80 });
          const call = first.toolCalls[0];
          const followUp = [...messages, first,
            { role: 'tool', toolCallId: call?.id, content: JSON.stringify({ temperature: 21, sky: 'clear' }) }];
          const second = await lm.chat(followUp, { tools, toolChoice: 'auto', temperature: 0, maxTokens: 60 });
          const none = await lm.chat(messages, { tools, toolChoice: 'none', temperature: 0, maxTokens: 24 });
          return { first, named, second, none };
        }, [m.key, WEATHER_TOOLS]);
        const check = (msg, allowed) => {
          assert.equal(msg.role, 'assistant');
          assert.equal(msg.toolCalls.length, 1, JSON.stringify(msg));
          const c = msg.toolCalls[0];
          assert.equal(c.type, 'function');
          assert.match(c.id, /^call_\d+_0$/);
          assert.ok(allowed.includes(c.function.name), c.function.name);
          const tool = WEATHER_TOOLS.find((t) => t.function.name === c.function.name);
          const validate = ajv.compile(tool.function.parameters);
          assert.ok(validate(JSON.parse(c.function.arguments)), `${c.function.arguments}: ${ajv.errorsText(validate.errors)}`);
        };
        check(out.first, ['get_weather', 'get_time']);
        check(out.named, ['get_time']);
        // After the tool's result, 'auto' gives text or another valid call.
        if (out.second.toolCalls.length > 0) check(out.second, ['get_weather', 'get_time']);
        else assert.ok(typeof out.second.content === 'string' && out.second.content.length > 0, JSON.stringify(out.second));
        // 'none': plain text, no calls.
        assert.equal(out.none.toolCalls.length, 0);
        assert.equal(typeof out.none.content, 'string');
        console.log(`${m.key} tools: ${JSON.stringify(out.first.toolCalls[0].function)} -> ${JSON.stringify(out.second.content ?? out.second.toolCalls)}`);
      });
    }

    it('lm.json() returns the parsed value; maxTokens inside the JSON rejects with code length', async () => {
      const out = await page.evaluate(async () => {
        const lm = window.models.smollm2;
        const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 20 },
          country: { type: 'string', maxLength: 20 } }, required: ['city', 'country'], additionalProperties: false };
        const value = await lm.json('Name a city and its country.', schema, { temperature: 0 });
        const any = await lm.json('Describe a cat.', null, { temperature: 0, maxTokens: 120 });
        let short;
        try {
          await lm.json('Tell a long story.', { type: 'object', properties: { story: { type: 'string' } }, required: ['story'] },
            { temperature: 0, maxTokens: 6 });
        } catch (e) { short = window.plainError(e); }
        const raw = await lm.chat([{ role: 'user', content: 'Tell a long story.' }],
          { temperature: 0, maxTokens: 6, responseFormat: { type: 'json_object' } });
        return { value, any, short, raw, stats: lm.lastStats };
      });
      assert.equal(typeof out.value.city, 'string');
      assert.equal(typeof out.value.country, 'string');
      assert.equal(typeof out.any, 'object');
      assert.equal(out.short?.code, 'length', JSON.stringify(out.short));
      assert.equal(out.stats.finishReason, 'length');
      assert.equal(out.stats.constraint.complete, false);
      assert.throws(() => JSON.parse(out.raw));
    });

    it('an unsupported or invalid format rejects with invalid-argument naming it, before any token', async () => {
      const out = await page.evaluate(async () => {
        const lm = window.models.smollm2;
        const msgs = [{ role: 'user', content: 'Hi' }];
        const cases = [
          { type: 'json_schema', schema: { type: 'array', items: { type: 'integer' }, uniqueItems: true } },
          { type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'strnig' } } } },
          { type: 'regex', pattern: '(unclosed' },
          { type: 'grammar', lark: 'start: missing_rule' },
          { type: 'yaml' },
        ];
        const errors = [];
        for (const responseFormat of cases) {
          const t0 = performance.now();
          try {
            await lm.chat(msgs, { responseFormat, maxTokens: 50 });
            errors.push(null);
          } catch (e) {
            errors.push({ ...window.plainError(e), ms: performance.now() - t0 });
          }
        }
        return errors;
      });
      const names = ['uniqueItems', 'strnig', 'regex', 'missing_rule', 'yaml'];
      for (const [i, e] of out.entries()) {
        assert.ok(e, `case ${i} did not reject`);
        assert.equal(e.code, 'invalid-argument', JSON.stringify(e));
        assert.equal(e.name, 'PocketLMError');
        if (names[i]) assert.ok(e.message.includes(names[i]), `'${e.message}' should name ${names[i]}`);
      }
    });

    it('leaves no errors on the page', async () => {
      assert.deepEqual(await page.problems(), []);
    });
  });
}
