// Sessions (lm.session): each keeps its own KV cache in the engine, so interleaved conversations answer as each
// alone and a clone goes its own way; a saved session, restored after a page reload (a new PocketLM on the cached
// model), answers its next turn with the uninterrupted run's text, prefilling only that turn; persist/loadSession
// do the same through IndexedDB; damaged bytes and another model's session are refused with codes, changing nothing.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engineSuite, PageEnv } from './model_env.mjs';
import { waitReady } from './harness.mjs';

const GREEDY = { temperature: 0, maxTokens: 16 };
const SYSTEM = 'You are a helpful assistant.';

engineSuite('sessions (SmolLM2-135M-Instruct Q4_1)', () => {
  describe('sessions (SmolLM2-135M-Instruct Q4_1)', () => {
    const env = new PageEnv();
    before(async () => {
      await env.start();
      await env.load('lm', { contextSize: 512 });
    });
    after(() => env.stop());

    it('two interleaved sessions answer as each alone; a clone goes its own way', async () => {
      const out = await env.page.evaluate(async ([sys, opts]) => {
        const lm = window.models.lm;
        const qa = ['What is the capital of France?', 'Name one museum there.'];
        const qb = ['Write a haiku about the sea.', 'Now one about snow.'];
        const alone = async (qs) => {
          const s = lm.session({ system: sys });
          const r = [];
          for (const q of qs) r.push(await s.chat(q, opts));
          await s.destroy();
          return r;
        };
        const aloneA = await alone(qa);
        const aloneB = await alone(qb);
        const a = lm.session({ system: sys });
        const b = lm.session({ system: sys });
        const gotA = [];
        const gotB = [];
        const stats = [];
        for (let i = 0; i < 2; i++) {
          gotA.push(await a.chat(qa[i], opts));
          stats.push(a.lastStats);
          gotB.push(await b.chat(qb[i], opts));
        }
        const c = a.clone();
        const fromClone = await c.chat('What language is spoken there?', opts);
        const cloneStats = c.lastStats;
        const fromA = await a.chat('What language is spoken there?', opts);
        const aStats = a.lastStats;
        const cloneMessages = c.messages.length;
        await c.destroy();
        let destroyed = null;
        try { await c.chat('Hello', opts); } catch (e) { destroyed = window.plainError(e); }
        return { aloneA, aloneB, gotA, gotB, stats, fromClone, fromA, cloneStats, aStats, cloneMessages, destroyed };
      }, [SYSTEM, GREEDY]);
      assert.deepEqual(out.gotA, out.aloneA);
      assert.deepEqual(out.gotB, out.aloneB);
      // Session A's second turn came after B ran: its own cache still held turn 1.
      assert.ok(out.stats[1].prefilledTokens < out.stats[1].promptTokens / 2, JSON.stringify(out.stats[1]));
      assert.equal(out.fromClone, out.fromA);
      assert.equal(out.cloneStats.prefilledTokens, out.aStats.prefilledTokens);
      assert.ok(out.cloneStats.prefilledTokens < out.cloneStats.promptTokens / 2, JSON.stringify(out.cloneStats));
      assert.equal(out.cloneMessages, 7); // system + 3 turns of user and assistant
      assert.equal(out.destroyed?.code, 'invalid-argument');
    });

    it('save -> reload -> restore (and persist -> reload -> loadSession) continues with only the new turn prefilled', async () => {
      const first = await env.page.evaluate(async ([sys, opts]) => {
        const lm = window.models.lm;
        const s = lm.session({ system: sys });
        await s.chat('What is the capital of France?', opts);
        const bytes = await s.save();
        await s.persist('e2e-session');
        const text = await s.chat('And of Italy?', opts);
        let b64 = '';
        for (let i = 0; i < bytes.length; i += 0x8000) b64 += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return { blob: btoa(b64), size: bytes.length, text, stats: s.lastStats };
      }, [SYSTEM, GREEDY]);
      assert.ok(first.stats.prefilledTokens < first.stats.promptTokens / 2, JSON.stringify(first.stats));

      await env.page.reload();
      await waitReady(env.page);
      await env.load('lm', { contextSize: 512 }); // from the cache
      const after = await env.page.evaluate(async ([b64, opts]) => {
        const lm = window.models.lm;
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const s = await lm.restoreSession(bytes);
        const messages = s.messages.length;
        const text = await s.chat('And of Italy?', opts);
        const stats = s.lastStats;
        const p = await lm.loadSession('e2e-session');
        const persistedText = await p.chat('And of Italy?', opts);
        const persistedStats = p.lastStats;
        const stored = await window.pocketlm.ModelCache.sessions();
        let missing = null;
        try { await lm.loadSession('no-such-session'); } catch (e) { missing = window.plainError(e); }
        return { messages, text, stats, persistedText, persistedStats, stored, missing };
      }, [first.blob, GREEDY]);
      assert.equal(after.messages, 3);
      assert.equal(after.text, first.text);
      assert.equal(after.stats.prefilledTokens, first.stats.prefilledTokens, JSON.stringify([after.stats, first.stats]));
      assert.equal(after.stats.promptTokens, first.stats.promptTokens);
      assert.equal(after.persistedText, first.text);
      assert.equal(after.persistedStats.prefilledTokens, first.stats.prefilledTokens);
      assert.ok(after.stored.some((e) => e.key === 'e2e-session' && e.size === first.size), JSON.stringify(after.stored));
      assert.equal(after.missing?.code, 'not-found');
    });

    it('persist over the storage quota rejects with code quota and stores nothing', async () => {
      const out = await env.page.evaluate(async () => {
        const store = await import('/pkg/dist/session_store.js');
        let err = null;
        try {
          await store.putSession('too-big', new Uint8Array(1000), { quota: 1500, usage: 1000 });
        } catch (e) { err = window.plainError(e); }
        return { err, stored: (await window.pocketlm.ModelCache.sessions()).map((e) => e.key),
          deleted: await window.pocketlm.ModelCache.deleteSession('e2e-session'),
          after: (await window.pocketlm.ModelCache.sessions()).map((e) => e.key) };
      });
      assert.equal(out.err?.code, 'quota');
      assert.ok(!out.stored.includes('too-big'));
      assert.equal(out.deleted, true);
      assert.ok(!out.after.includes('e2e-session'));
    });

    it('a damaged blob and another model\'s session are refused with codes, changing nothing', async () => {
      const gemmaUrl = env.modelUrl.replace(/[^/]+$/, 'gemma-3-270m-q4_k_m.gguf');
      const out = await env.page.evaluate(async ([opts, gemma]) => {
        const lm = window.models.lm;
        const s = lm.session();
        await s.chat('Hello!', opts);
        const bytes = await s.save();
        const before = await lm.sessionInfo();
        const codes = {};
        const attempt = async (name, b) => {
          try { await lm.restoreSession(b); codes[name] = 'accepted'; } catch (e) { codes[name] = e.code; }
        };
        const flipped = bytes.slice();
        flipped[Math.floor(flipped.length / 2)] ^= 1;
        await attempt('flipped', flipped);
        await attempt('truncated', bytes.slice(0, bytes.length - 10));
        await attempt('empty', new Uint8Array(0));
        const g = await window.pocketlm.PocketLM.load(gemma, { contextSize: 512 });
        const gs = g.session();
        await gs.chat('Hello!', { ...opts, maxTokens: 2 });
        const gemmaBytes = await gs.save();
        await g.unload();
        await attempt('gemma', gemmaBytes);
        const after = await lm.sessionInfo();
        const still = await s.chat('How are you?', opts);
        return { codes, before, after, still };
      }, [GREEDY, gemmaUrl]);
      assert.deepEqual(out.codes, { flipped: 'format', truncated: 'format', empty: 'format', gemma: 'session-mismatch' });
      assert.deepEqual(out.after, out.before);
      assert.ok(out.still.length > 0);
    });
  });
});
