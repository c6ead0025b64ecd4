// The three browser engines the e2e tests run in, behind one small interface:
//   chromium  /usr/bin/chromium through playwright-core (as before: CDP, persistent context in a fresh profile)
//   firefox   /usr/bin/firefox-esr through puppeteer-core over WebDriver BiDi (no geckodriver), fresh temp profile
//   webkit    WebKitGTK's MiniBrowser through /usr/bin/WebKitWebDriver (classic WebDriver over plain HTTP from node),
//             under xvfb-run (MiniBrowser has no headless mode); an automation session has ephemeral storage, so
//             every launch starts with an empty IndexedDB
//
//   const browser = await launch(name);                  // fresh profile, so a fresh IndexedDB
//   const page = await browser.newPage(url);              // navigates and waits for the load event
//   await page.evaluate((arg) => ..., arg);               // runs in the page, awaits a promise, returns plain data
//   await page.waitForFunction(() => cond, arg, { timeout });
//   await page.reload(); await page.goto(url); await page.problems(); await page.warnings(); await page.close();
//   await browser.close();                                // also removes the profile
//
// Problems = uncaught page errors, unhandled rejections and console errors (Chromium's and Firefox's from the driver's
// events, which include the page's workers; WebKit's from a recorder the page installs itself, see
// pages/harness.html: classic WebDriver has no console events, so WebKit sees the page's own errors only).
//
// Adding a test file that runs in every browser (the pattern of engine.test.mjs, store.test.mjs, ...):
//
//   import { BROWSERS, launch } from './browsers.mjs';
//   for (const name of BROWSERS) {
//     describe(`my feature [${name}]`, () => {
//       let browser; let page;
//       before(async () => { browser = await launch(name); page = await openPage(browser, origin); });
//       after(() => browser?.close());
//       it('does X', async () => { assert.equal(await page.evaluate(() => ...), ...); });
//     });
//   }
//
// POCKETLM_BROWSERS=chromium,firefox,webkit (the default) chooses the engines; a test that is inherently
// Chromium-specific says so and checks `name === 'chromium'`. What each engine supports is in FEATURES below (facts
// of the engine versions installed by scripts/setup.sh, checked by the tests, not assumed by the package).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';

export const ALL_BROWSERS = ['chromium', 'firefox', 'webkit'];
/** The engines to test, from POCKETLM_BROWSERS (comma-separated), default all three. */
export const BROWSERS = (process.env.POCKETLM_BROWSERS ?? ALL_BROWSERS.join(','))
  .split(',').map((s) => s.trim()).filter(Boolean);
for (const b of BROWSERS) {
  if (!ALL_BROWSERS.includes(b)) throw new Error(`POCKETLM_BROWSERS: unknown browser '${b}' (known: ${ALL_BROWSERS})`);
}

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
export const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER ?? '/usr/bin/WebKitWebDriver';
export const MINIBROWSER = process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

/**
 * What the installed engines support (Chromium 156, Firefox 153 ESR, WebKitGTK 2.50), and so which pocketlm build
 * each must get: relaxed SIMD (the relaxed and threads builds need it), a shared-memory threads build on a
 * cross-origin isolated page, navigator.storage.estimate (the quota check), Web Locks (cross-tab download lock).
 */
export const FEATURES = {
  chromium: { relaxedSimd: true, threads: true, storageEstimate: true, webLocks: true },
  firefox: { relaxedSimd: true, threads: true, storageEstimate: true, webLocks: true },
  webkit: { relaxedSimd: false, threads: false, storageEstimate: false, webLocks: true },
};

/**
 * Web platform features Safari (17+) has and WebKitGTK's MiniBrowser leaves off by default: navigator.storage
 * (estimate, persist) and the origin private file system. The e2e tests run WebKitGTK as it is (so the package's
 * fallbacks without them are tested); the bench switches them on, since wllama needs OPFS for its cache.
 */
export const SAFARI_WEBKIT_FEATURES = ['StorageAPI', 'StorageAPIEstimate', 'FileSystem', 'FileSystemWritableStream'];

/** Why `name` cannot run on this machine, or null. */
export function browserMissing(name) {
  const need = { chromium: [CHROMIUM], firefox: [FIREFOX], webkit: [WEBKIT_DRIVER, MINIBROWSER] }[name];
  const gone = need.filter((f) => !fs.existsSync(f));
  return gone.length ? `${gone.join(', ')} missing (make setup installs it)` : null;
}

// ------------------------------------------------------------------------------------------------------- chromium

