// Shared pieces of the end-to-end tests: the browsers (browsers.mjs: Chromium, Firefox, WebKit), the test page,
// and deterministic test data.

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { launch } from './browsers.mjs';

export { REPO, MODELS_DIR, TestServer } from './server.mjs';
export { BROWSERS, ALL_BROWSERS, FEATURES, SAFARI_WEBKIT_FEATURES, browserMissing } from './browsers.mjs';
import { REPO } from './server.mjs';

export const DIST = path.join(REPO, 'pkg', 'dist');

/** Browser `name` (default chromium) with a fresh profile (so a fresh IndexedDB), removed again by close(). */
export async function launchBrowser(name = 'chromium', opts = {}) {
  if (!fs.existsSync(path.join(DIST, 'index.js'))) {
    throw new Error(`${DIST}/index.js is missing: build the package first (cd pkg && npm run build, or make pkg)`);
  }
  return launch(name, opts);
}

/**
 * Opens the test page (tests/e2e/pages/harness.html), which imports the package from `pkgPath` and exposes it and
 * the helpers of pages/harness.js on `window`. `page.problems()` gives the page's errors (browsers.mjs).
 * @param {Awaited<ReturnType<typeof launch>>} browser
 * @param {string} origin @param {string} [pkgPath] where dist/ is served
 */
export async function openPage(browser, origin, pkgPath = '/pkg/dist/') {
  const page = await browser.newPage(`${origin}/tests/e2e/pages/harness.html?pkg=${encodeURIComponent(pkgPath)}`);
  await waitReady(page);
  return page;
}

/** Waits for the test page's module to finish starting; throws its error if it failed. */
export async function waitReady(page) {
  await page.waitForFunction(() => /** @type {any} */ (window).harnessReady === true || !!/** @type {any} */ (window).harnessError);
  const err = await page.evaluate(() => /** @type {any} */ (window).harnessError ?? null);
  if (err) throw new Error(`test page failed to start: ${err}`);
}

/** Deterministic pseudo-random bytes (xorshift32), so a failing test can be rerun on the same data. */
export function seededBytes(n, seed) {
  const out = Buffer.alloc(n);
  const words = new Uint32Array(out.buffer, out.byteOffset, Math.floor(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < n; i++) out[i] = i & 0xff;
  return out;
}

export const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/** Asserts that progress events are monotone in `loaded`, with a constant total. Returns the last one. */
export function checkProgress(assert, events, total) {
  assert.ok(events.length > 0, 'no progress events');
  let last = -1;
  for (const e of events) {
    assert.equal(e.total, total, `progress total ${e.total} != ${total}`);
    assert.ok(e.loaded >= last, `progress went back from ${last} to ${e.loaded}`);
    assert.ok(e.loaded <= total, `progress ${e.loaded} beyond total ${total}`);
    last = e.loaded;
  }
  return events[events.length - 1];
}
