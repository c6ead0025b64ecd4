#!/usr/bin/env node
// `make bench` (scripts/bench.sh): pocketlm vs wllama in one browser (headless Chromium by default; Firefox ESR or
// WebKitGTK with --browser, through tests/e2e/browsers.mjs) through one page (bench/index.html), plus the native CLI
// and a memory-bandwidth bound. See bench/README.md for what each figure measures.
//
//   node bench/run.mjs [--browser chromium|firefox|webkit] [--runs N] [--tokens N] [--engines pocketlm,wllama]
//                      [--threads 1,2] [--models A.gguf,B.gguf] [--native-runs N] [--no-native] [--ctx N]
//                      [--prompt-repeat N] [--kv-type f16|q8_0|f32]
// Outside Chromium the wasm memory figure is not measured (it reads the engines' workers through Playwright).
// Each engine runs at each thread count (pocketlm `threads`, wllama `n_threads`) on a cross-origin isolated page,
// which both need for threads; a column is named "<engine> <threads>T".
// Env: WLLAMA_DIR (the @wllama/wllama package dir), POCKETLM_CLI, POCKETLM_VENV, BENCH_BANDWIDTH (probe binary).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { launchBrowser, TestServer, MODELS_DIR, REPO, ALL_BROWSERS, SAFARI_WEBKIT_FEATURES } from '../tests/e2e/harness.mjs';

// 128 tokens of plain prose with SmolLM2's tokenizer (which adds no BOS); each run prints the count both engines
// report, and pocketlm's tokenize() count. Raw continuation, no chat template, so both engines see the same tokens.
// --prompt-repeat N joins N copies (blank-line separated) for long-prompt figures (16: ~2,000 tokens).
const BASE_PROMPT = fs.readFileSync(new URL('./prompt.txt', import.meta.url), 'utf8');
let PROMPT = BASE_PROMPT;

const DEFAULT_MODEL = 'SmolLM2-135M-Instruct.Q4_1.gguf';
// The other models `make models` provides (the SmolLM2 variants requantized by scripts/make_variants.py, and
// Gemma 3 270M with its K-quant tensors); each used when present.
const OTHER_MODELS = ['SmolLM2-135M-Instruct.Q8_0.gguf', 'SmolLM2-135M-Instruct.Q4_0.gguf', 'gemma-3-270m-q4_k_m.gguf'];

