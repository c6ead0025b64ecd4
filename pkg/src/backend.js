// Chooses and starts the wasm build the worker runs. A wasm module cannot test for instruction-set features at
// run time, so there is one build per feature level (dist/wasm/<build>/pocketlm.js + pocketlm_bg.wasm, output of
// `wasm-bindgen --target web`) and this picks one by asking WebAssembly.validate about tiny probe modules.

import { BUILDS } from './builds.js';
import { PocketLMError } from './errors.js';

// Probe modules, hand-assembled (WebAssembly core spec §5 binary format; SIMD opcodes from the fixed-width SIMD
// and relaxed-SIMD proposals). Each is: magic + version, a type section with one function type, a function
// section declaring one function of that type, a code section with its body.

/** (func (param v128 v128) (result v128) local.get 0 local.get 1 i32x4.add) — i32x4.add is 0xfd 0xae 0x01. */
export const SIMD128_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128, v128) -> v128
  0x03, 0x02, 0x01, 0x00, //                              func 0 has type 0
  0x0a, 0x0b, 0x01, 0x09, 0x00, //                        code: 1 body of 9 bytes, no locals
  0x20, 0x00, 0x20, 0x01, 0xfd, 0xae, 0x01, 0x0b,
]);

/**
 * (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2
 *   i32x4.relaxed_dot_i8x16_i7x16_add_s) — opcode 0x113, LEB128-encoded after the 0xfd prefix as 0x93 0x02.
 * This is the instruction the relaxed build's quantized dot products use.
 */
export const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128, v128, v128) -> v128
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x00,
  0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x93, 0x02, 0x0b,
]);

/**
 * Threads to run for the `threads` load option: a number as given, 'auto' (the default) all cores of a small
 * machine (decode streams the weights once per token, and two to four cores share that work well), half of a
 * larger one, at most 8 (memory bandwidth, not cores, limits decode beyond that).
 * @param {number | 'auto' | undefined} threads
 * @param {number} [cores] navigator.hardwareConcurrency
 * @returns {number}
 */
export function resolveThreads(threads, cores = globalThis.navigator?.hardwareConcurrency ?? 1) {
  if (typeof threads === 'number') return Math.max(1, Math.floor(threads));
  const n = Math.max(1, Math.floor(cores) || 1);
  return n <= 4 ? n : Math.min(8, Math.max(4, Math.floor(n / 2)));
}

/**
 * @param {{threads?: number, available?: readonly string[], validate?: (b: BufferSource) => boolean,
 *   isolated?: boolean}} [opts] threads: the resolved count (see resolveThreads)
 * @returns {'simd128' | 'relaxed' | 'threads'}
 */
export function pickBuild(opts = {}) {
  const available = opts.available ?? BUILDS;
  const validate = opts.validate ?? ((b) => WebAssembly.validate(b));
  const isolated = opts.isolated ?? globalThis.crossOriginIsolated === true;
  if (available.length === 0) {
    throw new PocketLMError('worker', 'this copy of pocketlm contains no wasm build (dist/wasm/ is empty); build '
      + 'the package with `make pkg`');
  }
  if (!validate(SIMD128_PROBE)) {
    throw new PocketLMError('unsupported', 'this browser does not support WebAssembly SIMD, which pocketlm needs '
      + '(Chrome/Edge 91+, Firefox 89+, Safari 16.4+)');
  }
  const relaxed = validate(RELAXED_SIMD_PROBE);
  // The multi-threaded build (wasm-bindgen-rayon) needs SharedArrayBuffer, so only a cross-origin isolated page
  // (COOP: same-origin + COEP: require-corp) can use it; it is also a relaxed-SIMD build. Otherwise one thread.
  if ((opts.threads ?? 1) > 1 && isolated && relaxed && available.includes('threads')) return 'threads';
  if (available.includes('relaxed') && relaxed) return 'relaxed';
  if (available.includes('simd128')) return 'simd128';
  throw new PocketLMError('worker', `no wasm build of pocketlm runs here (built: ${available.join(', ')})`);
}

/**
 * Imports and instantiates the chosen build; with the threads build, also starts its thread pool. When that fails
 * (a browser without nested module workers, memory for shared buffers refused, ...) it falls back to the
 * single-thread build without an error: `threads` says what runs.
 * @param {{threads?: number | 'auto'}} [opts]
 * @returns {Promise<{wasm: any, build: string, threads: number}>}
 */
export async function startEngineModule(opts = {}) {
  const threads = resolveThreads(opts.threads ?? 'auto');
  const build = pickBuild({ threads });
  if (build === 'threads') {
    try {
      const wasm = await importBuild(build);
      // The engine's own worker is one of the threads; rayon's pool holds the others.
      await wasm.initThreadPool(threads - 1);
      return { wasm, build, threads };
    } catch (e) {
      console.warn(`pocketlm: threads build unavailable (${/** @type {any} */ (e)?.message ?? e}); using one thread`);
    }
  }
  const single = build === 'threads' ? pickBuild({ threads: 1 }) : build;
  return { wasm: await importBuild(single), build: single, threads: 1 };
}

/** @param {string} build @returns {Promise<any>} the initialized wasm-bindgen module */
async function importBuild(build) {
  const base = new URL(`./wasm/${build}/`, import.meta.url);
  let wasm;
  try {
    wasm = await import(new URL('pocketlm.js', base).href);
    await wasm.default({ module_or_path: new URL('pocketlm_bg.wasm', base) });
  } catch (e) {
    throw new PocketLMError('worker', `could not start the ${build} wasm build from ${base}: `
      + `${/** @type {any} */ (e)?.message ?? e}`, { cause: e });
  }
  return wasm;
}
