// The package with the real engine, end to end in each browser of POCKETLM_BROWSERS (browsers.mjs): SmolLM2-135M-Instruct (Q4_1) downloaded through
// PocketLM.load, generation, the cache without the network, and the error paths that need real GGUF parsing.
//
// Needs pkg/dist/wasm (make pkg) and the model (make models). Without them the suite is skipped with the reason
// printed; with POCKETLM_E2E_ENGINE=1 (make test-e2e) it fails instead.
//
// The greedy reference comes from the native CLI, in a JSON fixture: $POCKETLM_E2E_GREEDY, else
// $POCKETLM_FIXTURES/e2e_greedy_smollm2.json (default target/fixtures), shaped
//   {"prompt": "...", "maxTokens": 32, "chat": false, "system": "optional", "text": "<CLI output>", "prompt_tokens": [ids, optional]}
// e.g. the "text" and "prompt_tokens" of `pocketlm generate --model M --prompt P --max-tokens 32 --temperature 0 --json`
// (with --chat, "chat": true and "prompt" the user message). scripts/e2e_greedy.sh writes it, and
// e2e_greedy_prose.json beside it (the same shape) for the benchmark prompt.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser, openPage, waitReady, TestServer, MODELS_DIR, REPO, DIST, seededBytes, checkProgress, BROWSERS,
  FEATURES } from './harness.mjs';

const REQUIRED = process.env.POCKETLM_E2E_ENGINE === '1';
const MODEL_NAME = 'SmolLM2-135M-Instruct.Q4_1.gguf';
const MODEL_FILE = path.join(MODELS_DIR, MODEL_NAME);
const FIXTURE = process.env.POCKETLM_E2E_GREEDY
  ?? path.join(process.env.POCKETLM_FIXTURES ?? path.join(REPO, 'target', 'fixtures'), 'e2e_greedy_smollm2.json');
const PROSE_FIXTURE = path.join(process.env.POCKETLM_FIXTURES ?? path.join(REPO, 'target', 'fixtures'), 'e2e_greedy_prose.json');
const GREEDY = { temperature: 0, maxTokens: 24 };
const PROMPT = 'The capital of France is';

function missing() {
  if (!fs.existsSync(path.join(DIST, 'wasm', 'simd128', 'pocketlm_bg.wasm'))) {
    return `${DIST}/wasm/simd128 is missing: build the package with the engine (make pkg)`;
  }
  if (!fs.existsSync(MODEL_FILE)) return `${MODEL_FILE} is missing: run make models`;
  return null;
}

