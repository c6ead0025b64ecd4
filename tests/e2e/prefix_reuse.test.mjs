// Follow-up chat turns reuse the KV cache: the worker no longer resets the engine before each call, so the engine
// prefills only what follows the longest cached prefix. Checked against a second model instance (its own worker,
// an empty cache) that runs the same conversation in one go: the greedy text must be the same, and only the
// reusing instance may skip prompt tokens. Also: an aborted generation and a failed call leave the cache honest.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engineSuite, PageEnv } from './model_env.mjs';

const GREEDY = { temperature: 0, maxTokens: 32 };
const TURNS = ['What is the capital of France?', 'And what is it famous for?', 'Name one museum there.'];

engineSuite('prefix reuse (SmolLM2-135M-Instruct Q4_1)', () => {
  describe('prefix reuse across chat turns (SmolLM2-135M-Instruct Q4_1)', () => {
    const env = new PageEnv();
    let conversation; // the three turns as the reusing instance ran them
    before(async () => {
      await env.start();
      await env.load('lm');
      await env.load('fresh');
    });
    after(() => env.stop());

    it('the 3rd turn prefills only the new tokens and answers what a fresh context answers', async () => {
      const out = await env.page.evaluate(async ([turns, opts]) => {
        const lm = window.models.lm;
        const messages = [{ role: 'system', content: 'You are a helpful assistant.' }];
        const stats = [];
        for (const q of turns) {
          messages.push({ role: 'user', content: q });
          const a = await lm.chat(messages, opts);
          stats.push(lm.lastStats);
          messages.push({ role: 'assistant', content: a });
        }
        // The same 3rd-turn prompt on the other instance, which has run nothing yet.
        const fresh = window.models.fresh;
        const freshText = await fresh.chat(messages.slice(0, -1), opts);
        return { messages, stats, freshText, freshStats: fresh.lastStats };
      }, [TURNS, GREEDY]);
      conversation = out.messages;
      const [s1, s2, s3] = out.stats;
      for (const s of out.stats) assert.ok(Number.isInteger(s.prefilledTokens) && s.prefilledTokens >= 1, JSON.stringify(s));
      assert.equal(s1.prefilledTokens, s1.promptTokens); // nothing cached before the first call
      assert.equal(out.freshStats.prefilledTokens, out.freshStats.promptTokens);
      assert.equal(out.freshStats.promptTokens, s3.promptTokens);
      // Turn 3's prompt starts with turn 2's prompt and reply: those tokens came from the cache (all but the few
      // where the template closes the reply, whose last token was never fed, and re-tokenization may differ).
      assert.ok(s3.prefilledTokens < s3.promptTokens, `${s3.prefilledTokens} of ${s3.promptTokens} prefilled`);
      const reused = s3.promptTokens - s3.prefilledTokens;
      assert.ok(reused >= s2.promptTokens + s2.generatedTokens - 4,
        `turn 3 reused ${reused} tokens; turn 2 had ${s2.promptTokens} prompt + ${s2.generatedTokens} generated`);
      assert.ok(s3.prefilledTokens <= s3.promptTokens - s2.promptTokens, `${s3.prefilledTokens} prefilled`);
      assert.equal(out.messages.at(-1).content, out.freshText);
      assert.ok(out.freshText.trim().length > 0);
    });

    it('after an aborted generation and a failed call the cache still gives the fresh-context answer', async () => {
      const out = await env.page.evaluate(async ([conv, opts]) => {
        const lm = window.models.lm;
        const ac = new AbortController();
        let aborted = null;
        try {
          // Shares the system turn and the first user turn with the conversation, then diverges.
          const other = [...conv.slice(0, 2), { role: 'assistant', content: 'Count with me.' },
            { role: 'user', content: 'Count from 1 to 100: 1, 2, 3,' }];
          let n = 0;
          for await (const p of lm.chatStream(other, { temperature: 0, maxTokens: 96, signal: ac.signal })) {
            if (++n === 5) ac.abort();
          }
        } catch (e) {
          aborted = window.plainError(e);
        }
        const abortedStats = lm.lastStats;
        let failed = null;
        try {
          // One turn longer than the whole context (at least a token a word): no turn can be dropped to fit it.
          const tooLong = 'word '.repeat(lm.info.contextSize + 64);
          await lm.chat([...conv, { role: 'user', content: tooLong }], opts);
        } catch (e) {
          failed = window.plainError(e);
        }
        const text = await lm.chat(conv.slice(0, -1), opts);
        return { aborted, abortedStats, failed, text, stats: lm.lastStats };
      }, [conversation, GREEDY]);
      assert.equal(out.aborted?.name, 'AbortError');
      assert.equal(out.abortedStats.finishReason, 'aborted');
      assert.ok(out.abortedStats.prefilledTokens < out.abortedStats.promptTokens); // it reused the shared turns
      assert.equal(out.failed?.code, 'context-overflow');
      assert.equal(out.text, conversation.at(-1).content);
      assert.ok(out.stats.prefilledTokens < out.stats.promptTokens); // the shared system + first user turn
    });

    it('leaves no errors on the page', async () => {
      assert.deepEqual(await env.page.problems(), []);
    });
  });
});
