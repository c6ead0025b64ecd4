// End-to-end tests of the demo site (www/) in headless Chromium, driven by playwright-core.
//
// - "tools.js / format.js": the page's pure helpers under node (sentiment parsing, sizes, speed).
// - "demo page (fake engine)": the UI mechanics against www/dev/fake-pocketlm.js (`?fake=1`), which needs only
//   Chromium and the test server: progress, cancel and resume, streaming, stop, regenerate, tools, offline reload
//   through the service worker, cache manager, same-origin requests, ?model= and URL checks at phone width.
// - "demo page (engine)": the same walk-through on the real package (pkg/dist, built by `make pkg`) and the real
//   default model. Skipped with a printed reason when pkg/dist/index.js or the model is missing; with
//   POCKETLM_E2E_ENGINE=1 a missing prerequisite is a failure instead.
// Screenshots of the chat and the tools at desktop (1280x800) and phone (375x740) go to target/screenshots/.
//
// Chromium only (not in the per-browser loop of browsers.mjs): the walk-through needs what only the Playwright
// driver gives here — every request of the page, its workers and its service worker (the same-origin and no-model-
// request checks), ARIA snapshots, real keyboard input and screenshots; classic WebDriver (WebKit) has none of the
// request events. The package's own behaviour in Firefox and WebKit (load, progress, greedy text, offline reload,
// resume, abort, errors, threads) is covered by engine/store/protocol/gemma3.test.mjs in every browser.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = path.join(ROOT, 'target/screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SERVER = path.join(ROOT, 'tests/e2e/server.mjs');
const PKG_ENTRY = path.join(ROOT, 'pkg/dist/index.js');
const PKG_WASM = path.join(ROOT, 'pkg/dist/wasm/simd128/pocketlm_bg.wasm'); // `make pkg` puts the engine here
const MODELS = process.env.POCKETLM_MODELS
  ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'pocketlm/models');
const MODEL_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf';
const REQUIRE_ENGINE = process.env.POCKETLM_E2E_ENGINE === '1';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };

const { parseSentiment, sentimentMessages, rewriteMessages, TONES } = await import(pathToFileURL(path.join(ROOT, 'www/tools.js')));
const { formatBytes, formatDuration, RateMeter } = await import(pathToFileURL(path.join(ROOT, 'www/format.js')));

// ---------------------------------------------------------------------------------------------------- pure helpers

describe('tools.js / format.js', () => {
  test('parseSentiment reads the label from decorated, verbose and negated answers', () => {
    const cases = [
      ['Positive', 'positive'],
      ['negative.', 'negative'],
      ['  **Neutral**\n', 'neutral'],
      ['Sentiment: POSITIVE', 'positive'],
      ['The sentiment of this text is negative.', 'negative'],
      ['positively glowing', 'positive'],
      ['Negative. The writer is not happy about the delay.', 'negative'],
      ['It is not negative, it is positive.', 'positive'],
      ['Neither positive nor negative.', 'neutral'],
      ['Mixed', 'neutral'],
      ['Happy!', 'positive'], // no label word: falls back to an obvious adjective
      ['terrible', 'negative'],
      ['The text could be positive, negative or neutral.', null], // an echo of the question is no answer
      ['', null],
      ['I cannot tell.', null],
      [undefined, null],
    ];
    for (const [answer, want] of cases) assert.equal(parseSentiment(answer), want, `answer ${JSON.stringify(answer)}`);
  });

  test('tool prompts carry the text and the requested tone', () => {
    const s = sentimentMessages('  I love it  ');
    assert.equal(s[0].role, 'system');
    assert.match(s[1].content, /I love it/);
    for (const tone of Object.keys(TONES)) {
      const r = rewriteMessages('hello there', tone);
      assert.ok(r[0].content.includes(TONES[tone]), tone);
      assert.match(r[1].content, /hello there$/);
    }
  });

  test('sizes, durations and transfer speed', () => {
    assert.equal(formatBytes(98_362_432), '98.4 MB');
    assert.equal(formatBytes(10_737_418_240), '10.74 GB');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatDuration(7.4), '7 s');
    assert.equal(formatDuration(125), '2 min 05 s');
    const m = new RateMeter(3000);
    assert.ok(Number.isNaN(m.rate()));
    m.add(0, 0);
    m.add(5e6, 1000);
    m.add(10e6, 2000);
    assert.equal(m.rate(), 5e6); // 10 MB in 2 s
    m.add(1e6, 2100); // a new phase starts from zero: old samples must not give a negative speed
    assert.ok(Number.isNaN(m.rate()));
  });
});

