// Gemma 3 270M (Q4_K_M: Q8_0 / Q5_0 / Q4_K / Q6_K tensors, 262144-token SentencePiece vocabulary) in each browser of POCKETLM_BROWSERS through
// the npm package, against the independent numpy reference (scripts/fixtures/golden_gemma3.py ->
// $POCKETLM_FIXTURES/golden_gemma3.json: 4 prompts, 32 greedy ids each with the reference's top-1 margins).
//
// The same rule as tests/golden_gemma3.rs natively: teacher-forced, at every one of the 32 steps of each prompt our
// greedy token must be the reference's unless the reference's own top-1 margin is below the fixture's
// `top1_margin_for_agreement` (a near-tie that activation rounding may flip), and at least `top1_agree_fraction_min`
// of all steps must agree. The package takes text, so step j's context is the prompt text followed by the
// detokenized greedy_ids[0..j]; the test first checks with lm.tokenize that this text gives exactly the reference's
// prompt_ids + greedy_ids[0..j] (else the step is not comparable and is counted as such), then asks complete() for one
// greedy token and compares its text with the reference token's text (the engine's prompt cache makes each step a
// one-token prefill). A free-running complete() of 32 tokens must equal the reference's text up to its first
// near-tie.
//
// Needs pkg/dist/wasm (make pkg), the model (make models) and the fixture (make fixtures). Without them the suite is
// skipped with the reason printed; with POCKETLM_E2E_ENGINE=1 (make test-e2e) it fails instead.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser, openPage, TestServer, MODELS_DIR, REPO, DIST, BROWSERS } from './harness.mjs';

const REQUIRED = process.env.POCKETLM_E2E_ENGINE === '1';
const MODEL_NAME = 'gemma-3-270m-q4_k_m.gguf';
const MODEL_FILE = path.join(MODELS_DIR, MODEL_NAME);
const FIXTURE = path.join(process.env.POCKETLM_FIXTURES ?? path.join(REPO, 'target', 'fixtures'), 'golden_gemma3.json');

function missing() {
  if (!fs.existsSync(path.join(DIST, 'wasm', 'simd128', 'pocketlm_bg.wasm'))) {
    return `${DIST}/wasm/simd128 is missing: build the package with the engine (make pkg)`;
  }
  if (!fs.existsSync(MODEL_FILE)) return `${MODEL_FILE} is missing: run make models`;
  if (!fs.existsSync(FIXTURE)) return `${FIXTURE} is missing: run make fixtures`;
  return null;
}