function parseArgs(argv) {
  const o = { browser: 'chromium', runs: 3, tokens: 128, engines: ['pocketlm', 'wllama'], threads: [1, 2], models: null,
    nativeRuns: null, native: true, ctx: 512, promptRepeat: 1, kvType: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const int = (name) => {
      const v = Number(val());
      if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
      return v;
    };
    if (a === '--browser') {
      o.browser = val();
      if (!ALL_BROWSERS.includes(o.browser)) throw new Error(`--browser must be one of ${ALL_BROWSERS.join(', ')}`);
    } else if (a === '--runs') o.runs = int('--runs');
    else if (a === '--tokens') o.tokens = int('--tokens');
    else if (a === '--native-runs') o.nativeRuns = int('--native-runs');
    else if (a === '--ctx') o.ctx = int('--ctx');
    else if (a === '--prompt-repeat') o.promptRepeat = int('--prompt-repeat');
    else if (a === '--kv-type') o.kvType = val();
    else if (a === '--no-native') o.native = false;
    else if (a === '--engines') o.engines = val().split(',').filter(Boolean);
    else if (a === '--models') o.models = val().split(',').filter(Boolean);
    else if (a === '--threads') {
      o.threads = val().split(',').filter(Boolean).map(Number);
      if (o.threads.length === 0 || !o.threads.every((t) => Number.isInteger(t) && t >= 1)) {
        throw new Error('--threads must be positive integers, e.g. 1,2');
      }
    }
    else if (a === '-h' || a === '--help') {
      console.log('usage: bench/run.mjs [--browser chromium|firefox|webkit] [--runs N] [--tokens N] [--engines pocketlm,wllama] [--threads 1,2] '
        + '[--models A.gguf,...] [--native-runs N] [--no-native] [--ctx N] [--prompt-repeat N] [--kv-type f16|q8_0|f32]');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  for (const e of o.engines) {
    if (!['pocketlm', 'wllama'].includes(engineKind(e))) throw new Error(`unknown engine ${e}`);
  }
  o.nativeRuns ??= o.runs;
  if (!o.models) {
    o.models = [DEFAULT_MODEL, ...OTHER_MODELS.filter((v) => fs.existsSync(path.join(MODELS_DIR, v)))];
  }
  for (const m of o.models) {
    if (m.includes('/') || !fs.existsSync(path.join(MODELS_DIR, m))) {
      throw new Error(`model ${m} is not in ${MODELS_DIR} (give file names from that directory)`);
    }
  }
  // The prompt: 128 tokens a copy and 2 between copies, plus slack.
  if (o.ctx < o.tokens + 130 * o.promptRepeat + 30) throw new Error(`--ctx ${o.ctx} is too small for the prompt + ${o.tokens} tokens`);
  return o;
}

function wllamaDir() {
  if (process.env.WLLAMA_DIR) return path.resolve(process.env.WLLAMA_DIR);
  try {
    return path.dirname(createRequire(path.join(REPO, 'package.json')).resolve('@wllama/wllama/package.json'));
  } catch {
    return null;
  }
}

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
const round = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

/** Sum of the wasm linear memories the page's workers recorded (bench/wasm_memory_hook.js). */
async function wasmMemory(page) {
  if (!page.workers) return { bytes: null, memories: [] }; // not measured outside Chromium
  const per = [];
  for (const w of page.workers()) {
    try {
      // A thread-pool worker (pocketlm's rayon workers, wllama's pthreads) runs wasm forever and never answers;
      // it shares the memory of the engine's worker, which is counted there.
      const sizes = await Promise.race([
        w.evaluate(() => (globalThis.__benchWasmMemories
          ? [...globalThis.__benchWasmMemories].map((m) => m.buffer.byteLength) : [])),
        new Promise((resolve) => { setTimeout(() => resolve([]), 1000); }),
      ]);
      per.push(...sizes);
    } catch { /* a worker that went away */ }
  }
  return { bytes: per.reduce((a, b) => a + b, 0), memories: per };
}

/** The bench page in Firefox or WebKit: the few Playwright page methods run.mjs uses, over browsers.mjs. */
async function openOtherBench(browser, problems) {
  const p = await browser.newPage();
  return {
    goto: (u) => p.goto(u),
    evaluate: (fn, arg) => p.evaluate(fn, arg),
    waitForFunction: (fn) => p.waitForFunction(fn, undefined, { timeout: 60_000 }),
    waitForTimeout: (ms) => new Promise((r) => { setTimeout(r, ms); }),
    async collectProblems() {
      problems.push(...(await p.problems()), ...(await p.warnings()).map((w) => `warning: ${w}`));
    },
  };
}

async function openBench(context, origin, problems) {
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console.${m.type()}: ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url().replace(origin, '')}`);
  });
  return page;
}

/**
 * An engine of --engines: `pocketlm`, `wllama`, or `pocketlm@DIR` for the package built in DIR (a directory of
 * the repository holding a copy of pkg/dist), to compare two builds of pocketlm run by run on the same machine.
 */
function engineKind(engine) {
  return engine.split('@')[0];
}

function enginePkg(engine) {
  const dir = engine.split('@')[1];
  return dir ? `/${dir.replace(/^\/+|\/+$/g, '')}/` : '/pkg/dist/';
}

/** WebKitGTK: wllama loads from a Blob (see bench.js), set in main(). */
let WLLAMA_BLOB = false;

const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 1000);
/** Longest wait for an idle machine before a measurement (see waitIdle). */
const IDLE_MAX_MS = Number(process.env.BENCH_IDLE_MAX_MS ?? 30000);

/** Busy and total CPU time of the whole machine so far (Linux /proc/stat, in clock ticks), or null elsewhere. */
function cpuTimes() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    // busy: all but idle and iowait; steal: time the hypervisor gave this VM's cores to others.
    return { busy: total - f[3] - (f[4] ?? 0), total, steal: f[7] ?? 0 };
  } catch {
    return null;
  }
}

/**
 * CPU time (clock ticks) of every thread on the machine so far, by "process/thread" name (Linux /proc; the
 * browser's processes and threads are named, e.g. "chromium/DedicatedWorker", "chromium/ThreadPoolForeg"); null
 * elsewhere. Threads of one name are summed.
 */
function threadTimes() {
  const out = new Map();
  let pids;
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let comm = '?';
    let tids = [];
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const tid of tids) {
      try {
        const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        const key = `${comm}/${name}`;
        out.set(key, (out.get(key) ?? 0) + Number(f[11]) + Number(f[12])); // utime + stime
      } catch {
        // thread ended
      }
    }
  }
  return out;
}

/** The threads that used the most CPU between two threadTimes() readings, in cores' worth over `ms`. */
function topThreads(before, after, ms, n = 6) {
  if (!before || !after || ms <= 0) return null;
  const hz = 100; // USER_HZ on Linux
  return [...after].map(([k, v]) => [k, (v - (before.get(k) ?? 0)) / hz / (ms / 1000)])
    .filter(([, c]) => c >= 0.01).sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, c]) => `${k} ${c.toFixed(2)}`);
}

/**
 * Writes the machine's dirty pages to disk now (`sync`). The cold loads put ~200 MB into the browser's IndexedDB and
 * OPFS files; the kernel flushes dirty pages some 30 s after they were written, which lands in the first measured
 * runs: kernel writeback threads (kworker ... writeback / ext4-rsv-conversion) were seen there taking part of a
 * core during a generation (the `threads` figure). Whether this is what made some early 2-thread runs slow
 * is not established. Where `sync` does not exist, nothing.
 */
function flushWrites() {
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: 60000 });
  } catch {
    // not available: nothing to do
  }
}

/**
 * Waits at least `minMs`, then until the machine is idle: two 250 ms windows in a row with all cores together
 * less than 10% busy (at most IDLE_MAX_MS). A guard, not a cure: the browser may keep working after what a run
 * awaited (workers torn down, wasm optimized in the background, the cold loads' ~200 MB written to IndexedDB and
 * OPFS), and on a 2-core machine any such work takes a core from a 2-thread measurement. In the runs measured so
 * far the machine was idle within the fixed pauses (idleWaitMs: about the two windows), including the sporadic
 * slow 2-thread runs. Returns the milliseconds waited beyond `minMs`.
 */
async function waitIdle(page, minMs) {
  await page.waitForTimeout(minMs);
  flushWrites();
  const t0 = Date.now();
  let quiet = 0;
  let prev = cpuTimes();
  if (!prev) return 0;
  while (quiet < 2 && Date.now() - t0 < IDLE_MAX_MS) {
    await page.waitForTimeout(250);
    const now = cpuTimes();
    const busy = (now.busy - prev.busy) / Math.max(1, now.total - prev.total);
    quiet = busy < 0.1 ? quiet + 1 : 0;
    prev = now;
  }
  return Date.now() - t0;
}

async function gotoBench(page, origin, engine = 'pocketlm') {
  await page.goto(`${origin}/bench/index.html?pkg=${enginePkg(engine)}&wllama=/wllama/${WLLAMA_BLOB ? '&wllamaBlob=1' : ''}`);
  await page.waitForFunction(() => /** @type {any} */ (window).benchReady === true);
  // What the previous run left to finish (its workers' teardown, freeing its wasm memory; after the cold loads,
  // the browser's storage work): on a 2-core machine that work takes a core from the next run.
  return waitIdle(page, SETTLE_MS);
}

/**
 * Warm-up before a measured generation, on another prompt: browsers start wasm on baseline code (V8's Liftoff) and
 * recompile the hot functions optimized (TurboFan) in the background once they have run a while, on the same
 * cores. A few tokens were not enough: the first measured prefill then ran partly on baseline code, and 1-thread
 * figures varied widely between runs. 32 tokens and a pause for the background compiles to finish.
 */
async function warmUp(page) {
  await page.evaluate(() => window.bench.generate({
    prompt: 'Warm-up: one, two, three, four, five, six, seven, eight, nine, ten. Now the colours:', tokens: 32 }));
  return waitIdle(page, 500);
}

/** One measured run of one engine: warm load, memory, prompt token count, warm-up, measured generation. */
async function runOnce(page, origin, engine, threads, modelUrl, opts) {
  const idleBeforeLoadMs = await gotoBench(page, origin, engine);
  const loadavg = load();
  const l = await page.evaluate(([e, o]) => window.bench.load(e, o),
    [engineKind(engine), { modelUrl, contextSize: opts.ctx, threads, kvType: opts.kvType }]);
  const mem = await wasmMemory(page);
  const tokenizerCount = await page.evaluate((p) => window.bench.promptTokens(p), PROMPT);
  const idleBeforeGenerateMs = await warmUp(page);
  const cpu0 = cpuTimes();
  const thr0 = threadTimes();
  const tg = Date.now();
  const g = await page.evaluate(([p, n]) => window.bench.generate({ prompt: p, tokens: n }), [PROMPT, opts.tokens]);
  const genMs = Date.now() - tg;
  const cpu1 = cpuTimes();
  const thr1 = threadTimes();
  const memAfter = await wasmMemory(page);
  await page.evaluate(() => window.bench.unload());
  const ticks = cpu0 && cpu1 ? cpu1.total - cpu0.total : 0;
  return {
    engine: `${engine} ${threads}T`,
    threads,
    loadMs: round(l.loadMs, 1),
    promptTokens: g.promptTokens,
    tokenizerPromptTokens: tokenizerCount,
    cachedPromptTokens: g.cachedPromptTokens ?? 0,
    generatedTokens: g.generatedTokens,
    prefillTokS: round(g.prefillTokS),
    decodeTokS: round(g.decodeTokS),
    generateWallMs: round(g.wallMs, 1),
    finishReason: g.finishReason,
    wasmMemoryAfterLoad: mem.bytes,
    wasmMemoryAfterGenerate: memAfter.bytes,
    // The full info is in the cold-load line; here only what tells which code ran.
    info: engineKind(engine) === 'pocketlm' ? { backend: l.info.backend, threads: l.info.threads, contextSize: l.info.contextSize }
      : l.info,
    textHead: g.text.slice(0, 60),
    text: g.text,
    loadavg,
    // Waits for an idle machine (beyond the fixed pauses) before the warm load and before the measured generation.
    idleWaitMs: [idleBeforeLoadMs, idleBeforeGenerateMs],
    // The whole machine during the measured generation: cores busy (2 = both cores all the time) and stolen by
    // the hypervisor, in cores' worth.
    cpuDuringGenerate: ticks ? { busyCores: round((cpu1.busy - cpu0.busy) / ticks * os.cpus().length, 2),
      stolenCores: round((cpu1.steal - cpu0.steal) / ticks * os.cpus().length, 3),
      threads: topThreads(thr0, thr1, genMs) } : null,
  };
}

/**
 * One extra pocketlm run with the decode profile on (kept out of the measured runs): milliseconds per token in
 * each stage of the decode step, and what the worker adds around the engine (wall time of the call minus the
 * engine's own prefill and decode time, per generated token).
 */
async function profileRun(page, origin, modelUrl, opts, threads) {
  await gotoBench(page, origin);
  const l = await page.evaluate(([e, o]) => window.bench.load(e, o),
    ['pocketlm', { modelUrl, contextSize: opts.ctx, threads, kvType: opts.kvType }]);
  await warmUp(page);
  const g = await page.evaluate(([p, n]) => window.bench.generate({ prompt: p, tokens: n, profile: true }),
    [PROMPT, opts.tokens]);
  await page.evaluate(() => window.bench.unload());
  const engineMs = g.promptTokens / g.prefillTokS * 1000 + g.generatedTokens / g.decodeTokS * 1000;
  const lt = l.info.loadTimings ?? {};
  return { threads, loadMs: round(l.loadMs, 1), loadTimings: Object.fromEntries(Object.entries(lt).map(([k, v]) => [k, round(v, 1)])),
    decodeTokS: round(g.decodeTokS), stages: g.profile.map((t) => ({ stage: t.stage, ms: round(t.ms, 3) })),
    prefillTokS: round(g.prefillTokS),
    prefillStages: (g.prefillProfile ?? []).map((t) => ({ stage: t.stage, ms: round(t.ms, 4) })),
    workerMsPerToken: round((g.wallMs - engineMs) / g.generatedTokens, 3) };
}

function nativeRuns(cli, modelPath, opts, threads) {
  const out = [];
  for (let i = 0; i < opts.nativeRuns; i++) {
    const loadavg = load();
    const stdout = execFileSync(cli, ['generate', '--model', modelPath, '--prompt', PROMPT, '--max-tokens',
      String(opts.tokens), '--temperature', '0', '--ctx', String(opts.ctx), '--threads', String(threads), '--json'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
    const line = stdout.trim().split('\n').filter((s) => s.startsWith('{')).pop();
    const j = JSON.parse(line ?? 'null');
    out.push({ engine: `native ${threads}T`, threads, promptTokens: j.prompt_tokens?.length ?? null,
      generatedTokens: j.tokens?.length ?? null, prefillTokS: round(j.prefill_tok_s), decodeTokS: round(j.decode_tok_s),
      finishReason: j.finish_reason ?? null, textHead: String(j.text ?? '').slice(0, 60), text: String(j.text ?? ''),
      loadavg });
  }
  return out;
}

function bandwidth() {
  const bin = process.env.BENCH_BANDWIDTH ?? path.join(REPO, 'target', 'bench', 'bandwidth');
  if (!fs.existsSync(bin)) return null;
  return JSON.parse(execFileSync(bin, [], { encoding: 'utf8' }).trim());
}

function weightBytes(modelPath) {
  const py = path.join(process.env.POCKETLM_VENV ?? path.join(REPO, '.venv'), 'bin', 'python');
  try {
    const j = JSON.parse(execFileSync(py, [path.join(REPO, 'bench', 'weight_bytes.py'), modelPath],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
    return { bytes: j.per_token_bytes, source: 'gguf tensor table (PyPI gguf)' };
  } catch {
    return { bytes: fs.statSync(modelPath).size, source: 'file size (PyPI gguf venv not found)' };
  }
}

function table(rows) {
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r, i) => {
    const line = r.map((x, c) => (c === 0 ? String(x).padEnd(w[c]) : String(x).padStart(w[c]))).join('  ');
    return i === 0 ? `${line}\n${w.map((n) => '-'.repeat(n)).join('  ')}` : line;
  }).join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.promptRepeat > 1) PROMPT = Array(opts.promptRepeat).fill(BASE_PROMPT.trim()).join('\n\n');
  const t0 = Date.now();
  const started = { date: new Date().toISOString(), loadavg: load(), cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? '?' };
  const wdir = wllamaDir();
  if (opts.engines.map(engineKind).includes('wllama') && !(wdir && fs.existsSync(path.join(wdir, 'esm', 'index.js')))) {
    throw new Error('@wllama/wllama is not installed (npm ci at the repository root, or set WLLAMA_DIR)');
  }
  const cli = process.env.POCKETLM_CLI ?? path.join(REPO, 'target', 'release', 'pocketlm');
  if (opts.native && !fs.existsSync(cli)) throw new Error(`${cli} is missing: make cli (or --no-native)`);

  const mounts = { '/models/': MODELS_DIR };
  if (wdir) {
    mounts['/wllama/'] = wdir;
    // wllama's compat build (no JSPI, 32-bit memory), which it picks itself where the default build cannot run.
    const compat = path.join(path.dirname(path.dirname(wdir)), '@wllama', 'wllama-compat');
    if (fs.existsSync(path.join(compat, 'wasm', 'wllama.wasm'))) mounts['/wllama-compat/'] = compat;
  }
  // COOP/COEP: both engines need a cross-origin isolated page for threads.
  const server = await new TestServer({ mounts, isolation: true }).start();
  // WebKitGTK with the storage features Safari has (wllama caches in OPFS).
  const browser = await launchBrowser(opts.browser, { webkitFeatures: SAFARI_WEBKIT_FEATURES });
  WLLAMA_BLOB = opts.browser === 'webkit';
  const problems = [];
  const results = { started, browser: opts.browser, opts, models: {} };
  // Every engine at every thread count: the columns of the summary.
  const variants = opts.engines.flatMap((engine) => opts.threads.map((threads) => ({ engine, threads,
    name: `${engine} ${threads}T` })));
  console.error(`bench: ${opts.browser}: ${opts.engines.join(', ')} x ${opts.threads.join(',')} threads on ${opts.models.join(', ')}; ${opts.runs} runs, `
    + `${opts.tokens} tokens; load average ${started.loadavg.join(' ')} on ${started.cpus} cores`);
  try {
    const page = opts.browser === 'chromium' ? await openBench(browser.context, server.origin, problems)
      : await openOtherBench(browser, problems);
    for (const model of opts.models) {
      const modelUrl = `${server.origin}/models/${model}`;
      const m = { runs: [], cold: {}, native: [] };
      results.models[model] = m;
      // Cold load (download into each engine's cache); every measured load after this is from the warm cache.
      for (const engine of opts.engines) {
        await gotoBench(page, server.origin, engine);
        const l = await page.evaluate(([e, o]) => window.bench.load(e, o),
          [engineKind(engine), { modelUrl, contextSize: opts.ctx }]);
        await page.evaluate(() => window.bench.unload());
        m.cold[engine] = round(l.loadMs, 1);
        console.log(JSON.stringify({ model, engine, coldLoadMs: m.cold[engine], info: l.info }));
      }
      for (let i = 0; i < opts.runs; i++) {
        // Alternate which engine goes first, so a drift in machine load does not favour one of them.
        const order = i % 2 === 0 ? variants : [...variants].reverse();
        for (const { engine, threads, name } of order) {
          let r;
          try {
            r = { model, run: i + 1, ...(await runOnce(page, server.origin, engine, threads, modelUrl, opts)) };
          } catch (e) {
            r = { model, run: i + 1, engine: name, threads,
              error: String(/** @type {any} */ (e)?.message ?? e).split('\n')[0], loadavg: load() };
          }
          m.runs.push(r);
          console.log(JSON.stringify(r, (k, v) => (k === 'text' ? undefined : v)));
        }
      }
      if (opts.engines.includes('pocketlm')) {
        m.profiles = [];
        for (const threads of opts.threads) {
          const p = await profileRun(page, server.origin, modelUrl, opts, threads);
          m.profiles.push(p);
          console.log(JSON.stringify({ model, engine: 'pocketlm', profile: p }));
        }
      }
      if (opts.native) {
        for (const threads of opts.threads) {
          for (const r of nativeRuns(cli, path.join(MODELS_DIR, model), opts, threads)) {
            m.native.push(r);
            console.log(JSON.stringify({ model, ...r }, (k, v) => (k === 'text' ? undefined : v)));
          }
        }
      }
      m.weights = weightBytes(path.join(MODELS_DIR, model));
    }
    await page.collectProblems?.();
  } finally {
    await browser.close();
    await server.stop();
  }
  results.bandwidth = bandwidth();
  results.finished = { date: new Date().toISOString(), loadavg: load(), seconds: Math.round((Date.now() - t0) / 1000) };
  if (problems.length) results.problems = [...new Set(problems)].slice(0, 20);

  // Summary.
  const out = [];
  const bw = results.bandwidth;
  for (const [model, m] of Object.entries(results.models)) {
    const med = (engine, key) => median(m.runs.filter((r) => r.engine === engine).map((r) => r[key]));
    const figures = [
      ['warm load (ms)', 'loadMs', 0],
      ['prefill (tok/s)', 'prefillTokS', 1],
      ['decode (tok/s)', 'decodeTokS', 1],
      ['generate wall (ms)', 'generateWallMs', 0],
      ['wasm memory (MiB)', 'wasmMemoryAfterLoad', 1],
    ];
    // Ratios: the first engine over the second at each thread count, and each engine's last over first count.
    const [e0, e1] = opts.engines;
    const [t0, tN] = [opts.threads[0], opts.threads[opts.threads.length - 1]];
    const ratios = [
      ...(e1 ? opts.threads.map((t) => [`${e0}/${e1} ${t}T`, `${e0} ${t}T`, `${e1} ${t}T`]) : []),
      ...(tN !== t0 ? opts.engines.map((e) => [`${e} ${tN}T/${t0}T`, `${e} ${tN}T`, `${e} ${t0}T`]) : []),
    ];
    const rows = [['figure (median)', ...variants.map((v) => v.name), ...ratios.map(([label]) => label)]];
    for (const [label, key, d] of figures) {
      const scale = key === 'wasmMemoryAfterLoad' ? 1 / (1 << 20) : 1;
      const vals = variants.map((v) => med(v.name, key));
      const row = [label, ...vals.map((v) => (v === null ? '-' : round(v * scale, d)))];
      for (const [, a, b] of ratios) {
        const [x, y] = [med(a, key), med(b, key)];
        row.push(x && y ? round(x / y, 2) : '-');
      }
      rows.push(row);
    }
    const coldRow = ['cold load (ms, 1 run)', ...variants.map((v) => (v.threads === t0 ? m.cold[v.engine] ?? '-' : '-')),
      ...ratios.map(() => '-')];
    rows.push(coldRow);
    const pt = variants.map(({ name: e }) => `${e} ${[...new Set(m.runs.filter((r) => r.engine === e)
      .map((r) => `${r.promptTokens}${r.tokenizerPromptTokens !== null ? `/${r.tokenizerPromptTokens}` : ''}`))].join(',')}`);
    out.push(`\n${model} in ${opts.browser}: ${opts.runs} runs, ${opts.tokens} greedy tokens, prompt tokens ${pt.join('; ')}`);
    out.push(table(rows));
    const stages = (list) => {
      const total = list.reduce((a, t) => a + t.ms, 0);
      return list.filter((t) => t.ms >= 0.0005).map((t) => `${t.stage} ${t.ms} (${round(100 * t.ms / total, 0)}%)`)
        .join(', ');
    };
    for (const p of m.profiles ?? []) {
      out.push(`pocketlm ${p.threads}T prefill profile (one extra run, ${p.prefillTokS} tok/s): ms per prompt token `
        + stages(p.prefillStages));
      out.push(`pocketlm ${p.threads}T decode profile (same run, ${p.decodeTokS} tok/s): ms per token `
        + `${stages(p.stages)}; worker + page around the engine ${p.workerMsPerToken}`);
      if (p === m.profiles[0]) {
        const lt = p.loadTimings;
        out.push(`pocketlm warm load in that run: ${p.loadMs} ms = wasm module ${lt.moduleMs} + weights from `
          + `IndexedDB ${lt.weightsMs} + engine build ${lt.initMs} + worker start and messages`);
      }
    }
    for (const t of opts.threads) {
      const nat = m.native.filter((r) => r.threads === t);
      if (!nat.length) continue;
      out.push(`native CLI ${t}T (median of ${nat.length}): prefill ${round(median(nat.map((r) => r.prefillTokS)), 1)} `
        + `tok/s, decode ${round(median(nat.map((r) => r.decodeTokS)), 1)} tok/s`);
    }
    // Same model, same prompt, greedy: the continuations should agree; say where they part (a numerics check, not
    // a speed figure).
    const texts = [...variants.map(({ name: e }) => [e, m.runs.find((r) => r.engine === e && r.text !== undefined)?.text]),
      ['native', m.native[0]?.text]].filter(([, t]) => typeof t === 'string');
    if (texts.length > 1) {
      const [name0, t0] = texts[0];
      const parts = texts.slice(1).map(([n, t]) => {
        let k = 0;
        while (k < t0.length && k < t.length && t0[k] === t[k]) k++;
        return k === t0.length && k === t.length ? `${n} identical` : `${n} agrees on the first ${k} characters`;
      });
      out.push(`greedy text vs ${name0} (${t0.length} characters): ${parts.join('; ')}`);
    }
    if (bw && m.weights) {
      // The best pass: other processes only ever lower the figure, and this is a ceiling.
      const bound = (bw.best_gb_s * 1e9) / m.weights.bytes;
      m.decodeBoundTokS = round(bound, 1);
      out.push(`bandwidth bound: ${round(m.weights.bytes / 1e6, 1)} MB of weights per token (${m.weights.source}) / `
        + `${bw.best_gb_s} GB/s single-core read (best of ${bw.passes}; median ${bw.median_gb_s}) = `
        + `${round(bound, 0)} tok/s decode ceiling`);
    }
  }
  out.push(`\nload average: start ${started.loadavg.join(' ')}, end ${results.finished.loadavg.join(' ')} `
    + `(${started.cpus} cores, ${started.cpu}); ${results.finished.seconds} s`);
  if (results.problems) out.push(`browser warnings/errors:\n  ${results.problems.join('\n  ')}`);
  console.log(out.join('\n'));
  const dir = path.join(REPO, 'target', 'bench');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'last.json'), `${JSON.stringify(results, null, 1)}\n`);
  console.error(`bench: results in ${path.join(dir, 'last.json')}`);
}

main().catch((e) => {
  console.error(`bench: ${e?.stack ?? e}`);
  process.exit(1);
});
