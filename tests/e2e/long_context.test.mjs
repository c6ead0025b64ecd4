// Long prompts and chats past the window (issue 18): the default context is 'auto' (SmolLM2: its trained 8192 with
// an f16 KV cache) and a ~4,000-token prompt runs in it; the prefill runs in chunks with progress events and stops
// between chunks on abort; a chat longer than the context drops its oldest whole turns ('drop-oldest', the
// default) or rejects with 'context-overflow' ('error'); generation that fills the window ends with 'length'. The
// other KV types give the native CLI's greedy text with the same type (scripts/e2e_greedy.sh).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { engineSuite, PageEnv, REQUIRED } from './model_env.mjs';

/** `n` lines of varied text, ~20 tokens a line. */
const lines = (n) => Array.from({ length: n }, (_, i) => `Line ${i + 1}: the ${['quick', 'slow', 'red', 'tall'][i % 4]} `
  + `fox number ${i * 7} jumps over ${i % 3 === 0 ? 'the lazy dog' : 'a fence'}.`).join('\n');
/** ~2,200 tokens. */
const LONG = lines(110);
/** ~4,000 tokens. */
const LONGER = lines(200);
const FIXTURES = process.env.POCKETLM_FIXTURES ?? path.join(import.meta.dirname, '..', '..', 'target', 'fixtures');