const reason = missing();
if (reason && REQUIRED) {
  it('Gemma 3 end-to-end prerequisites (POCKETLM_E2E_ENGINE=1)', () => assert.fail(reason));
} else if (reason) {
  console.log(`Gemma 3 e2e tests skipped: ${reason} (set POCKETLM_E2E_ENGINE=1 to make this a failure)`);
  it('Gemma 3 end to end', { skip: reason }, () => {});
} else {
  for (const name of BROWSERS) describe(`Gemma 3 270M against the numpy reference [${name}]`, () => {
    const golden = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));
    const tol = golden.recommended_tolerance;
    let browser;
    let server;
    let page;

    before(async () => {
      server = await new TestServer({ mounts: { '/models/': MODELS_DIR } }).start();
      browser = await launchBrowser(name);
      page = await openPage(browser, server.origin);
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    it('loads through the package', async () => {
      const r = await page.evaluate((u) => window.load(u, { contextSize: 512 }, 'gemma'), `${server.origin}/models/${MODEL_NAME}`);
      assert.ok(r.ok, `load failed: ${JSON.stringify(r.error)}`);
      assert.equal(r.value.architecture, 'gemma3');
      assert.equal(r.value.vocabSize, golden.vocab);
    });

    it('the fixture has 4 prompts of 32 greedy tokens', () => {
      assert.equal(golden.prompts.length, 4);
      for (const p of golden.prompts) assert.equal(p.greedy_ids.length, 32, p.name);
    });

    let matched = 0;
    let compared = 0;
    for (const [i, name] of ['story', 'capital', 'chat', 'code'].entries()) {
      it(`greedy tokens of "${name}" equal the reference's except at near-ties`, async () => {
        const fx = golden.prompts[i];
        assert.equal(fx.name, name);
        const out = await page.evaluate(async (f) => {
          const lm = window.models.gemma;
          const greedy = { temperature: 0, repeatPenalty: 1 };
          const same = (a, b) => a.length === b.length && a.every((x, k) => x === b[k]);
          // Reference token texts: the detokenized prefixes of its greedy ids.
          const refText = [];
          for (let k = 0; k <= f.greedy_ids.length; k++) refText.push(await lm.detokenize(f.greedy_ids.slice(0, k)));
          const promptIds = Array.from(await lm.tokenize(f.text, { addSpecial: true }));
          const free = await lm.complete(f.text, { ...greedy, maxTokens: f.greedy_ids.length });
          const steps = [];
          for (let j = 0; j < f.greedy_ids.length; j++) {
            const context = f.text + refText[j];
            const ids = Array.from(await lm.tokenize(context, { addSpecial: true }));
            if (!same(ids, [...f.prompt_ids, ...f.greedy_ids.slice(0, j)])) {
              steps.push({ j, comparable: false });
              continue;
            }
            const piece = await lm.complete(context, { ...greedy, maxTokens: 1 });
            const want = refText[j + 1].startsWith(refText[j]) ? refText[j + 1].slice(refText[j].length) : null;
            steps.push({ j, comparable: want !== null, piece, want, prefilled: lm.lastStats.prefilledTokens });
          }
          return { promptIds, free, refText, steps };
        }, fx);

        // The package's prompt tokenization is the reference's (sentencepiece, BOS prepended).
        assert.deepEqual(out.promptIds, fx.prompt_ids, 'prompt tokenization');
        const tie = tol.top1_margin_for_agreement;
        let ok = 0;
        let n = 0;
        for (const s of out.steps) {
          if (!s.comparable) continue;
          n++;
          if (s.piece === s.want) ok++;
          else {
            assert.ok(fx.greedy_margins[s.j] < tie,
              `step ${s.j}: our token ${JSON.stringify(s.piece)}, the reference's ${JSON.stringify(s.want)} with margin ${fx.greedy_margins[s.j]}`);
          }
        }
        // Free-running greedy: equal to the reference's text up to the first step whose margin is a near-tie.
        let k = 0;
        while (k < fx.greedy_ids.length && out.free.startsWith(out.refText[k + 1])) k++;
        if (k < fx.greedy_ids.length) {
          assert.ok(fx.greedy_margins[k] < tie,
            `free-running greedy leaves the reference at step ${k} (margin ${fx.greedy_margins[k]}): ${JSON.stringify(out.free)}`);
        }
        console.log(`gemma3 ${name}: teacher-forced ${ok}/${n} comparable steps equal (of ${out.steps.length}); `
          + `free-running equal for ${k}/32 tokens: ${JSON.stringify(out.free)}`);
        // Tokenizing "prompt + detokenized ids" gives the same ids for ordinary text; require nearly every step.
        assert.ok(n >= out.steps.length - 2, `only ${n}/${out.steps.length} steps comparable`);
        matched += ok;
        compared += n;
      });
    }

    it('agrees with the reference on enough steps overall', () => {
      console.log(`gemma3: ${matched}/${compared} teacher-forced greedy tokens equal to the reference`);
      assert.ok(compared > 0);
      assert.ok(matched >= tol.top1_agree_fraction_min * compared, `only ${matched}/${compared} agree`);
    });

    it('leaves no errors on the page', async () => {
      assert.deepEqual(await page.problems(), []);
    });
  });
}
