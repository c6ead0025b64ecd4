// The Prompt API polyfill (`pocketlm/prompt-api`, dist/prompt_api.js) in Chromium on the real model, method by
// method as the WICG prompt-api explainer and spec describe them: availability, create with downloadprogress,
// prompt / promptStreaming / append / measureContextUsage / contextUsage / contextWindow, clone independence,
// destroy and abort (AbortError), the contextoverflow event (oldest turns dropped, never the initial prompts),
// the spec's error types, prefix messages, install(). Greedy answers are compared with PocketLM.chat / complete on
// a separate instance given the same conversation. responseConstraint needs structured output in the core package
// (issue 16) and has its own describe block.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engineSuite, PageEnv, NEEDS_16 } from './model_env.mjs';

engineSuite('Prompt API polyfill', () => {
  describe('Prompt API polyfill: LanguageModel (SmolLM2-135M-Instruct Q4_1)', () => {
    const env = new PageEnv();
    before(async () => {
      await env.start();
      await env.page.evaluate(async (url) => {
        window.pa = await import('/pkg/dist/prompt_api.js');
        window.pa.configure({ modelUrl: url, maxResponseTokens: 128 });
        window.err = (e) => ({ name: e?.name, message: String(e?.message ?? e), dom: e instanceof DOMException,
          type: e?.constructor?.name, requested: e?.requested, quota: e?.quota });
        window.catching = async (fn) => {
          try {
            await fn();
            return null;
          } catch (e) {
            return window.err(e);
          }
        };
      }, env.modelUrl);
      await env.load('direct'); // the reference: the same model, its own worker
    });
    after(() => env.stop());

    it('install() defines globalThis.LanguageModel only when the browser has none', async () => {
      const out = await env.page.evaluate(() => {
        const before = 'LanguageModel' in globalThis;
        const builtin = globalThis.LanguageModel;
        const got = window.pa.install();
        const after = globalThis.LanguageModel;
        const sentinel = { sentinel: true };
        globalThis.LanguageModel = sentinel;
        const again = window.pa.install();
        const kept = globalThis.LanguageModel === sentinel && again === sentinel;
        globalThis.LanguageModel = after;
        return { before, ours: !before && got === window.pa.LanguageModel && after === window.pa.LanguageModel,
          builtinKept: before && after === builtin, kept };
      });
      assert.ok(out.ours || out.builtinKept);
      assert.equal(out.kept, true); // an existing LanguageModel is never replaced
    });

    it('availability(): available when cached, downloadable before the download, unavailable for inputs/languages it does not offer, TypeError on bad options', async () => {
      const out = await env.page.evaluate(async (url) => {
        const LM = window.pa.LanguageModel;
        window.pa.configure({ modelUrl: `${url}?not-cached` });
        const notCached = await LM.availability();
        window.pa.configure({ modelUrl: url });
        return {
          notCached,
          cached: await LM.availability(), // the reference instance's load put the whole file in the cache
          en: await LM.availability({ expectedInputs: [{ type: 'text', languages: ['en-US'] }], expectedOutputs: [{ type: 'text', languages: ['en'] }] }),
          ja: await LM.availability({ expectedInputs: [{ type: 'text', languages: ['ja'] }] }),
          image: await LM.availability({ expectedInputs: [{ type: 'image' }] }),
          audioOut: await LM.availability({ expectedOutputs: [{ type: 'audio' }] }),
          badType: await window.catching(() => LM.availability({ expectedInputs: [{ type: 'video' }] })),
          badTag: await window.catching(() => LM.availability({ expectedInputs: [{ type: 'text', languages: ['not a tag!'] }] })),
          params: await LM.params(),
        };
      }, env.modelUrl);
      assert.equal(out.notCached, 'downloadable');
      assert.equal(out.cached, 'available');
      assert.equal(out.en, 'available');
      assert.equal(out.ja, 'unavailable');
      assert.equal(out.image, 'unavailable');
      assert.equal(out.audioOut, 'unavailable');
      assert.equal(out.badType?.name, 'TypeError');
      assert.equal(out.badTag?.name, 'RangeError');
      assert.ok(out.params.maxTopK >= out.params.defaultTopK && out.params.maxTemperature >= out.params.defaultTemperature);
    });

    it('create(): downloadprogress ProgressEvents from 0 to 1 (total 1), then available; initialPrompts are kept', async () => {
      const out = await env.page.evaluate(async () => {
        const LM = window.pa.LanguageModel;
        const events = [];
        const s = await LM.create({
          samplingMode: 'most-predictable',
          initialPrompts: [{ role: 'system', content: 'You are a helpful AI assistant.' }],
          monitor(m) {
            m.addEventListener('downloadprogress', (e) => events.push({ loaded: e.loaded, total: e.total, progress: e instanceof ProgressEvent }));
          },
        });
        window.s = s;
        return { events, availability: await LM.availability(), usage: s.contextUsage, window: s.contextWindow,
          mode: s.samplingMode, temperature: s.temperature, topK: s.topK, info: window.pa.sharedModel().info };
      });
      assert.ok(out.events.length >= 2);
      assert.deepEqual(out.events[0], { loaded: 0, total: 1, progress: true });
      assert.deepEqual(out.events.at(-1), { loaded: 1, total: 1, progress: true });
      for (let i = 1; i < out.events.length; i++) assert.ok(out.events[i].loaded >= out.events[i - 1].loaded);
      assert.equal(out.availability, 'available');
      assert.ok(out.usage > 5, `usage ${out.usage}`); // the system prompt with its template markup
      assert.equal(out.window, out.info.contextSize);
      assert.equal(out.mode, 'most-predictable');
      assert.equal(out.temperature, 0);
    });

    it('prompt(): the greedy answer PocketLM.chat gives for the same conversation; a follow-up prefills only its turn', async () => {
      const out = await env.page.evaluate(async () => {
        const s = window.s;
        const usage0 = s.contextUsage;
        const q1 = 'What is the capital of France?';
        const a1 = await s.prompt(q1);
        const usage1 = s.contextUsage;
        const q2 = 'Is it a big city?';
        const measured = await s.measureContextUsage(q2);
        const measuredOld = await s.measureInputUsage(q2);
        const a2 = await s.prompt(q2);
        const stats2 = window.pa.sharedModel().lastStats;
        const conv = [{ role: 'system', content: 'You are a helpful AI assistant.' }, { role: 'user', content: q1 }];
        const direct = window.models.direct;
        const ref1 = await direct.chat(conv, { temperature: 0, maxTokens: 128 });
        const ref2 = await direct.chat([...conv, { role: 'assistant', content: a1 }, { role: 'user', content: q2 }], { temperature: 0, maxTokens: 128 });
        return { a1, a2, ref1, ref2, usage0, usage1, usage2: s.contextUsage, measured, measuredOld, stats2,
          inputUsage: s.inputUsage, inputQuota: s.inputQuota, window: s.contextWindow };
      });
      assert.equal(out.a1, out.ref1);
      assert.equal(out.a2, out.ref2);
      assert.ok(out.a1.includes('Paris'), out.a1);
      assert.ok(out.usage1 > out.usage0);
      assert.ok(out.measured > 0 && out.measured === out.measuredOld);
      assert.ok(out.usage2 >= out.usage1 + out.measured, `${out.usage2} < ${out.usage1} + ${out.measured}`);
      assert.equal(out.inputUsage, out.usage2);
      assert.equal(out.inputQuota, out.window);
      // The follow-up reused the conversation in the KV cache: it prefilled about its own turn only.
      assert.ok(out.stats2.prefilledTokens <= out.measured + 8, `${out.stats2.prefilledTokens} prefilled, turn ${out.measured}`);
      assert.ok(out.stats2.prefilledTokens < out.stats2.promptTokens / 2);
    });

    it('each session and clone has its own KV cache: a follow-up after another session ran prefills only its turn', async () => {
      const out = await env.page.evaluate(async () => {
        const LM = window.pa.LanguageModel;
        const lm = () => window.pa.sharedModel();
        const init = { samplingMode: 'most-predictable', initialPrompts: [{ role: 'system', content: 'You are terse.' }] };
        const a = await LM.create(init);
        const b = await LM.create(init);
        await a.prompt('Name a color.');
        await b.prompt('Write a long sentence about the history of the city of Rome and its emperors.');
        const c = await a.clone();
        await a.prompt('Name another one.');
        const statsA = lm().lastStats;
        await b.prompt('Shorter, please.');
        await c.prompt('Name another one.');
        const statsC = lm().lastStats;
        const [ma, mc] = [a.contextUsage, c.contextUsage];
        for (const s of [a, b, c]) s.destroy();
        return { statsA, statsC, ma, mc };
      });
      for (const st of [out.statsA, out.statsC]) {
        assert.ok(st.prefilledTokens < st.promptTokens / 2, JSON.stringify(st));
      }
      assert.equal(out.statsC.prefilledTokens, out.statsA.prefilledTokens);
      assert.equal(out.mc, out.ma);
    });

    it('promptStreaming(): a ReadableStream of pieces that make up the answer; clones go separate ways', async () => {
      const out = await env.page.evaluate(async () => {
        const a = await window.s.clone();
        const b = await window.s.clone();
        const usageBefore = window.s.contextUsage;
        const joke = await a.prompt('Tell me a joke.');
        const stream = b.promptStreaming('What did I ask you first?');
        const reader = stream.getReader();
        const pieces = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          pieces.push(value);
        }
        const same = await window.s.prompt('What did I ask you first?');
        return { stream: stream instanceof ReadableStream, pieces, same, joke, usageBefore, a: a.contextUsage,
          b: b.contextUsage, s: window.s.contextUsage };
      });
      assert.equal(out.stream, true);
      assert.ok(out.pieces.length > 1 && out.pieces.every((p) => typeof p === 'string'));
      // b and s had the same conversation; what a did is not in either.
      assert.equal(out.pieces.join(''), out.same);
      assert.equal(out.b, out.s);
      assert.notEqual(out.a, out.b);
      assert.ok(out.a > out.usageBefore && out.b > out.usageBefore);
    });

    it('append() adds to the conversation without an answer; prefix continues an assistant message', async () => {
      const out = await env.page.evaluate(async () => {
        const LM = window.pa.LanguageModel;
        const s = await LM.create({ samplingMode: 'most-predictable' });
        const u0 = s.contextUsage;
        await s.append([{ role: 'system', content: 'You are a terse assistant.' }, { role: 'user', content: 'My favourite colour is green.' }]);
        const u1 = s.contextUsage;
        const answer = await s.prompt('What is my favourite colour?');
        const conv = [{ role: 'system', content: 'You are a terse assistant.' }, { role: 'user', content: 'My favourite colour is green.' },
          { role: 'user', content: 'What is my favourite colour?' }];
        const ref = await window.models.direct.chat(conv, { temperature: 0, maxTokens: 128 });
        const p = await LM.create({ samplingMode: 'most-predictable' });
        const prefixed = await p.prompt([{ role: 'user', content: 'Write a TOML file with a name and an age.' },
          { role: 'assistant', content: '```toml\n', prefix: true }]);
        const template = await window.models.direct.applyChatTemplate([{ role: 'user', content: 'Write a TOML file with a name and an age.' }]);
        const prefixRef = await window.models.direct.complete(`${template}\`\`\`toml\n`, { temperature: 0, maxTokens: 128 });
        s.destroy();
        p.destroy();
        return { u0, u1, answer, ref, prefixed, prefixRef };
      });
      assert.equal(out.u0, 0);
      assert.ok(out.u1 > 10);
      assert.equal(out.answer, out.ref);
      assert.equal(out.prefixed, out.prefixRef);
      assert.ok(out.prefixed.length > 0);
    });

    it('abort: a queued or running prompt rejects with the AbortError (or the reason) and leaves the session as it was', async () => {
      const out = await env.page.evaluate(async () => {
        const s = await window.s.clone();
        const usage = s.contextUsage;
        const ac = new AbortController();
        const running = s.prompt('Count from 1 to 200: 1, 2, 3,', { signal: ac.signal });
        const queued = s.prompt('And then?', { signal: ac.signal });
        setTimeout(() => ac.abort(), 300);
        const e1 = await running.then(() => null, window.err);
        const e2 = await queued.then(() => null, window.err);
        const pre = new AbortController();
        pre.abort(new Error('mine'));
        const e3 = await s.prompt('hi', { signal: pre.signal }).then(() => null, window.err);
        const after = s.contextUsage;
        const works = await s.prompt('Say hello.');
        s.destroy();
        return { e1, e2, e3, usage, after, works };
      });
      assert.equal(out.e1?.name, 'AbortError');
      assert.equal(out.e1.dom, true);
      assert.equal(out.e2?.name, 'AbortError');
      assert.equal(out.e3?.message, 'mine'); // the signal's reason itself
      assert.equal(out.after, out.usage); // the aborted prompt/answer pair is not in the session
      assert.ok(out.works.length > 0);
    });

    it('destroy(): a running prompt and a stream reject with AbortError; later calls too', async () => {
      const out = await env.page.evaluate(async () => {
        const s = await window.s.clone();
        const running = s.prompt('Count from 1 to 200: 1, 2, 3,');
        const stream = s.promptStreaming('Count from 1 to 200: 1, 2, 3,');
        setTimeout(() => s.destroy(), 300);
        const e1 = await running.then(() => null, window.err);
        let e2 = null;
        try {
          const r = stream.getReader();
          for (;;) if ((await r.read()).done) break;
        } catch (e) {
          e2 = window.err(e);
        }
        const e3 = await s.prompt('hi').then(() => null, window.err);
        const e4 = await s.clone().then(() => null, window.err);
        const ac = new AbortController();
        const viaSignal = await window.pa.LanguageModel.create({ signal: ac.signal });
        ac.abort();
        const e5 = await viaSignal.prompt('hi').then(() => null, window.err);
        // The other sessions still work (the shared model stays loaded while any session lives).
        const still = await window.s.measureContextUsage('hi');
        return { e1, e2, e3, e4, e5, still };
      });
      for (const k of ['e1', 'e2', 'e3', 'e4', 'e5']) assert.equal(out[k]?.name, 'AbortError', `${k}: ${JSON.stringify(out[k])}`);
      assert.ok(out.still > 0);
    });

    it("the spec's errors: TypeError, SyntaxError, NotSupportedError as DOMExceptions", async () => {
      const out = await env.page.evaluate(async () => {
        const LM = window.pa.LanguageModel;
        const s = await window.s.clone();
        const r = {
          systemLater: await window.catching(() => s.prompt([{ role: 'system', content: 'late' }])),
          systemSecond: await window.catching(() => LM.create({ initialPrompts: [{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }] })),
          prefixNotLast: await window.catching(() => s.prompt([{ role: 'assistant', content: 'x', prefix: true }, { role: 'user', content: 'y' }])),
          prefixUser: await window.catching(() => s.prompt([{ role: 'user', content: 'x', prefix: true }])),
          omitAlone: await window.catching(() => s.prompt('hi', { omitResponseConstraintInput: true })),
          badConstraint: await window.catching(() => s.prompt('hi', { responseConstraint: 42 })),
          image: await window.catching(() => s.prompt([{ role: 'user', content: [{ type: 'image', value: new Uint8Array(4) }] }])),
          badRole: await window.catching(() => s.prompt([{ role: 'tool', content: 'x' }])),
          modeAndTemp: await window.catching(() => LM.create({ samplingMode: 'creative', temperature: 0.5 })),
          imageSession: await window.catching(() => LM.create({ expectedInputs: [{ type: 'image' }] })),
          toolsSession: await window.catching(() => LM.create({ tools: [{ name: 'f', description: 'd', inputSchema: {}, execute: async () => '' }] })),
          toolsAvailability: await LM.availability({ tools: [{ name: 'f', description: 'd', inputSchema: {}, execute: async () => '' }] }),
          notConstructible: await window.catching(() => new LM()),
        };
        s.destroy();
        return r;
      });
      assert.equal(out.systemLater?.name, 'TypeError');
      assert.equal(out.systemSecond?.name, 'TypeError');
      assert.equal(out.prefixNotLast?.name, 'SyntaxError');
      assert.equal(out.prefixNotLast.dom, true);
      assert.equal(out.prefixUser?.name, 'SyntaxError');
      assert.equal(out.omitAlone?.name, 'TypeError');
      assert.equal(out.badConstraint?.name, 'TypeError');
      assert.equal(out.image?.name, 'NotSupportedError');
      assert.equal(out.image.dom, true);
      assert.equal(out.badRole?.name, 'TypeError');
      assert.equal(out.modeAndTemp?.name, 'TypeError');
      assert.equal(out.imageSession?.name, 'NotSupportedError');
      assert.equal(out.toolsSession?.name, 'NotSupportedError'); // not implemented: refused, not ignored
      assert.equal(out.toolsAvailability, 'unavailable');
      assert.equal(out.notConstructible?.name, 'TypeError');
    });

    it('context overflow: oldest turns go (never the initial prompts), contextoverflow fires; too big a prompt is a QuotaExceededError', async () => {
      const out = await env.page.evaluate(async (url) => {
        // The same file under another URL, loaded with a 256-token context (sessions of one URL share one model).
        window.pa.configure({ modelUrl: `${url}?small`, loadOptions: { contextSize: 256 } });
        const LM = window.pa.LanguageModel;
        const s = await LM.create({ samplingMode: 'most-predictable', initialPrompts: [{ role: 'system', content: 'Your name is Zed.' }] });
        const initial = s.contextUsage;
        let events = 0;
        let handler = 0;
        s.addEventListener('contextoverflow', () => events++);
        s.oncontextoverflow = () => handler++;
        const usages = [];
        for (let i = 0; i < 8 && events === 0; i++) {
          await s.prompt(`Tell me a fact about the number ${i}. ${'Please be detailed. '.repeat(4)}`);
          usages.push(s.contextUsage);
        }
        const afterOverflow = s.contextUsage;
        const before = s.contextUsage;
        const tooBig = await window.catching(() => s.prompt('word '.repeat(400)));
        const measureBig = await s.measureContextUsage('word '.repeat(400));
        const e = { window: s.contextWindow, initial, usages, events, handler, afterOverflow, before, after: s.contextUsage, tooBig, measureBig };
        s.destroy();
        window.pa.configure({ modelUrl: url, loadOptions: {} });
        return e;
      }, env.modelUrl);
      assert.equal(out.window, 256);
      assert.ok(out.events >= 1, `no contextoverflow in ${JSON.stringify(out.usages)}`);
      assert.equal(out.handler, out.events);
      assert.ok(out.afterOverflow <= out.window);
      assert.ok(out.afterOverflow >= out.initial, 'the initial prompts stay');
      assert.ok(Math.max(...out.usages.slice(0, -1)) >= out.afterOverflow || out.usages.length === 1);
      assert.equal(out.tooBig?.name, 'QuotaExceededError');
      assert.ok(out.tooBig.requested > out.window, JSON.stringify(out.tooBig));
      assert.equal(out.tooBig.quota, out.window);
      assert.equal(out.after, out.before); // nothing removed
      assert.ok(out.measureBig > 256);
    });

    it('leaves no errors on the page', async () => {
      assert.deepEqual(await env.page.problems(), []);
    });
  });

  // responseConstraint needs structured output in the core package (issue 16: generate option `responseFormat`).
  describe('Prompt API polyfill: responseConstraint (needs issue 16)', { skip: NEEDS_16 }, () => {
    const env = new PageEnv();
    before(async () => {
      await env.start();
      await env.page.evaluate(async (url) => {
        window.pa = await import('/pkg/dist/prompt_api.js');
        window.pa.configure({ modelUrl: url });
        window.s = await window.pa.LanguageModel.create({ samplingMode: 'most-predictable' });
      }, env.modelUrl);
    });
    after(() => env.stop());

    it('a JSON Schema constraint gives JSON matching it', async () => {
      const schema = { type: 'object', properties: { rating: { type: 'integer', minimum: 0, maximum: 5 } }, required: ['rating'],
        additionalProperties: false };
      const text = await env.page.evaluate((sc) => window.s.prompt('Rate this review from 0 to 5: "The food was delicious."',
        { responseConstraint: sc }), schema);
      const v = JSON.parse(text);
      assert.deepEqual(Object.keys(v), ['rating']);
      assert.ok(Number.isInteger(v.rating) && v.rating >= 0 && v.rating <= 5);
    });

    it('a RegExp constraint gives text matching it; omitResponseConstraintInput measures less', async () => {
      const out = await env.page.evaluate(async () => {
        const re = /(yes|no)/;
        const text = await window.s.prompt('Is Paris in France? Answer yes or no.', { responseConstraint: re });
        const withInput = await window.s.measureContextUsage('Is Paris in France?', { responseConstraint: re });
        const without = await window.s.measureContextUsage('Is Paris in France?', { responseConstraint: re, omitResponseConstraintInput: true });
        return { text, withInput, without };
      });
      assert.match(out.text, /^(yes|no)$/);
      assert.ok(out.without < out.withInput);
    });
  });
});