const reason = missing();
if (reason && REQUIRED) {
  it('engine end-to-end prerequisites (POCKETLM_E2E_ENGINE=1)', () => assert.fail(reason));
} else if (reason) {
  console.log(`engine e2e tests skipped: ${reason} (set POCKETLM_E2E_ENGINE=1 to make this a failure)`);
  it('engine end to end', { skip: reason }, () => {});
} else {
  for (const name of BROWSERS) describe(`engine end to end (SmolLM2-135M-Instruct Q4_1) [${name}]`, () => {
    const features = FEATURES[name];
    let browser;
    let site; // pages and the package
    let models; // the model host, another origin, stopped in one test
    let page;
    let modelUrl;
    let greedyText;
    const size = fs.statSync(MODEL_FILE).size;

    before(async () => {
      site = await new TestServer().start();
      models = await new TestServer({ mounts: { '/models/': MODELS_DIR } }).start();
      modelUrl = `${models.origin}/models/${MODEL_NAME}`;
      browser = await launchBrowser(name);
      page = await openPage(browser, site.origin);
    });
    after(async () => {
      await browser?.close();
      await site?.stop();
      await models?.stop();
    });

    const load = (url, opts = {}, name = 'lm') => page.evaluate(([u, o, n]) => window.load(u, o, n), [url, opts, name]);
    const entry = (url) => page.evaluate((u) => window.entry(u), url);
    const must = (r) => assert.ok(r.ok, `expected success, got ${JSON.stringify(r.error)}`);

    it('loads the model through the package with monotone progress', async () => {
      const r = await load(modelUrl);
      must(r);
      const last = checkProgress(assert, r.progress, size);
      assert.deepEqual(last, { loaded: size, total: size, phase: 'init' });
      assert.deepEqual([...new Set(r.progress.map((p) => p.phase))], ['download', 'init']);
      // Facts of this file (its GGUF metadata), not of our code.
      assert.equal(r.value.architecture, 'llama');
      assert.equal(r.value.vocabSize, 49152);
      assert.equal(r.value.fileBytes, size);
      const relaxedBuilt = fs.existsSync(path.join(DIST, 'wasm', 'relaxed', 'pocketlm_bg.wasm'));
      // Chromium and Firefox have relaxed SIMD, WebKit (JavaScriptCore, as in Safari) does not: SIMD128 build there.
      assert.equal(r.value.backend, relaxedBuilt && features.relaxedSimd ? 'relaxed-simd' : 'simd128');
      // This page has no COOP/COEP: threads 'auto' (the default) must fall back to one thread without an error.
      assert.equal(await page.evaluate(() => window.crossOriginIsolated), false);
      assert.equal(r.value.threads, 1);
      const e = await entry(modelUrl);
      assert.equal(e.complete, true);
      assert.equal(e.bytes, size);
    });

    it('streams text; the pieces make up what complete() returns', async () => {
      const out = await page.evaluate(async ([prompt, opts]) => {
        const lm = window.models.lm;
        const pieces = [];
        for await (const p of lm.stream(prompt, opts)) pieces.push(p);
        const stats = lm.lastStats;
        return { pieces, stats, text: await lm.complete(prompt, opts) };
      }, [PROMPT, GREEDY]);
      assert.ok(out.pieces.length > 0 && out.pieces.every((p) => typeof p === 'string' && p.length > 0));
      assert.equal(out.pieces.join(''), out.text);
      assert.ok(out.text.trim().length > 0);
      assert.ok(out.stats.generatedTokens > 0 && out.stats.generatedTokens <= GREEDY.maxTokens);
      assert.ok(out.stats.promptTokens > 0);
      assert.ok(['eos', 'length', 'stop'].includes(out.stats.finishReason));
      greedyText = out.text;
    });

    // Both builds compute the native CLI's bits (quantized kernels exact, float kernels in the reference's order,
    // libm transcendentals), so the browser's greedy text must equal the CLI's byte for byte: a short chat answer,
    // and 128 tokens of raw continuation of the benchmark's 128-token prompt (long enough to meet near-ties).
    for (const [label, file] of [['chat answer', FIXTURE], ['128-token prose continuation', PROSE_FIXTURE]]) {
      it(`greedy ${label} equals the native CLI reference`, async (t) => {
        if (!fs.existsSync(file)) {
          const msg = `greedy reference ${file} is missing (see the header of engine.test.mjs)`;
          if (REQUIRED) assert.fail(msg);
          return t.skip(msg);
        }
        const fx = JSON.parse(fs.readFileSync(file, 'utf8'));
        const out = await page.evaluate(async (f) => {
          const lm = window.models.lm;
          const opts = { temperature: 0, maxTokens: f.maxTokens };
          const messages = [...(f.system ? [{ role: 'system', content: f.system }] : []), { role: 'user', content: f.prompt }];
          const text = f.chat ? await lm.chat(messages, opts) : await lm.complete(f.prompt, opts);
          return { text, stats: lm.lastStats };
        }, fx);
        assert.equal(out.text, fx.text);
        if (Array.isArray(fx.prompt_tokens)) assert.equal(out.stats.promptTokens, fx.prompt_tokens.length);
      });
    }

    // Where the engine cannot run the threads build (WebKit: no relaxed SIMD, which the threads build needs), the same
    // page and request (threads: 2) must fall back to one thread with no error and the same text.
    it(features.threads
      ? 'a cross-origin isolated page runs the threads build: same greedy text as one thread and the native CLI'
      : 'a cross-origin isolated page asking for 2 threads falls back to one thread: same greedy text as the native CLI',
    async (t) => {
        const msg = `${DIST}/wasm/threads is missing: build the package with the threads build (make pkg)`;
        if (!fs.existsSync(path.join(DIST, 'wasm', 'threads', 'pocketlm_bg.wasm'))) {
          if (REQUIRED) assert.fail(msg);
          return t.skip(msg);
        }
        assert.ok(greedyText, 'the single-thread greedy text of the streaming test');
        const fx = fs.existsSync(FIXTURE) ? JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) : null;
        const iso = await new TestServer({ isolation: true }).start();
        const p2 = await openPage(browser, iso.origin);
        // Warnings too (the page and its workers, the helper threads included): a threads page should log nothing.
        try {
          const out = await p2.evaluate(async ([url, prompt, opts, f]) => {
            const r = await window.load(url, { threads: 2 }, 'mt');
            if (!r.ok) return { r };
            const lm = window.models.mt;
            const text = await lm.complete(prompt, opts);
            let fixtureText = null;
            if (f) {
              const messages = [...(f.system ? [{ role: 'system', content: f.system }] : []), { role: 'user', content: f.prompt }];
              fixtureText = await lm.chat(messages, { temperature: 0, maxTokens: f.maxTokens });
            }
            await lm.unload();
            return { r, isolated: window.crossOriginIsolated, text, fixtureText };
          }, [modelUrl, PROMPT, GREEDY, fx]);
          must(out.r);
          assert.equal(out.isolated, true);
          assert.equal(out.r.value.threads, features.threads ? 2 : 1);
          // the threads build is a relaxed-SIMD build; the fallback is the best single-thread build
          assert.equal(out.r.value.backend, features.relaxedSimd ? 'relaxed-simd' : 'simd128');
          assert.equal(out.text, greedyText); // the single-thread build's text on the same prompt
          if (fx) assert.equal(out.fixtureText, fx.text); // the native CLI's
          else if (REQUIRED) assert.fail(`greedy reference ${FIXTURE} is missing`);
          assert.deepEqual(await p2.problems(), []);
          assert.deepEqual(await p2.warnings(), []);
        } finally {
          await p2.close();
          await iso.stop();
        }
      });

    it('chat() applies the model template; chatStream() gives the same text', async () => {
      const out = await page.evaluate(async (opts) => {
        const lm = window.models.lm;
        const messages = [{ role: 'user', content: 'What is the capital of France?' }];
        const template = await lm.applyChatTemplate(messages);
        const text = await lm.chat(messages, opts);
        let streamed = '';
        for await (const p of lm.chatStream(messages, opts)) streamed += p;
        return { template, text, streamed };
      }, GREEDY);
      assert.ok(out.template.includes('What is the capital of France?'));
      assert.ok(out.template.length > 'What is the capital of France?'.length, 'the template adds role markup');
      assert.ok(out.text.trim().length > 0);
      assert.equal(out.streamed, out.text);
    });

    it('profile: the prefill and decode stages, in order, add up to no more than their time', async () => {
      const out = await page.evaluate(async (prompt) => {
        const lm = window.models.lm;
        const plain = await lm.complete(prompt, { temperature: 0, maxTokens: 16 });
        const noProfile = lm.lastStats.profile;
        const noPrefillProfile = lm.lastStats.prefillProfile;
        const text = await lm.complete(prompt, { temperature: 0, maxTokens: 16, profile: true });
        return { plain, noProfile, noPrefillProfile, text, stats: lm.lastStats, info: lm.info };
      }, PROMPT);
      assert.equal(out.noProfile, undefined);
      assert.equal(out.noPrefillProfile, undefined);
      assert.equal(out.text, out.plain); // timing changes nothing computed
      const stages = out.stats.profile.map((t) => t.stage);
      assert.deepEqual(stages, ['embed', 'norm', 'qkv', 'rope', 'attention', 'attnOut', 'gateUp', 'activation', 'down',
        'residual', 'head', 'constraint', 'sample', 'text']);
      assert.ok(out.stats.profile.every((t) => Number.isFinite(t.ms) && t.ms >= 0));
      const perToken = out.stats.profile.reduce((a, t) => a + t.ms, 0);
      const decodeMsPerToken = 1000 / out.stats.decodeTokensPerSecond;
      assert.ok(perToken > 0 && perToken <= decodeMsPerToken * 1.001, `${perToken} ms of stages vs ${decodeMsPerToken} ms per token`);
      // The matrix products carry weights; they cannot take no time.
      for (const s of ['qkv', 'gateUp', 'down', 'head']) assert.ok(out.stats.profile.find((t) => t.stage === s).ms > 0, s);
      // The prefill's stages (per prefilled token; the same stages, the prefill samples nothing).
      assert.deepEqual(out.stats.prefillProfile.map((t) => t.stage), stages);
      const prefillPerToken = out.stats.prefillProfile.reduce((a, t) => a + t.ms, 0);
      const prefillMsPerToken = 1000 / out.stats.prefillTokensPerSecond;
      assert.ok(prefillPerToken > 0 && prefillPerToken <= prefillMsPerToken * 1.001,
        `${prefillPerToken} ms of prefill stages vs ${prefillMsPerToken} ms per prefilled token`);
      assert.equal(out.stats.prefillProfile.find((t) => t.stage === 'sample').ms, 0);
      // Load facts: the engine holds at least the file; the load's parts are measured.
      assert.ok(out.info.memoryBytes >= out.info.fileBytes);
      for (const k of ['moduleMs', 'weightsMs', 'initMs']) assert.ok(out.info.loadTimings[k] >= 0, k);
    });

    it('tokenize and detokenize round-trip', async () => {
      const out = await page.evaluate(async () => {
        const lm = window.models.lm;
        const text = 'Hello world, café ✓';
        const ids = await lm.tokenize(text);
        return { n: ids.length, isU32: ids instanceof Uint32Array, back: await lm.detokenize(ids), text };
      });
      assert.equal(out.isU32, true);
      assert.ok(out.n > 0);
      assert.equal(out.back, out.text);
    });

    it('aborting mid-stream stops it; the next call gives the same greedy text', async () => {
      // A prompt whose greedy continuation is long (counting), so the abort cannot meet a natural end.
      const out = await page.evaluate(async ([prompt, opts]) => {
        const lm = window.models.lm;
        const ac = new AbortController();
        let error = null;
        try {
          for await (const p of lm.stream('Count from 1 to 100: 1, 2, 3,', { temperature: 0, maxTokens: 96, signal: ac.signal })) {
            ac.abort();
          }
        } catch (e) {
          error = window.plainError(e);
        }
        const aborted = lm.lastStats;
        const pieces = [];
        for await (const p of lm.stream(prompt, opts)) {
          pieces.push(p);
          if (pieces.length === 2) break;
        }
        return { error, aborted, text: await lm.complete(prompt, opts) };
      }, [PROMPT, GREEDY]);
      assert.equal(out.error?.name, 'AbortError');
      assert.equal(out.aborted.finishReason, 'aborted');
      assert.ok(out.aborted.generatedTokens < 96, `${out.aborted.generatedTokens} tokens`);
      assert.equal(out.text, greedyText);
    });

    it('reloads from IndexedDB with the model server stopped: same text, no request', async () => {
      await page.evaluate(() => window.models.lm.unload());
      await models.stop();
      try {
        await page.reload();
        await waitReady(page);
        const r = await load(modelUrl);
        must(r);
        assert.deepEqual([...new Set(r.progress.map((p) => p.phase))], ['cache', 'init']);
        checkProgress(assert, r.progress, size);
        const text = await page.evaluate(([p, o]) => window.models.lm.complete(p, o), [PROMPT, GREEDY]);
        assert.equal(text, greedyText);
      } finally {
        await models.start();
      }
    });

    it('checks the context size: code "context-overflow"', async () => {
      must(await load(modelUrl, { contextSize: 32 }, 'small'));
      const err = await page.evaluate(async () => {
        const lm = window.models.small;
        try {
          await lm.complete('word '.repeat(100), { maxTokens: 4 });
          return null;
        } catch (e) {
          return window.plainError(e);
        } finally {
          await lm.unload();
        }
      });
      assert.equal(err?.code, 'context-overflow');
    });

    it('rejects a file that is not GGUF with code "format" and keeps no entry', async () => {
      models.addFile('/models/not-a-model.gguf', seededBytes(3 << 20, 5));
      const url = `${models.origin}/models/not-a-model.gguf`;
      const r = await load(url, {}, 'junk');
      assert.equal(r.ok, false);
      assert.equal(r.error.code, 'format', r.error.message);
      assert.equal(await entry(url), null);
    });

    it('rejects a truncated GGUF with code "format" and keeps no entry', async () => {
      const whole = fs.readFileSync(MODEL_FILE);
      models.addFile('/models/truncated.gguf', whole.subarray(0, Math.floor(whole.length * 0.6)));
      const url = `${models.origin}/models/truncated.gguf`;
      const r = await load(url, {}, 'cut');
      assert.equal(r.ok, false);
      assert.equal(r.error.code, 'format', r.error.message);
      assert.equal(await entry(url), null);
    });

    it('leaves no errors on the page', async () => {
      assert.deepEqual(await page.problems(), []);
    });
  });
}
