// PocketLM.load(file): a local GGUF (a File from <input type=file> or a drop, any Blob) read in slices inside the
// worker, optionally stored in the ModelCache. The File here is made in the page from the model's bytes fetched
// from the test server; it must load like the URL (the same greedy text), a bad Blob must give the coded error,
// and nothing half-stored may stay in the cache.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { engineSuite, PageEnv, MODEL_FILE } from './model_env.mjs';
import { checkProgress } from './harness.mjs';

const GREEDY = { temperature: 0, maxTokens: 24 };
const PROMPT = 'Once upon a time, there was a little girl named';

engineSuite('local file loads (SmolLM2-135M-Instruct Q4_1)', () => {
  describe('PocketLM.load(File) (SmolLM2-135M-Instruct Q4_1)', () => {
    const env = new PageEnv();
    const size = fs.statSync(MODEL_FILE).size;
    before(async () => {
      await env.start();
      // The model's bytes as a File in the page, as <input type=file> would give them.
      await env.page.evaluate(async (url) => {
        const blob = await (await fetch(url)).blob();
        window.modelFile = new File([blob], 'SmolLM2.gguf', { lastModified: 1700000000000 });
      }, env.modelUrl);
    });
    after(() => env.stop());

    /** Loads window.modelFile (or what `make` returns) in the page; {ok, value | error, progress}. */
    const loadFile = (make, opts, name) => env.page.evaluate(([src, o, n]) => {
      const file = src === null ? window.modelFile : (0, eval)(src)(window.modelFile);
      return window.capture(async (onProgress) => {
        const lm = await window.pocketlm.PocketLM.load(file, { ...o, onProgress });
        window.models[n] = lm;
        return lm.info;
      });
    }, [make === null ? null : make.toString(), opts, name]);

    const greedy = (name) => env.page.evaluate(([n, p, o]) => window.models[n].complete(p, o), [name, PROMPT, GREEDY]);

    it('a File loads like the URL: the same greedy text; cache: true stores it under info.cacheKey', async () => {
      await env.load('url');
      const urlText = await greedy('url');
      const r = await loadFile(null, { cache: true }, 'file');
      assert.ok(r.ok, JSON.stringify(r.error));
      assert.equal(r.value.fileBytes, size);
      assert.deepEqual([...new Set(r.progress.map((p) => p.phase))], ['file', 'init']);
      assert.deepEqual(checkProgress(assert, r.progress, size), { loaded: size, total: size, phase: 'init' });
      const fileText = await greedy('file');
      assert.ok(urlText.trim().length > 0);
      assert.equal(fileText, urlText);
      // The stored copy is a complete cache entry: loading its key reads the cache, no network, same text.
      const key = r.value.cacheKey;
      assert.match(key, /^pocketlm-file:SmolLM2\.gguf\?/);
      const e = await env.page.evaluate((k) => window.entry(k), key);
      assert.equal(e.complete, true);
      assert.equal(e.bytes, size);
      const again = await env.page.evaluate((k) => window.load(k, {}, 'cached'), key);
      assert.ok(again.ok, JSON.stringify(again.error));
      assert.deepEqual([...new Set(again.progress.map((p) => p.phase))], ['cache', 'init']);
      assert.equal(await greedy('cached'), urlText);
      await env.page.evaluate(() => Promise.all(['url', 'file', 'cached'].map((n) => window.models[n].unload())));
    });

    it('a garbage Blob is refused with code format, and nothing is left in the cache', async () => {
      const r = await loadFile((() => () => {
        const bytes = new Uint8Array(3 << 20);
        for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
        return new File([bytes], 'noise.gguf');
      })(), { cache: true }, 'noise');
      assert.equal(r.ok, false);
      assert.equal(r.error.code, 'format', JSON.stringify(r.error));
      const left = await env.page.evaluate(async () => (await window.pocketlm.ModelCache.list())
        .filter((e) => e.url.startsWith('pocketlm-file:noise')));
      assert.deepEqual(left, []);
    });

    it('a truncated file (the first half of the model) is refused with code format, nothing stored', async () => {
      const r = await loadFile((() => (f) => new File([f.slice(0, Math.floor(f.size / 2))], 'half.gguf'))(),
        { cache: true }, 'half');
      assert.equal(r.ok, false);
      assert.equal(r.error.code, 'format', JSON.stringify(r.error));
      const left = await env.page.evaluate(async () => (await window.pocketlm.ModelCache.list())
        .filter((e) => e.url.startsWith('pocketlm-file:half')));
      assert.deepEqual(left, []);
    });
  });
});
