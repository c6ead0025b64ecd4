#!/usr/bin/env node
// Assembles pkg/dist/: the JS modules and types as written (no compiler, no bundler) plus the wasm builds copied
// from wasm-bindgen's output directories, and dist/builds.js listing the builds present.
//
//   node scripts/build.mjs [--out DIR] [--wasm-out DIR] [--simd128 DIR] [--relaxed DIR] [--threads DIR]
//   node scripts/build.mjs --check       (prepack: fail unless dist/ has the JS and the simd128 build)
//
// --wasm-out (env POCKETLM_WASM_OUT) names a directory holding simd128/, relaxed/ and optionally threads/; the
// per-build flags (env POCKETLM_WASM_SIMD128 / _RELAXED / _THREADS) override single builds. Each build directory
// must hold `wasm-bindgen --target web --out-name pocketlm` output: pocketlm.js, pocketlm_bg.wasm (and snippets/).
// With no wasm at all, dist/ gets the JS only (enough for the weight-store tests), with a warning.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILDS = ['simd128', 'relaxed', 'threads'];

function fail(msg) {
  console.error(`pocketlm build: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { check: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') { opts.check = true; continue; }
    const m = /^--(out|wasm-out|simd128|relaxed|threads)(?:=(.*))?$/.exec(a);
    if (!m) fail(`unknown argument ${a}`);
    const v = m[2] ?? argv[++i];
    if (!v) fail(`${a} needs a directory`);
    opts[m[1]] = path.resolve(v);
  }
  return opts;
}

function check(dist) {
  const missing = ['index.js', 'index.d.ts', 'prompt_api.js', 'prompt_api.d.ts', 'worker.js', 'builds.js', 'wasm/simd128/pocketlm_bg.wasm']
    .filter((f) => !fs.existsSync(path.join(dist, f)));
  if (missing.length === 0) return;
  const msg = `dist/ lacks ${missing.join(', ')}: run \`make pkg\` at the repository root before packing`;
  if (process.env.POCKETLM_ALLOW_NO_WASM === '1' && !missing.some((f) => !f.startsWith('wasm/'))) {
    console.warn(`pocketlm build: warning: ${msg}`);
    return;
  }
  fail(msg);
}

/** The source directory of each wasm build, or null. */
function wasmSources(opts) {
  const wasmOut = opts['wasm-out'] ?? (process.env.POCKETLM_WASM_OUT ? path.resolve(process.env.POCKETLM_WASM_OUT) : null);
  /** @type {Record<string, string | null>} */
  const dirs = {};
  for (const b of BUILDS) {
    const env = process.env[`POCKETLM_WASM_${b.toUpperCase()}`];
    const explicit = opts[b] ?? (env ? path.resolve(env) : null);
    if (explicit) {
      dirs[b] = explicit;
    } else if (wasmOut && fs.existsSync(path.join(wasmOut, b))) {
      dirs[b] = path.join(wasmOut, b);
    } else {
      dirs[b] = null;
    }
  }
  if (wasmOut && !dirs.simd128) fail(`${wasmOut} has no simd128/ build`);
  return dirs;
}

function copyWasmBuild(name, from, to) {
  for (const f of ['pocketlm.js', 'pocketlm_bg.wasm']) {
    if (!fs.existsSync(path.join(from, f))) fail(`${name} build: ${path.join(from, f)} is missing (expected wasm-bindgen --target web --out-name pocketlm output)`);
  }
  const magic = fs.readFileSync(path.join(from, 'pocketlm_bg.wasm')).subarray(0, 4);
  if (!magic.equals(Buffer.from([0x00, 0x61, 0x73, 0x6d]))) fail(`${name} build: pocketlm_bg.wasm is not a wasm module`);
  fs.mkdirSync(to, { recursive: true });
  fs.copyFileSync(path.join(from, 'pocketlm.js'), path.join(to, 'pocketlm.js'));
  fs.copyFileSync(path.join(from, 'pocketlm_bg.wasm'), path.join(to, 'pocketlm_bg.wasm'));
  // Inline JS from #[wasm_bindgen(inline_js)] and wasm-bindgen-rayon's worker helpers live in snippets/.
  if (fs.existsSync(path.join(from, 'snippets'))) {
    fs.cpSync(path.join(from, 'snippets'), path.join(to, 'snippets'), { recursive: true });
    patchRayonWorkerInit(path.join(to, 'snippets'));
  }
  return fs.statSync(path.join(to, 'pocketlm_bg.wasm')).size;
}

/**
 * wasm-bindgen-rayon 1.3.0's bundler-free worker helper starts each thread's module with
 * `pkg.default(data.module, data.memory)`, the two-argument form that wasm-bindgen (>= 0.2.93) deprecated: every
 * helper thread then logs "using deprecated parameters for the initialization function" in the page's console.
 * Rewritten to the one-object form, which passes the same module and memory. A helper file with neither form is an
 * error, so an upgrade of the crate that changes it is noticed here rather than shipped unchecked.
 */
function patchRayonWorkerInit(snippets) {
  const files = fs.readdirSync(snippets, { recursive: true }).map(String)
    .filter((f) => /workerHelpers[^/]*\.js$/.test(f)).map((f) => path.join(snippets, f));
  for (const f of files) {
    const js = fs.readFileSync(f, 'utf8');
    const positional = 'await pkg.default(data.module, data.memory);';
    const object = 'await pkg.default({ module_or_path: data.module, memory: data.memory });';
    if (js.includes(positional)) fs.writeFileSync(f, js.replace(positional, object));
    else if (!js.includes(object)) fail(`${f}: wasm-bindgen-rayon's worker start-up changed; check its init call`);
  }
}

function build(opts) {
  const dist = opts.out ?? path.join(PKG, 'dist');
  const sources = wasmSources(opts); // before deleting anything, so a bad argument leaves dist/ alone
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(dist, { recursive: true });
  const src = path.join(PKG, 'src');
  for (const f of fs.readdirSync(src)) {
    if (f.endsWith('.js') && f !== 'builds.js') fs.copyFileSync(path.join(src, f), path.join(dist, f));
  }
  // index.d.ts, and the subpath exports' types (prompt_api.d.ts)
  for (const f of fs.readdirSync(PKG)) {
    if (f.endsWith('.d.ts')) fs.copyFileSync(path.join(PKG, f), path.join(dist, f));
  }
  const present = [];
  for (const b of BUILDS) {
    if (!sources[b]) continue;
    const bytes = copyWasmBuild(b, sources[b], path.join(dist, 'wasm', b));
    present.push(b);
    console.log(`pocketlm build: wasm/${b} (${(bytes / 1048576).toFixed(2)} MB) from ${sources[b]}`);
  }
  fs.writeFileSync(path.join(dist, 'builds.js'), '// Written by scripts/build.mjs: the wasm builds in wasm/.\n'
    + `export const BUILDS = Object.freeze(${JSON.stringify(present)});\n`);
  if (present.length === 0) {
    console.warn('pocketlm build: warning: no wasm build given (POCKETLM_WASM_OUT or --simd128 DIR); dist/ has the '
      + 'JS only and PocketLM.load() will fail with code "worker"');
  }
  console.log(`pocketlm build: ${dist}`);
}

const opts = parseArgs(process.argv.slice(2));
if (opts.check) check(opts.out ?? path.join(PKG, 'dist'));
else build(opts);