engineSuite('long context (SmolLM2-135M-Instruct Q4_1)', () => {
  describe('long prompts and chats past the window (SmolLM2-135M-Instruct Q4_1)', () => {
    const env = new PageEnv();
    before(async () => {
      await env.start();
      await env.load('long', { threads: 1 });
      await env.load('small', { contextSize: 512, threads: 1 });
    });
    after(() => env.stop());

    it('the default context is auto: SmolLM2 gets its trained 8192 positions with an f16 KV cache', async () => {
      const info = await env.page.evaluate(() => window.models.long.info);
      assert.equal(info.kvType, 'f16');
      assert.equal(info.trainContext, 8192);
      // f16 keys and values of 30 layers x 192 values at 8192 positions: 180 MiB, within max(256 MiB, file / 4).
      assert.equal(info.kvBytes, 2 * 30 * 192 * 2 * 8192);
      assert.equal(info.contextSize, 8192);
    });

    it('a ~4,000-token prompt prefills in chunks with monotone progress ending at total', async () => {
      const out = await env.page.evaluate(async (prompt) => {
        const lm = window.models.long;
        const events = [];
        const t0 = performance.now();
        let ttft = null;
        let text = '';
        for await (const piece of lm.stream(prompt, { temperature: 0, maxTokens: 8,
          onPrefillProgress: (p) => events.push({ ...p }) })) {
          ttft ??= performance.now() - t0;
          text += piece;
        }
        return { events, stats: lm.lastStats, ttft, text };
      }, LONGER);
      const { events, stats } = out;
      assert.ok(stats.promptTokens >= 3800 && stats.promptTokens <= 4400, `${stats.promptTokens} prompt tokens`);
      assert.ok(events.length > 1, `${events.length} progress events`);
      for (let i = 0; i < events.length; i++) {
        assert.equal(events[i].total, stats.prefilledTokens);
        if (i > 0) assert.ok(events[i].done > events[i - 1].done, JSON.stringify(events.slice(i - 1, i + 1)));
      }
      assert.equal(events.at(-1).done, events.at(-1).total);
      assert.ok(stats.generatedTokens > 0);
      // The text goes on with the pattern: the next line's number.
      assert.match(out.text, /201/, JSON.stringify(out.text));
      console.log(`# prefill ${stats.prefilledTokens} tokens: ${stats.prefillTokensPerSecond.toFixed(1)} tok/s, `
        + `time to first piece ${out.ttft?.toFixed(0)} ms, 1 thread, f16 KV`);
    });

    for (const kvType of ['q8_0', 'f32']) {
      it(`kvType ${kvType}: the greedy continuation equals the native CLI's with the same KV type`, async (t) => {
        const file = path.join(FIXTURES, `e2e_greedy_prose_${kvType}.json`);
        if (!fs.existsSync(file)) {
          if (REQUIRED) assert.fail(`${file} is missing (scripts/e2e_greedy.sh)`);
          return t.skip(`${file} is missing`);
        }
        const fx = JSON.parse(fs.readFileSync(file, 'utf8'));
        const info = await env.load(kvType, { kvType, contextSize: 512, threads: 1 });
        assert.equal(info.kvType, kvType);
        const text = await env.page.evaluate(async ([name, f]) => {
          const lm = window.models[name];
          const text = await lm.complete(f.prompt, { temperature: 0, maxTokens: f.maxTokens });
          await lm.unload();
          return text;
        }, [kvType, fx]);
        assert.equal(text, fx.text);
      });
    }

    it('abort mid-prefill rejects with code aborted; the next call works and reuses what was prefilled', async () => {
      const out = await env.page.evaluate(async (prompt) => {
        const lm = window.models.long;
        const ac = new AbortController();
        const events = [];
        let error = null;
        try {
          await lm.complete(prompt, { temperature: 0, maxTokens: 8, signal: ac.signal, onPrefillProgress: (p) => {
            events.push({ ...p });
            if (p.done >= 256) ac.abort();
          } });
        } catch (e) {
          error = window.plainError(e);
        }
        const aborted = lm.lastStats;
        const text = await lm.complete(prompt, { temperature: 0, maxTokens: 8 });
        return { error, events, aborted, text, stats: lm.lastStats };
      }, `Another text.\n${LONG}`);
      assert.equal(out.error?.code, 'aborted', JSON.stringify(out.error));
      assert.equal(out.error.name, 'AbortError');
      const { total } = out.events[0];
      assert.equal(out.aborted.finishReason, 'aborted');
      // Stopped between chunks, after the one that reported 256 and before the end (the cancel message may arrive
      // a chunk later than the abort).
      const ran = out.aborted.prefilledTokens;
      assert.ok(ran >= 256 && ran < total, `${ran} of ${total}`);
      assert.ok(out.events.every((e) => e.done <= ran), JSON.stringify(out.events.at(-1)));
      assert.ok(out.stats.generatedTokens > 0);
      assert.equal(typeof out.text, 'string');
      // The chunks that ran before the abort stayed in the KV cache: only the rest was prefilled.
      assert.equal(out.stats.prefilledTokens, total - ran);
    });

    it('a 20-turn chat in a 512-token context keeps answering by dropping the oldest turns', async () => {
      const out = await env.page.evaluate(async () => {
        const lm = window.models.small;
        const messages = [{ role: 'system', content: 'You are a helpful assistant. Answer briefly.' }];
        const turns = [];
        for (let i = 0; i < 20; i++) {
          messages.push({ role: 'user', content: `Question ${i + 1}: name an animal whose name has ${3 + (i % 6)} letters.` });
          const answer = await lm.chat(messages, { temperature: 0, maxTokens: 40 });
          turns.push({ answer, stats: lm.lastStats });
          messages.push({ role: 'assistant', content: answer });
        }
        let error = null;
        try {
          await lm.chat([...messages, { role: 'user', content: 'One more?' }], { temperature: 0, maxTokens: 40,
            contextOverflow: 'error' });
        } catch (e) {
          error = window.plainError(e);
        }
        return { turns, error, contextSize: lm.info.contextSize };
      });
      assert.equal(out.contextSize, 512);
      for (const t of out.turns) {
        assert.ok(t.stats.generatedTokens > 0 && typeof t.answer === 'string', JSON.stringify(t));
        assert.ok(t.stats.promptTokens + 40 <= 512, JSON.stringify(t.stats));
      }
      const dropped = out.turns.map((t) => t.stats.droppedMessages ?? 0);
      assert.equal(dropped[0], 0);
      assert.ok(dropped.at(-1) > 0, `dropped per turn: ${dropped}`);
      // Whole turns go: a user message and the assistant's reply.
      assert.ok(dropped.every((d) => d % 2 === 0), `dropped per turn: ${dropped}`);
      assert.equal(out.error?.code, 'context-overflow', JSON.stringify(out.error));
    });

    it('generation that fills the context window ends with finishReason length', async () => {
      const stats = await env.page.evaluate(async (prompt) => {
        const lm = window.models.small;
        await lm.complete(prompt, { temperature: 0, maxTokens: 200 });
        return lm.lastStats;
      }, LONG.slice(0, 1200));
      assert.ok(stats.promptTokens + 200 > 512, `${stats.promptTokens} prompt tokens`);
      assert.equal(stats.finishReason, 'length');
      assert.equal(stats.contextFull, true);
      // Every position of the window holds a token, and the last token, sampled from the last position's logits,
      // needs no slot of its own.
      assert.equal(stats.promptTokens + stats.generatedTokens, 512 + 1);
    });
  });
});
