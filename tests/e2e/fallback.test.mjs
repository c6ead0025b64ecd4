// Hybrid fallback: PocketLM.load(url, {fallback: {baseURL, apiKey, model}, memoryBudget}) runs the model on the
// device when the preflight allows it, else on an OpenAI-compatible server, behind the same methods. The server is
// real: tests/e2e/openai_server.mjs runs the engine (the package's wasm build) in this Node process; the official
// `openai` client checks it first. One function (`useModel`, in the page) runs against both backends, and since
// both run the same engine, the greedy answers must be the same text.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { engineSuite, PageEnv, MODEL_FILE } from './model_env.mjs';
import { startOpenAIServer } from './openai_server.mjs';

const KEY = 'test-key';
const QUESTION = [{ role: 'system', content: 'You are a helpful AI assistant.' }, { role: 'user', content: 'What is the capital of France?' }];

engineSuite('hybrid fallback', () => {
  describe('hybrid fallback: the device or an OpenAI-compatible server, same API (SmolLM2-135M-Instruct Q4_1)', () => {
    const env = new PageEnv();
    let remote;
    let fallback;
    before(async () => {
      remote = await startOpenAIServer({ modelPath: MODEL_FILE, apiKey: KEY });
      fallback = { baseURL: `${remote.origin}/v1`, apiKey: KEY, model: remote.modelId };
      await env.start();
      await env.page.evaluate(() => {
        // The application code under test: it does not know which backend it got.
        window.useModel = async (lm, messages) => {
          const greedy = { temperature: 0, maxTokens: 24 };
          const chat = await lm.chat(messages, greedy);
          const chatStats = lm.lastStats;
          let streamed = '';
          for await (const p of lm.chatStream(messages, greedy)) streamed += p;
          const complete = await lm.complete('The capital of France is', greedy);
          let readable = '';
          const reader = lm.readable('The capital of France is', greedy).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            readable += value;
          }
          const c = await lm.chat.completions.create({ messages, temperature: 0, max_tokens: 24 });
          const chunks = [];
          for await (const ch of await lm.chat.completions.create({ messages, temperature: 0, max_tokens: 24, stream: true })) {
            chunks.push(ch.choices[0]?.delta?.content ?? '');
          }
          return { backend: lm.info.backend, chat, chatStats, streamed, complete, readable,
            completion: c.choices[0].message.content, completionObject: c.object, chunked: chunks.join('') };
        };
      });
    });
    after(async () => {
      await env.stop();
      await remote?.close();
    });

    it('the test server is OpenAI-compatible: the official openai client completes, streams and lists from it', async () => {
      const client = new OpenAI({ baseURL: fallback.baseURL, apiKey: KEY, maxRetries: 0 });
      const c = await client.chat.completions.create({ model: remote.modelId, messages: QUESTION, temperature: 0, max_tokens: 24 });
      assert.equal(c.object, 'chat.completion');
      assert.ok(c.choices[0].message.content.includes('Paris'), c.choices[0].message.content);
      const stream = await client.chat.completions.create({ model: remote.modelId, messages: QUESTION, temperature: 0, max_tokens: 24,
        stream: true, stream_options: { include_usage: true } });
      let text = '';
      let usage = null;
      for await (const ch of stream) {
        text += ch.choices[0]?.delta?.content ?? '';
        usage = ch.usage ?? usage;
      }
      assert.equal(text, c.choices[0].message.content);
      assert.equal(usage.completion_tokens, c.usage.completion_tokens);
      const models = [];
      for await (const m of client.models.list()) models.push(m.id);
      assert.deepEqual(models, [remote.modelId]);
      const bad = new OpenAI({ baseURL: fallback.baseURL, apiKey: 'wrong', maxRetries: 0 });
      await assert.rejects(bad.chat.completions.create({ model: 'x', messages: QUESTION }), (e) => e.status === 401);
    });

    let deviceOut;
    it('with room on the device it loads there (fallback unused) and the app code runs', async () => {
      const before = remote.requests.length;
      const out = await env.page.evaluate(async ([url, fb, q]) => {
        const lm = await window.pocketlm.PocketLM.load(url, { fallback: fb });
        const r = await window.useModel(lm, q);
        await lm.unload();
        return r;
      }, [env.modelUrl, fallback, QUESTION]);
      assert.notEqual(out.backend, 'remote');
      assert.equal(remote.requests.length, before); // nothing went to the server
      deviceOut = out;
      assert.ok(out.chat.includes('Paris'), out.chat);
      assert.equal(out.streamed, out.chat);
      assert.equal(out.completion, out.chat);
      assert.equal(out.chunked, out.chat);
      assert.equal(out.readable, out.complete);
    });

    it('a memory budget too small for the model sends the same app code to the server, with the same answers', async () => {
      const before = remote.requests.length;
      const out = await env.page.evaluate(async ([url, fb, q]) => {
        const lm = await window.pocketlm.PocketLM.load(url, { fallback: fb, memoryBudget: 50e6 });
        const r = await window.useModel(lm, q);
        let tokenize = null;
        try {
          await lm.tokenize('hi');
        } catch (e) {
          tokenize = window.plainError(e);
        }
        return { ...r, info: { ...lm.info }, tokenize };
      }, [env.modelUrl, fallback, QUESTION]);
      assert.equal(out.backend, 'remote');
      assert.match(out.info.fallbackReason, /memory/);
      assert.equal(out.info.preflight.device, false);
      assert.ok(out.info.preflight.modelBytes > 50e6);
      assert.ok(remote.requests.length - before >= 6, 'the calls went to the server');
      // The same engine on both ends: greedy text is the same.
      for (const k of ['chat', 'streamed', 'complete', 'readable', 'completion', 'chunked']) {
        assert.equal(out[k], deviceOut[k], k);
      }
      assert.equal(out.completionObject, 'chat.completion');
      assert.equal(out.chatStats.promptTokens, deviceOut.chatStats.promptTokens);
      assert.equal(out.chatStats.generatedTokens, deviceOut.chatStats.generatedTokens);
      assert.equal(out.tokenize?.code, 'unsupported');
    });

    it('a device slower than minTokensPerSecond in the speed probe hands over to the server', async () => {
      const out = await env.page.evaluate(async ([url, fb]) => {
        const slow = await window.pocketlm.PocketLM.load(url, { fallback: fb, minTokensPerSecond: 1e9 });
        const fast = await window.pocketlm.PocketLM.load(url, { fallback: fb, minTokensPerSecond: 0.001 });
        const r = { slow: { ...slow.info }, fast: fast.info.backend };
        await fast.unload();
        return r;
      }, [env.modelUrl, fallback]);
      assert.equal(out.slow.backend, 'remote');
      assert.match(out.slow.fallbackReason, /tokens\/s, below minTokensPerSecond/);
      assert.ok(out.slow.preflight.probeTokensPerSecond > 0);
      assert.notEqual(out.fast, 'remote');
    });

    it('remote: aborting a stream stops it; errors of the server come back as PocketLMError http', async () => {
      const out = await env.page.evaluate(async ([url, fb, q]) => {
        const lm = await window.pocketlm.PocketLM.load(url, { fallback: fb, memoryBudget: 1 });
        const ac = new AbortController();
        let aborted = null;
        let n = 0;
        try {
          for await (const p of lm.chatStream([{ role: 'user', content: 'Count from 1 to 200: 1, 2, 3,' }], { temperature: 0, maxTokens: 200, signal: ac.signal })) {
            if (++n === 3) ac.abort();
          }
        } catch (e) {
          aborted = window.plainError(e);
        }
        const after = await lm.chat(q, { temperature: 0, maxTokens: 24 });
        let badKey = null;
        try {
          await window.pocketlm.PocketLM.load(url, { fallback: { ...fb, apiKey: 'wrong' }, memoryBudget: 1 });
        } catch (e) {
          badKey = window.plainError(e);
        }
        return { aborted, n, after, badKey };
      }, [env.modelUrl, fallback, QUESTION]);
      assert.equal(out.aborted?.name, 'AbortError');
      assert.equal(out.n, 3);
      assert.equal(out.after, deviceOut.chat);
      assert.equal(out.badKey?.code, 'http');
      assert.equal(out.badKey.status, 401);
    });

    it('leaves no errors on the page', async () => {
      assert.deepEqual((await env.page.problems()).filter((p) => !/401/.test(p)), []);
    });
  });
});