// ---------------------------------------------------------------------------------------------------- browser runs

/** Why a browser suite cannot run here, or null. */
function missing({ engine }) {
  if (!fs.existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
  if (!fs.existsSync(SERVER)) return 'tests/e2e/server.mjs is missing';
  if (engine && !fs.existsSync(PKG_ENTRY)) return 'pkg/dist/index.js is missing: build the package with `make pkg`';
  if (engine && !fs.existsSync(PKG_WASM)) return 'pkg/dist has no wasm engine (dist/wasm/simd128): build it with `make pkg`';
  if (engine && !fs.existsSync(path.join(MODELS, MODEL_FILE))) return `${MODEL_FILE} is not in ${MODELS}: run \`make models\``;
  return null;
}

/** { skip: reason } normally; with POCKETLM_E2E_ENGINE=1 a missing prerequisite is { fail: reason } instead. */
function gate(name, opts) {
  const browsers = (process.env.POCKETLM_BROWSERS ?? 'chromium').split(',').map((x) => x.trim());
  if (!browsers.includes('chromium')) return { skip: 'chromium is not in POCKETLM_BROWSERS (this suite is Chromium only)' };
  const reason = missing(opts);
  if (!reason) return { skip: false };
  if (REQUIRE_ENGINE) return { skip: false, fail: reason };
  console.log(`skipping "${name}": ${reason}`);
  return { skip: reason };
}

/** The project's test server (repository root, models under /models/), cross-origin isolated like `make demo`. */
async function startDemoServer() {
  const { TestServer } = await import(pathToFileURL(SERVER));
  const srv = await new TestServer({ root: ROOT, mounts: { '/models/': MODELS }, isolation: true }).start();
  return { srv, origin: srv.origin, stop: () => srv.stop(), start: () => srv.start(), close: () => srv.stop() };
}

async function launch(viewport) {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-demo-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport,
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Records every change of the load progress bar's value into window.__progress (replacing earlier records). */
async function observeProgress(page) {
  await page.evaluate(() => {
    const bar = document.getElementById('load-progress');
    window.__progress = [];
    window.__progressObserver?.disconnect();
    window.__progressObserver = new MutationObserver(() => {
      window.__progress.push({
        value: bar.value, max: bar.max,
        phase: document.getElementById('progress-phase').textContent,
        detail: document.getElementById('progress-detail').textContent,
      });
    });
    window.__progressObserver.observe(bar, { attributes: true, attributeFilter: ['value', 'max'] });
  });
}

function assertRises(samples, what) {
  const rises = samples.filter((p, i) => i > 0 && p.value > samples[i - 1].value);
  assert.ok(rises.length >= 2, `${what}: the progress bar should move forward: ${JSON.stringify(samples.slice(0, 12))}`);
  assert.ok(samples.every((p, i) => i === 0 || p.value >= samples[i - 1].value), `${what}: progress went backwards`);
}

/** Resolves when the page's UI is idle again (no generation running). */
async function waitIdle(page, timeout) {
  await page.waitForFunction(() => document.getElementById('messages').getAttribute('aria-busy') === 'false'
    && document.getElementById('tool-output').getAttribute('aria-busy') !== 'true', null, { timeout });
}

/** Starts recording the lengths the last assistant reply goes through while it streams. */
async function recordReplyGrowth(page) {
  await page.evaluate(() => {
    window.__growth = [];
    window.__growthObserver?.disconnect();
    const box = document.getElementById('messages');
    window.__growthObserver = new MutationObserver(() => {
      const replies = box.querySelectorAll('.msg.assistant .text');
      const last = replies[replies.length - 1];
      const n = last ? last.textContent.length : 0;
      if (window.__growth[window.__growth.length - 1] !== n) window.__growth.push(n);
    });
    window.__growthObserver.observe(box, { subtree: true, childList: true, characterData: true });
  });
}

function assertGrew(lengths, what) {
  assert.ok(lengths.length >= 3, `${what}: expected the text to arrive in several pieces, saw lengths ${lengths}`);
  for (let i = 1; i < lengths.length; i++) {
    assert.ok(lengths[i] >= lengths[i - 1], `${what}: the text shrank while streaming (${lengths})`);
  }
  assert.ok(lengths[lengths.length - 1] > lengths[0], `${what}: the text never grew (${lengths})`);
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/**
 * The whole walk-through a user makes. `fake` selects the scripted engine; timeouts are generous because the real
 * engine shares two CPU cores with builds (no assertion depends on how long anything takes).
 */
async function walkThrough({ fake }) {
  const mode = fake ? 'fake' : 'engine';
  const slow = fake ? 20_000 : 600_000;
  const server = await startDemoServer();
  const browser = await launch(DESKTOP);
  const requests = []; // every request, in order (the same URL can appear several times)
  const problems = [];
  const page = browser.context.pages()[0] ?? await browser.context.newPage();
  try {
    // The context sees the page's, its workers' and the service worker's requests; page.on('request') is kept too
    // so nothing the page itself asks for can be missed. Duplicates do not matter for the checks below.
    browser.context.on('request', (r) => requests.push(r.url()));
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });

    await page.goto(`${server.origin}/www/${fake ? '?fake=1' : ''}`);
    await page.waitForFunction(() => !document.getElementById('load-btn').disabled, null, { timeout: 30_000 });
    assert.match(await page.textContent('#status'), /nothing you type leaves your device/);

    // ---- load: Cancel part-way keeps the partial download, Load again resumes it; the progress bar is observed
    // at every change of its value. The server paces the model file so there is time to press Cancel.
    const modelPath = `/models/${MODEL_FILE}`;
    server.srv.configure(modelPath, { bytesPerSecond: 20e6 });
    await observeProgress(page);
    await page.getByRole('button', { name: 'Load model' }).click();
    await page.waitForFunction(() => document.getElementById('load-progress').value > 12e6, null, { timeout: slow });
    assert.equal(await page.isVisible('#cancel-btn'), true);
    await page.click('#cancel-btn');
    await page.waitForSelector('#load-error:not([hidden])', { timeout: 30_000 });
    assert.match(await page.textContent('#load-error'), /cancelled/i);
    assert.equal(await page.isEnabled('#load-btn'), true);
    const partial = page.locator('.cache-item', { hasText: MODEL_FILE });
    await page.waitForFunction(() => /partial/.test(document.getElementById('cache-list').textContent), null, { timeout: 10_000 });
    assert.match(await partial.textContent(), /partial/);
    const cancelled = await page.evaluate(() => window.__progress);
    assertRises(cancelled.filter((p) => p.phase === 'Downloading'), 'download before Cancel');

    server.srv.resetBehavior(modelPath);
    server.srv.resetStats(modelPath);
    await observeProgress(page);
    await page.getByRole('button', { name: 'Load model' }).click();
    await page.waitForFunction(() => /^Ready/.test(document.getElementById('status-engine').textContent)
      || !document.getElementById('load-error').hidden, null, { timeout: slow });
    assert.equal(await page.isHidden('#load-error'), true, `load failed: ${await page.textContent('#load-error')}`);
    const progress = await page.evaluate(() => window.__progress);
    const download = progress.filter((p) => p.phase === 'Downloading');
    assertRises(download, 'resumed download');
    assert.ok(download[0].value > 0, `the second load resumes instead of starting over: ${JSON.stringify(download[0])}`);
    assert.ok(download.some((p) => /\d+\.\d \/ \d+\.\d MB/.test(p.detail)), 'progress shows MB done / total');
    if (!fake) {
      const ranges = server.srv.stats(modelPath).log.map((e) => e.range).filter(Boolean);
      assert.ok(ranges.length > 0 && !ranges.some((r) => /^bytes=0-/.test(r)),
        `the resumed download asks only for the missing bytes: ${ranges}`);
    }
    const status = await page.textContent('#status-engine');
    assert.match(status, /(relaxed SIMD|SIMD128) · \d+ threads?/, `status names the backend and threads: ${status}`);
    assert.match(await page.textContent('#model-info'), /Context\s*[\d,]+ tokens/);

    // ---- chat: greedy, short; Enter sends; the reply streams in pieces
    await page.click('#settings summary');
    await page.focus('#temperature');
    await page.keyboard.press('Home'); // keyboard-operable slider: Home = 0
    assert.equal(await page.textContent('#temperature-out'), '0.00');
    await page.fill('#max-tokens', '40');
    await page.click('#settings summary');

    await page.fill('#chat-input', 'first line');
    await page.focus('#chat-input');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('second line');
    assert.equal(await page.inputValue('#chat-input'), 'first line\nsecond line', 'Shift+Enter adds a new line');
    assert.equal(await page.locator('.msg.user').count(), 0, 'Shift+Enter must not send');

    await page.fill('#chat-input', 'What is the capital of France?');
    await recordReplyGrowth(page);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.msg.assistant');
    await waitIdle(page, slow);
    const lastReply = page.locator('.msg.assistant').last();
    const reply = await page.textContent('.msg.assistant .text');
    assertGrew(await page.evaluate(() => window.__growth), 'chat reply');
    assert.match(reply, /Paris/, `greedy answer to the capital question: ${JSON.stringify(reply)}`);
    assert.match(await page.textContent('#stat-speed'), /^\d+(\.\d)? tok\/s$/);
    const ctx = /context ([\d,]+) \/ ([\d,]+) tokens/.exec(await page.textContent('#stat-context'));
    assert.ok(ctx && Number(ctx[1].replace(/,/g, '')) > 0, 'context used is shown');
    assert.equal(await page.inputValue('#chat-input'), '', 'the input is emptied after sending');

    // ---- stop: a long reply is cut off, stays put, and the UI is usable again
    await page.click('#settings summary');
    await page.fill('#max-tokens', '400');
    await page.click('#settings summary');
    await page.fill('#chat-input', 'Tell me a long story about a dragon who collects stories.');
    await page.click('#send-btn');
    await page.waitForFunction(() => {
      const r = document.querySelectorAll('.msg.assistant .text');
      return r.length === 2 && r[1].textContent.length > 40;
    }, null, { timeout: slow });
    assert.equal(await page.isVisible('#stop-btn'), true);
    await page.click('#stop-btn');
    await waitIdle(page, slow);
    const stopped = await lastReply.locator('.text').textContent();
    await page.waitForTimeout(fake ? 500 : 2000); // had the stream kept going, pieces would arrive in this time
    assert.equal(await lastReply.locator('.text').textContent(), stopped, 'reply keeps growing after Stop');
    assert.match(await lastReply.textContent(), /Stopped\./);
    assert.equal(await page.isVisible('#send-btn'), true);
    assert.equal(await page.isHidden('#stop-btn'), true);
    assert.equal(await page.isEnabled('#regen-btn'), true);
    await page.fill('#chat-input', 'x');
    assert.equal(await page.isEnabled('#send-btn'), true, 'Send is usable again after Stop');
    await page.fill('#chat-input', '');

    // ---- regenerate the stopped reply, short this time
    await page.click('#settings summary');
    await page.fill('#max-tokens', '24');
    await page.click('#settings summary');
    await recordReplyGrowth(page);
    await page.click('#regen-btn');
    await page.waitForFunction(() => document.getElementById('messages').getAttribute('aria-busy') === 'true', null, { timeout: 10_000 }).catch(() => {});
    await waitIdle(page, slow);
    assert.equal(await page.locator('.msg.assistant').count(), 2, 'regenerate replaces the last reply');
    assert.doesNotMatch(await lastReply.textContent(), /Stopped\./);
    assert.ok((await lastReply.locator('.text').textContent()).trim().length > 0);

    await page.click('#chat-input');
    await shot(page, `demo-${mode}-chat-desktop`);

    // ---- private tools: tabs by keyboard, sentiment label
    await page.focus('#tab-chat');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.getAttribute('#tab-tools', 'aria-selected'), 'true');
    assert.equal(await page.isVisible('#panel-tools'), true);
    await page.fill('#tool-input', 'I absolutely love this phone. The battery lasts two days and the camera is wonderful!');
    await page.click('#tool-sentiment');
    await page.waitForSelector('#sentiment-badge:not([hidden])', { timeout: slow });
    await waitIdle(page, slow);
    const label = (await page.textContent('#sentiment-badge')).trim();
    assert.ok(['positive', 'negative', 'neutral'].includes(label), `sentiment label: ${label} (${await page.textContent('#tool-output')})`);
    if (fake) assert.equal(label, 'positive');
    await shot(page, `demo-${mode}-tools-desktop`);

    // ---- phone width: nothing overflows sideways; screenshots of both tabs
    await page.setViewportSize(PHONE);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px at 375px`);
    await page.locator('.tabs').scrollIntoViewIfNeeded();
    await page.evaluate(() => document.querySelector('.tabs').scrollIntoView({ block: 'start' }));
    await shot(page, `demo-${mode}-tools-phone`);
    await page.click('#tab-chat');
    await page.evaluate(() => document.querySelector('.tabs').scrollIntoView({ block: 'start' }));
    await shot(page, `demo-${mode}-chat-phone`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, `demo-${mode}-top-phone`);
    await page.setViewportSize(DESKTOP);

    // ---- offline: the service worker serves the site's files (and the package modules the page imports) when the
    // server is gone. The package's worker lives outside the service worker's scope (/www/), so running a model
    // offline is not expected here.
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload(); // now controlled by the service worker, which caches what this visit fetches
    await page.waitForFunction(() => !document.getElementById('load-btn').disabled, null, { timeout: 30_000 });
    assert.ok(await page.evaluate(() => !!navigator.serviceWorker.controller), 'the service worker controls the page');
    if (!fake) {
      // A second load comes from IndexedDB, with no request for the model file.
      const before = requests.length;
      await page.click('#load-btn');
      await page.waitForFunction(() => /^Ready/.test(document.getElementById('status-engine').textContent)
        || !document.getElementById('load-error').hidden, null, { timeout: slow });
      assert.equal(await page.isHidden('#load-error'), true, `reload from cache: ${await page.textContent('#load-error')}`);
      const again = requests.slice(before).filter((u) => u.includes('/models/'));
      assert.deepEqual(again, [], 'a cached model is loaded without the network');
    }
    await server.stop();
    try {
      await page.reload();
      await page.waitForFunction(() => document.getElementById('status-engine').textContent !== 'Starting…', null, { timeout: 30_000 });
      assert.match(await page.textContent('h1'), /pocketlm/);
      assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('.main')).display), 'flex', 'styles offline');
      if (fake) {
        // The development stand-in is never cached, so offline it is simply missing.
        assert.match(await page.textContent('#status-engine'), /Engine unavailable/);
      } else {
        assert.equal(await page.isEnabled('#load-btn'), true, 'the package module comes from the service worker cache');
      }
    } finally {
      await server.start();
    }
    await page.goto(`${server.origin}/www/${fake ? '?fake=1' : ''}`);
    await page.waitForFunction(() => !document.getElementById('load-btn').disabled, null, { timeout: 30_000 });

    // ---- cache manager: the stored model is listed as complete, then deleted
    const item = page.locator('.cache-item', { hasText: MODEL_FILE });
    await item.waitFor({ timeout: 10_000 });
    assert.match(await item.textContent(), /complete/);
    assert.match(await item.textContent(), /\d+(\.\d+)? MB/);
    await item.getByRole('button', { name: /Delete/ }).click();
    await item.waitFor({ state: 'detached', timeout: 30_000 });
    if (!fake) {
      const left = await page.evaluate(async () => (await import('/pkg/dist/index.js')).ModelCache.list());
      assert.ok(!left.some((e) => e.url.endsWith(MODEL_FILE)), `still stored after delete: ${JSON.stringify(left)}`);
    }

    // ---- privacy: every request went to this origin; the default path never touches the fake engine
    const all = [...new Set(requests)];
    const foreign = all.filter((u) => !sameOrigin(u, server.origin));
    assert.deepEqual(foreign, [], 'requests to other origins');
    if (!fake) {
      assert.ok(!all.some((u) => u.includes('/www/dev/')), 'the real page must not load the fake engine');
      assert.ok(all.some((u) => u.includes(`/models/${MODEL_FILE}`)), 'the model came from the same origin');
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.close();
  }
}

/** Same origin as the server; data: URLs make no request, blob: URLs carry their creator's origin. */
function sameOrigin(url, origin) {
  if (url.startsWith('data:')) return true;
  const u = url.startsWith('blob:') ? url.slice(5) : url;
  try {
    return new URL(u).origin === origin;
  } catch {
    return false;
  }
}

describe('demo page (fake engine)', () => {
  const g = gate('demo page (fake engine)', { engine: false });
  test('load (cancel, resume), stream, stop, regenerate, sentiment, offline, cache delete; only same-origin requests', { skip: g.skip, timeout: 120_000 }, async () => {
    if (g.fail) assert.fail(g.fail);
    await walkThrough({ fake: true });
  });
  test('?model= prefills without fetching; non-http URLs are refused; no sideways scroll at 375px', { skip: g.skip, timeout: 60_000 }, async () => {
    if (g.fail) assert.fail(g.fail);
    await loadControls();
  });
});

/** ?model= prefills without fetching; bad URLs are refused. */
async function loadControls() {
  const server = await startDemoServer();
  const browser = await launch(PHONE);
  const requests = [];
  const page = browser.context.pages()[0] ?? await browser.context.newPage();
  try {
    browser.context.on('request', (r) => requests.push(r.url()));
    const foreign = 'https://models.example.org/other.gguf';
    await page.goto(`${server.origin}/www/?fake=1&model=${encodeURIComponent(foreign)}`);
    await page.waitForFunction(() => !document.getElementById('load-btn').disabled, null, { timeout: 30_000 });
    assert.equal(await page.inputValue('#preset'), 'custom');
    assert.equal(await page.inputValue('#model-url'), foreign);
    assert.ok(!requests.some((u) => u.startsWith(foreign)), `a ?model= link must not start a download: ${requests}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px at 375px`);

    await page.fill('#model-url', 'javascript:alert(1)');
    await page.click('#load-btn');
    assert.equal(await page.isVisible('#load-error'), true, 'a non-http(s) URL is refused');

    await page.selectOption('#preset', 'smollm2');
    assert.equal(await page.isHidden('#url-field'), true);

    // Every control a screen reader reaches has a name (both tabs, settings and stored models open).
    await page.click('#settings summary');
    await page.click('#cache-panel summary');
    for (const tab of ['#tab-chat', '#tab-tools']) {
      await page.click(tab);
      const tree = await page.locator('body').ariaSnapshot();
      const unnamed = tree.split('\n').filter((l) => /^\s*- (button|textbox|combobox|slider|spinbutton|checkbox|tab|link|progressbar)\b(?! ")/.test(l));
      assert.deepEqual(unnamed, [], `controls without an accessible name (${tab}):\n${tree}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

describe('demo page (engine)', () => {
  const g = gate('demo page (engine)', { engine: true });
  test('the same walk-through on pkg/dist and the real default model', { skip: g.skip, timeout: 1_800_000 }, async () => {
    if (g.fail) assert.fail(g.fail);
    await walkThrough({ fake: false });
  });
});
