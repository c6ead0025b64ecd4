// The worker, its message protocol and the PocketLM client, end to end in each browser of POCKETLM_BROWSERS (browsers.mjs), with a stand-in for the wasm
// module (fake_engine/pocketlm.js, same contract as src/wasm.rs) so that they are tested without the real engine.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { launchBrowser, openPage, TestServer, MODELS_DIR, REPO, seededBytes, sha256, checkProgress, BROWSERS,
  FEATURES } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MB = 1 << 20;

/** A file the fake engine accepts: 'GGUF', declared length (u64 LE), seeded bytes. */
function fakeModel(size, seed, declared = size) {
  const b = seededBytes(size, seed);
  b.write('GGUF', 0, 'latin1');
  b.writeBigUInt64LE(BigInt(declared), 4);
  return b;
}

/** Expected output of the fake engine for a prompt: pieces `${tag}${i} `, token 2 held back (''). */
function fakeText(prompt, maxTokens = 16) {
  const tag = prompt.split(/\s+/)[0];
  let s = '';
  for (let i = 0; i < maxTokens; i++) if (i !== 2) s += `${tag}${i} `;
  return s;
}

for (const name of BROWSERS) describe(`worker protocol and client (fake engine) [${name}]`, () => {
  let tmp;
  let browser;
  let server;
  let page;

  before(async () => {
    // dist/ built by the real build script, with the fake standing in for the simd128 wasm build.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-fake-'));
    const fakeWasm = path.join(tmp, 'fake-wasm');
    fs.mkdirSync(fakeWasm);
    fs.copyFileSync(path.join(HERE, 'fake_engine', 'pocketlm.js'), path.join(fakeWasm, 'pocketlm.js'));
    fs.writeFileSync(path.join(fakeWasm, 'pocketlm_bg.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    execFileSync(process.execPath, [path.join(REPO, 'pkg', 'scripts', 'build.mjs'), '--out', path.join(tmp, 'dist'),
      '--simd128', fakeWasm], { stdio: 'pipe', env: { ...process.env, POCKETLM_WASM_OUT: '' } });
    execFileSync(process.execPath, [path.join(REPO, 'pkg', 'scripts', 'build.mjs'), '--out', path.join(tmp, 'nowasm')],
      { stdio: 'pipe', env: { ...process.env, POCKETLM_WASM_OUT: '' } });
    server = await new TestServer({
      mounts: { '/models/': MODELS_DIR, '/fakepkg/': path.join(tmp, 'dist'), '/nowasm/': path.join(tmp, 'nowasm') },
    }).start();
    browser = await launchBrowser(name);
    page = await openPage(browser, server.origin, '/fakepkg/');
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const load = (url, opts = {}, name = 'lm') => page.evaluate(([u, o, n]) => window.load(u, o, n), [url, opts, name]);
  const entry = (url) => page.evaluate((u) => window.entry(u), url);
  const must = (r) => assert.ok(r.ok, `expected success, got ${JSON.stringify(r.error)}`);
  const MODEL = fakeModel(20 * MB + 5, 1);

  it('loads through the worker: monotone progress, then init; the engine gets exactly the file', async () => {
    server.addFile('/m/model.gguf', MODEL);
    const r = await load('/m/model.gguf', { chunkSize: 2 * MB });
    must(r);
    const last = checkProgress(assert, r.progress, MODEL.length);
    assert.deepEqual(last, { loaded: MODEL.length, total: MODEL.length, phase: 'init' });
    const phases = [...new Set(r.progress.map((p) => p.phase))];
    assert.deepEqual(phases, ['download', 'init']);
    assert.equal(r.value.sha256, sha256(MODEL));
    assert.equal(r.value.fileBytes, MODEL.length);
    assert.equal(r.value.backend, 'simd128');
  });

  it('loads a cached model again with no request for it', async () => {
    server.resetStats();
    const r = await load('/m/model.gguf', {}, 'again');
    must(r);
    assert.equal(server.stats('/m/model.gguf').requests, 0);
    assert.deepEqual([...new Set(r.progress.map((p) => p.phase))], ['cache', 'init']);
    checkProgress(assert, r.progress, MODEL.length);
    assert.equal(r.value.sha256, sha256(MODEL));
    await page.evaluate(() => window.models.again.unload());
  });

  it('streams pieces; complete(), stream() and readable() agree; lastStats is set', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const pieces = [];
      for await (const p of lm.stream('alpha beta', { maxTokens: 6 })) pieces.push(p);
      const stats = lm.lastStats;
      const text = await lm.complete('alpha beta', { maxTokens: 6 });
      const reader = lm.readable('alpha beta', { maxTokens: 6 }).getReader();
      let viaReadable = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        viaReadable += value;
      }
      return { pieces, stats, text, viaReadable };
    });
    assert.deepEqual(out.pieces, ['alpha0 ', 'alpha1 ', 'alpha3 ', 'alpha4 ', 'alpha5 ']); // '' is never sent
    assert.equal(out.text, fakeText('alpha', 6));
    assert.equal(out.viaReadable, out.text);
    assert.equal(out.stats.generatedTokens, 6);
    assert.equal(out.stats.promptTokens, 'alpha beta'.length);
    assert.equal(out.stats.finishReason, 'length');
  });

  it('aborting a stream stops generation within a token; the next call works', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const ac = new AbortController();
      let received = 0;
      let error = null;
      try {
        for await (const p of lm.stream('gamma', { maxTokens: 200, signal: ac.signal })) {
          received++;
          if (received === 3) ac.abort();
        }
      } catch (e) {
        error = window.plainError(e);
      }
      const stats = lm.lastStats;
      const next = await lm.complete('delta', { maxTokens: 5 });
      return { received, error, stats, next };
    });
    assert.equal(out.error?.name, 'AbortError');
    assert.equal(out.error.code, 'aborted');
    assert.equal(out.stats.finishReason, 'aborted');
    // 3 pieces received = 4 tokens (one was ''); at most the token in progress when the cancel arrived follows.
    assert.ok(out.stats.generatedTokens <= 4 + 2, `generated ${out.stats.generatedTokens} tokens after abort`);
    assert.equal(out.next, fakeText('delta', 5));
  });

  it('leaving a for-await loop early cancels the generation', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const pieces = [];
      for await (const p of lm.stream('eps', { maxTokens: 500 })) {
        pieces.push(p);
        if (pieces.length === 2) break;
      }
      await lm.tokenize('x'); // queued behind the cancelled generation: its stats have arrived by now
      const cancelled = lm.lastStats;
      const next = await lm.complete('zeta', { maxTokens: 3 });
      return { pieces, cancelled, next };
    });
    assert.deepEqual(out.pieces, ['eps0 ', 'eps1 ']);
    assert.equal(out.cancelled.finishReason, 'aborted');
    // 2 tokens consumed; at most the token in progress when the cancel arrived (and one more in flight) follow.
    assert.ok(out.cancelled.generatedTokens <= 2 + 2, `generated ${out.cancelled.generatedTokens} tokens`);
    assert.equal(out.next, fakeText('zeta', 3));
  });

  it('runs concurrent calls one after another, in call order, never interleaved', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const order = [];
      const collect = async (it, tag) => {
        let s = '';
        for await (const p of it) s += p;
        order.push(tag);
        return s;
      };
      const a = collect(lm.stream('A', { maxTokens: 8 }), 'A');
      const b = lm.complete('B', { maxTokens: 8 }).then((s) => { order.push('B'); return s; });
      const c = collect(lm.chatStream([{ role: 'user', content: 'C' }], { maxTokens: 8 }), 'C');
      const d = lm.tokenize('D').then((ids) => { order.push('D'); return Array.from(ids); });
      return { texts: await Promise.all([a, b, c]), ids: await d, order };
    });
    assert.deepEqual(out.texts, [fakeText('A', 8), fakeText('B', 8), fakeText('<user>C', 8)]);
    assert.deepEqual(out.ids, [0x44]);
    assert.deepEqual(out.order, ['A', 'B', 'C', 'D']);
  });

  it('tokenize / detokenize / applyChatTemplate / chat go through the engine', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const ids = await lm.tokenize('héllo ✓', { addSpecial: true });
      return {
        isU32: ids instanceof Uint32Array,
        ids: Array.from(ids),
        text: await lm.detokenize(ids),
        template: await lm.applyChatTemplate([{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }]),
        chat: await lm.chat([{ role: 'user', content: 'hi' }], { maxTokens: 4 }),
        bad: await lm.chat([{ role: 'bad', content: 'x' }]).catch(window.plainError),
      };
    });
    assert.equal(out.isU32, true);
    assert.deepEqual(out.ids, [1, ...Buffer.from('héllo ✓')]);
    assert.equal(out.text, 'héllo ✓');
    assert.equal(out.template, '<system>S\n<user>U\n<assistant>');
    assert.equal(out.chat, fakeText('<user>hi', 4));
    assert.equal(out.bad.code, 'template');
  });

  it('passes engine errors through with their code, and checks options at the call', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const err = (p) => p.then(() => null, window.plainError);
      const sync = (f) => { try { f(); return null; } catch (e) { return window.plainError(e); } };
      return {
        overflow: await err(lm.complete('x'.repeat(100))),
        badOption: await err(lm.complete('x', { temperature: -1 })),
        badStop: sync(() => lm.stream('x', { stop: [1] })),
        badMessages: await err(lm.chat([{ role: 'user' }])),
        afterErrors: await lm.complete('ok', { maxTokens: 2 }),
      };
    });
    assert.equal(out.overflow.code, 'context-overflow');
    assert.equal(out.overflow.name, 'PocketLMError');
    assert.equal(out.badOption.code, 'invalid-argument');
    assert.match(out.badOption.message, /temperature/);
    assert.equal(out.badStop.code, 'invalid-argument');
    assert.equal(out.badMessages.code, 'invalid-argument');
    assert.equal(out.afterErrors, fakeText('ok', 2));
  });

  it('rejects a non-GGUF file with "format" early in the download and keeps no entry', async () => {
    const junk = seededBytes(40 * MB, 2);
    server.addFile('/m/junk.bin', junk);
    // A browser's network process reads a response ahead of the page (WebKit: 20 MB of this one at localhost speed
    // before the page had read its first MB; Chromium: 22 MB on a loaded machine): pace the body, so what the server
    // sent shows when the page cancelled (20 MB take 1.25 s at this pace).
    server.configure('/m/junk.bin', { bytesPerSecond: 16 * MB });
    const r = await load('/m/junk.bin', { chunkSize: 2 * MB }, 'junk');
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'format');
    assert.equal(await entry('/m/junk.bin'), null);
    // checkHeader runs after the first MB, so the 40 MB body was cancelled long before its end.
    assert.ok(server.stats('/m/junk.bin').bytes < 20 * MB, `${server.stats('/m/junk.bin').bytes} bytes sent`);
  });

  it('rejects a truncated file with "format" when the model is built, and deletes the entry', async () => {
    const cut = fakeModel(8 * MB, 3, 9 * MB);
    server.addFile('/m/truncated.gguf', cut);
    const r = await load('/m/truncated.gguf', {}, 'cut');
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'format');
    assert.match(r.error.message, /truncated/);
    assert.equal(await entry('/m/truncated.gguf'), null);
  });

  it('aborts a load with an AbortError, keeps the chunks, and the next load resumes', async () => {
    const model = fakeModel(24 * MB, 4);
    server.addFile('/m/slow.gguf', model);
    server.configure('/m/slow.gguf', { bytesPerSecond: 16 * MB }); // the abort lands mid-download
    const first = await load('/m/slow.gguf', { chunkSize: 2 * MB, abortAt: 9 * MB }, 'slow');
    assert.equal(first.ok, false);
    assert.equal(first.error.name, 'AbortError');
    const partial = await entry('/m/slow.gguf');
    assert.ok(partial.bytes >= 8 * MB && !partial.complete, JSON.stringify(partial));
    server.resetStats();
    server.resetBehavior('/m/slow.gguf');
    const second = await load('/m/slow.gguf', {}, 'slow');
    must(second);
    assert.equal(second.value.sha256, sha256(model));
    assert.equal(server.stats('/m/slow.gguf').bytes, model.length - partial.bytes);
    // Stored chunks were read from the cache, the rest downloaded: 'cache' comes before 'download'.
    assert.deepEqual([...new Set(second.progress.map((p) => p.phase))], ['cache', 'download', 'init']);
    checkProgress(assert, second.progress, model.length);
    await page.evaluate(() => window.models.slow.unload());
  });

  it('unload() rejects later and pending calls with "unloaded"', async () => {
    const out = await page.evaluate(async () => {
      const lm = window.models.lm;
      const pending = lm.complete('long', { maxTokens: 1000 }).then(() => null, window.plainError);
      await lm.unload();
      return { pending: await pending, after: await lm.complete('x').then(() => null, window.plainError) };
    });
    assert.equal(out.pending.code, 'unloaded');
    assert.equal(out.after.code, 'unloaded');
  });

  // Chromium and Firefox accept relaxed SIMD, WebKit (JavaScriptCore) does not: there the SIMD128 build runs.
  it(`${name} ${FEATURES[name].relaxedSimd ? 'accepts' : 'rejects'} the relaxed-SIMD probe (so the relaxed build is ${
    FEATURES[name].relaxedSimd ? 'chosen when present' : 'never chosen'})`, async () => {
    const ok = await page.evaluate(async () => {
      const { RELAXED_SIMD_PROBE, SIMD128_PROBE } = await import('/fakepkg/backend.js');
      return [WebAssembly.validate(SIMD128_PROBE), WebAssembly.validate(RELAXED_SIMD_PROBE)];
    });
    assert.deepEqual(ok, [true, FEATURES[name].relaxedSimd]);
  });

  it('works on a cross-origin isolated page (COOP/COEP) with the model on another origin', async () => {
    const isolated = await new TestServer({ isolation: true, mounts: { '/fakepkg/': path.join(tmp, 'dist') } }).start();
    const p2 = await openPage(browser, isolated.origin, '/fakepkg/');
    try {
      const out = await p2.evaluate(async (url) => {
        const r = await window.load(url, { threads: 4 }, 'iso');
        const text = r.ok ? await window.models.iso.complete('iso', { maxTokens: 3 }) : null;
        await window.models.iso?.unload();
        return { isolated: window.crossOriginIsolated, r, text };
      }, `${server.origin}/m/model.gguf`);
      assert.equal(out.isolated, true);
      must(out.r);
      assert.equal(out.r.value.threads, 1); // this fake package has no threads build: the single-thread build runs
      assert.equal(out.text, fakeText('iso', 3));
      assert.deepEqual(await p2.problems(), []);
    } finally {
      await p2.close();
      await isolated.stop();
    }
  });

  it('a package built without wasm fails to load with code "worker" and says how to build it', async () => {
    const err = await page.evaluate(async () => {
      const { PocketLM } = await import('/nowasm/index.js');
      return PocketLM.load('/m/model.gguf').then(() => null, window.plainError);
    });
    assert.equal(err?.code, 'worker');
    assert.match(err.message, /make pkg/);
  });

  it('leaves no errors on the page', async () => {
    assert.deepEqual(await page.problems(), []);
  });
});
