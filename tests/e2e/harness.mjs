// Shared pieces of the end-to-end tests: headless Chromium (playwright-core, the system chromium), the test page,
// and deterministic test data.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { chromium } from 'playwright-core';

export { REPO, MODELS_DIR, TestServer } from './server.mjs';
import { REPO } from './server.mjs';

export const DIST = path.join(REPO, 'pkg', 'dist');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the networking flags Chromium keeps calling hosts this closed network refuses (see TOOLCHAIN.md).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ...(process.env.POCKETLM_CHROMIUM_ARGS ?? '').split(' ').filter(Boolean)];

/** A headless Chromium with a fresh profile (so a fresh IndexedDB), removed again by close(). */
export async function launchBrowser() {
  if (!fs.existsSync(path.join(DIST, 'index.js'))) {
    throw new Error(`${DIST}/index.js is missing: build the package first (cd pkg && npm run build, or make pkg)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-e2e-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the test page (tests/e2e/pages/harness.html), which imports the package from `pkgPath` and exposes it and
 * the helpers of pages/harness.js on `window`. Page errors and console errors are collected in `page.problems`.
 * @param {import('playwright-core').BrowserContext} context
 * @param {string} origin @param {string} [pkgPath] where dist/ is served
 */
export async function openPage(context, origin, pkgPath = '/pkg/dist/') {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Chromium logs every failed fetch ("Failed to load resource"); the tests provoke those on purpose.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
    if (process.env.POCKETLM_E2E_VERBOSE) console.log(`[page] ${m.text()}`);
  });
  await page.goto(`${origin}/tests/e2e/pages/harness.html?pkg=${encodeURIComponent(pkgPath)}`);
  await page.waitForFunction(() => /** @type {any} */ (window).harnessReady === true || /** @type {any} */ (window).harnessError);
  const err = await page.evaluate(() => /** @type {any} */ (window).harnessError);
  if (err) throw new Error(`test page failed to start: ${err}`);
  return Object.assign(page, { problems });
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