// Without the networking flags Chromium keeps calling hosts this closed network refuses.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ...(process.env.POCKETLM_CHROMIUM_ARGS ?? '').split(' ').filter(Boolean)];

async function launchChromium(opts) {
  const { chromium } = await import('playwright-core');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-e2e-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ...(opts.viewport ? { viewport: opts.viewport } : {}),
  });
  return {
    name: 'chromium',
    context,
    async newPage(url) {
      const page = await context.newPage();
      const problems = [];
      const warnings = [];
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        // Chromium logs every failed fetch ("Failed to load resource"); the tests provoke those on purpose.
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
        if (m.type() === 'warning') warnings.push(m.text());
        if (process.env.POCKETLM_E2E_VERBOSE) console.log(`[page] ${m.text()}`);
      });
      if (url) await page.goto(url);
      return {
        raw: page,
        evaluate: (fn, arg) => page.evaluate(fn, arg),
        waitForFunction: (fn, arg, o = {}) => page.waitForFunction(fn, arg, { timeout: o.timeout ?? 30_000 }),
        goto: (u) => page.goto(u).then(() => {}),
        reload: () => page.reload().then(() => {}),
        problems: async () => [...problems],
        warnings: async () => [...warnings],
        close: () => page.close(),
      };
    },
    async close() {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// -------------------------------------------------------------------------------------------------------- firefox

async function launchFirefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  // puppeteer makes a fresh temporary profile (with its prefs that keep Firefox off the network) and removes it.
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    protocolTimeout: 3_600_000, // a long generation is one evaluate()
    extraPrefsFirefox: {
      'network.dns.disableIPv6': true,
      'browser.safebrowsing.update.enabled': false,
      // navigator.storage.persist() asks the user with a doorhanger and resolves only on their answer; nobody
      // answers in a headless test, so answer it as a user would (allow).
      'dom.storageManager.prompt.testing': true,
      'dom.storageManager.prompt.testing.allow': true,
    },
  });
  return {
    name: 'firefox',
    async newPage(url) {
      const page = await browser.newPage();
      page.setDefaultTimeout(0);
      const problems = [];
      const warnings = [];
      page.on('pageerror', (e) => problems.push(`pageerror: ${e?.message ?? e}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
        if (m.type() === 'warn' || m.type() === 'warning') warnings.push(m.text());
        if (process.env.POCKETLM_E2E_VERBOSE) console.log(`[page] ${m.text()}`);
      });
      if (url) await page.goto(url);
      // Values come back as JSON made in the page (like WebKit's): puppeteer's BiDi deserializer drops an object
      // that the result references twice (e.g. lm.lastStats and error.details.stats).
      const evaluate = async (fn, arg) => {
        const r = await page.evaluate(IN_PAGE, fn.toString(), arg === undefined ? null : JSON.stringify(arg));
        return fromPage(r);
      };
      return {
        raw: page,
        evaluate,
        waitForFunction: (fn, arg, o = {}) => page.waitForFunction(fn, { timeout: o.timeout ?? 30_000, polling: 50 }, arg),
        goto: (u) => page.goto(u).then(() => {}),
        reload: () => page.reload().then(() => {}),
        problems: async () => [...problems],
        warnings: async () => [...warnings],
        close: () => page.close(),
      };
    },
    close: () => browser.close(),
  };
}

// --------------------------------------------------------------------------------------------------------- webkit

/** A marker for `undefined` in values coming back through JSON (WebDriver would turn it into null). */
const UNDEF = '__pocketlm_undefined__';

// Runs the function source with one JSON argument in the page; resolves {ok, json} | {ok: false, error}.
const IN_PAGE_BODY = `const undef = ${JSON.stringify(UNDEF)};
return Promise.resolve().then(() => (0, eval)('(' + src + ')')(argJson === undefined || argJson === null ? undefined : JSON.parse(argJson)))
  .then((v) => ({ ok: true, json: v === undefined ? undef : JSON.stringify(v, (k, x) => (x === undefined ? undef : x)) }),
    (e) => ({ ok: false, error: String(e) + (e && e.stack ? '\\n' + e.stack : '') }));`;
// eslint-disable-next-line no-new-func
const IN_PAGE = new Function('src', 'argJson', IN_PAGE_BODY);
const EXEC_ASYNC = `const [src, argJson, done] = arguments; (function (src, argJson) { ${IN_PAGE_BODY} })(src, argJson).then(done);`;

/** The value of an IN_PAGE result, or throws the page's error. */
function fromPage(r) {
  if (!r.ok) throw new Error(`evaluate failed in the page: ${r.error}`);
  return r.json === UNDEF ? undefined : JSON.parse(r.json, (k, x) => (x === UNDEF ? undefined : x));
}

async function launchWebKit(opts) {
  const port = await freePort();
  // xvfb-run -a: a private X display (MiniBrowser is a GTK program and has no headless mode). The driver and the
  // browser are one process group, ended together.
  const proc = spawn('xvfb-run', ['-a', WEBKIT_DRIVER, `--port=${port}`], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  const keep = (d) => { log = (log + d).slice(-4000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const base = `http://127.0.0.1:${port}`;
  const call = async (method, p, body) => {
    const r = await fetch(base + p, {
      method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const j = await r.json();
    if (j?.value?.error) throw new Error(`WebKitWebDriver ${method} ${p}: ${j.value.error}: ${j.value.message}`);
    return j.value;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await call('GET', '/status'))?.ready !== undefined) break;
    } catch (e) {
      if (Date.now() > deadline) {
        process.kill(-proc.pid, 'SIGTERM');
        throw new Error(`WebKitWebDriver did not start: ${e.message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  let session;
  try {
    session = await call('POST', '/session', {
      capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: MINIBROWSER,
        args: ['--automation', ...(opts.webkitFeatures?.length ? [`--features=${opts.webkitFeatures.map((f) => `+${f}`).join(',')}`] : [])] } } },
    });
  } catch (e) {
    process.kill(-proc.pid, 'SIGTERM');
    throw new Error(`${e.message}\n${log}`);
  }
  const s = `/session/${session.sessionId}`;
  await call('POST', `${s}/timeouts`, { script: 3_600_000, pageLoad: 120_000 });
  const first = await call('GET', `${s}/window`);
  let current = first;
  let firstUsed = false;
  const use = async (handle) => {
    if (current !== handle) {
      await call('POST', `${s}/window`, { handle });
      current = handle;
    }
  };
  // One command at a time: pages share the session's current window.
  let chain = Promise.resolve();
  const serial = (fn) => {
    const p = chain.then(fn);
    chain = p.catch(() => {});
    return p;
  };
  const evaluateIn = (handle, fn, arg) => serial(async () => {
    await use(handle);
    const r = await call('POST', `${s}/execute/async`, {
      script: EXEC_ASYNC, args: [fn.toString(), arg === undefined ? null : JSON.stringify(arg)],
    });
    return fromPage(r);
  });
  return {
    name: 'webkit',
    async newPage(url) {
      const handle = await serial(async () => {
        if (!firstUsed) { firstUsed = true; return first; }
        const w = await call('POST', `${s}/window/new`, { type: 'tab' });
        return w.handle;
      });
      const page = {
        evaluate: (fn, arg) => evaluateIn(handle, fn, arg),
        async waitForFunction(fn, arg, o = {}) {
          const until = Date.now() + (o.timeout ?? 30_000);
          for (;;) {
            const v = await evaluateIn(handle, fn, arg).catch(() => false);
            if (v) return v;
            if (Date.now() > until) throw new Error(`waitForFunction timed out: ${fn}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        },
        goto: (u) => serial(async () => { await use(handle); await call('POST', `${s}/url`, { url: u }); }),
        reload: () => serial(async () => { await use(handle); await call('POST', `${s}/refresh`, {}); }),
        // The page's own recorder (pages/harness.html); a page without it reports nothing.
        problems: () => evaluateIn(handle, () => [...(window.__pocketlmProblems ?? [])]),
        warnings: () => evaluateIn(handle, () => [...(window.__pocketlmWarnings ?? [])]),
        close: () => serial(async () => {
          await use(handle);
          await call('DELETE', `${s}/window`);
          const left = await call('GET', `${s}/window/handles`);
          current = null;
          if (left.length) await use(left[0]);
        }),
      };
      if (url) await page.goto(url);
      return page;
    },
    async close() {
      try {
        await call('DELETE', s);
      } finally {
        try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
        await new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.once('exit', r); setTimeout(r, 5000); } });
      }
    },
  };
}

async function freePort() {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {any} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A browser with a fresh profile (empty storage).
 * @param {string} name one of ALL_BROWSERS
 * @param {{viewport?: {width: number, height: number}, webkitFeatures?: string[]}} [opts] webkitFeatures: WebKit
 *   features to switch on (MiniBrowser --features), e.g. SAFARI_WEBKIT_FEATURES
 */
export async function launch(name, opts = {}) {
  if (name === 'chromium') return launchChromium(opts);
  if (name === 'firefox') return launchFirefox(opts);
  if (name === 'webkit') return launchWebKit(opts);
  throw new Error(`unknown browser ${name}`);
}
