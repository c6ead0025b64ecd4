// The one bench page for both engines. The driver (run.mjs) calls window.bench.* with page.evaluate:
//   load(engine, {modelUrl, contextSize, threads})  -> {loadMs, info}
//   promptTokens(prompt)                   -> token count from the engine's own tokenizer (null if it has none)
//   generate({prompt, tokens})             -> engine-reported prefill/decode figures + wall time of the call
//   unload()
// pocketlm comes from its npm package (dist/ served at ?pkg=), wllama from @wllama/wllama's esm/ (?wllama=).
import './worker_wrap.js'; // first: wraps Worker so the driver can read each engine worker's wasm memory

const params = new URLSearchParams(location.search);
const PKG = params.get('pkg') ?? '/pkg/dist/';
const WLLAMA = params.get('wllama') ?? '/wllama/';
// @wllama/wllama-compat's assets (served locally): wllama switches to this Asyncify, 32-bit-memory build by itself
// where its default build's JSPI or Memory64 is missing (WebKit/Safari); elsewhere it keeps its default build.
const WLLAMA_COMPAT = params.get('wllamaCompat') ?? '/wllama-compat/';
const WLLAMA_BLOB = params.get('wllamaBlob') === '1';

/** @type {{engine: string, lm?: any, w?: any} | null} */
let current = null;

const quiet = {
  debug() {}, log() {},
  warn: (...a) => console.warn('[wllama]', ...a),
  error: (...a) => console.error('[wllama]', ...a),
};

const engines = {
  pocketlm: {
    async load({ modelUrl, contextSize, threads = 1, kvType }) {
      const { PocketLM } = await import(new URL('index.js', new URL(PKG, location.href)).href);
      const t0 = performance.now();
      const lm = await PocketLM.load(modelUrl, { contextSize, threads, kvType });
      const loadMs = performance.now() - t0;
      return { loadMs, handle: { lm }, info: { ...lm.info } };
    },
    async promptTokens(h, prompt) {
      // addSpecial: the BOS/EOS the model's metadata asks for, as complete() adds them.
      return (await h.lm.tokenize(prompt, { addSpecial: true })).length;
    },
    async generate(h, { prompt, tokens, profile = false }) {
      const t0 = performance.now();
      const text = await h.lm.complete(prompt, { maxTokens: tokens, temperature: 0, profile });
      const wallMs = performance.now() - t0;
      const s = h.lm.lastStats;
      return {
        text, wallMs,
        promptTokens: s.promptTokens,
        generatedTokens: s.generatedTokens,
        prefillTokS: s.prefillTokensPerSecond,
        decodeTokS: s.decodeTokensPerSecond,
        finishReason: s.finishReason,
        profile: s.profile ?? null,
        prefillProfile: s.prefillProfile ?? null,
      };
    },
    async unload(h) {
      await h.lm.unload();
    },
  },

  wllama: {
    async load({ modelUrl, contextSize, threads = 1 }) {
      const base = new URL(WLLAMA, location.href);
      const { Wllama } = await import(new URL('esm/index.js', base).href);
      const t0 = performance.now();
      const w = new Wllama({ default: new URL('esm/wasm/wllama.wasm', base).href }, { logger: quiet });
      const compat = new URL(WLLAMA_COMPAT, location.href);
      w.setCompat({ wasm: new URL('wasm/wllama.wasm', compat).href, worker: new URL('wasm/wllama.js', compat).href });
      // n_threads 1: no pthreads (the single-thread path of its one build), more: its pthreads pool (the page is
      // cross-origin isolated); n_gpu_layers 0: no WebGPU, CPU only.
      const params = { n_threads: threads, n_gpu_layers: 0, n_ctx: contextSize };
      // ?wllamaBlob=1: the file fetched into a Blob and given to loadModel(), bypassing wllama's OPFS cache (WebKitGTK's
      // automation session fails OPFS writes); the load then includes the download, the speed figures are the same.
      if (WLLAMA_BLOB) await w.loadModel([await (await fetch(modelUrl)).blob()], params);
      else await w.loadModelFromUrl(modelUrl, params);
      const loadMs = performance.now() - t0;
      return {
        loadMs,
        handle: { w },
        info: { multithread: w.isMultithread(), threads: w.getNumThreads(), n_ctx: w.getLoadedContextInfo().n_ctx,
          n_batch: w.getLoadedContextInfo().n_batch, libllama: Wllama.getLibllamaVersion?.() ?? null,
          // compat: the no-JSPI / 32-bit-memory fallback build (@wllama/wllama-compat, served by the bench).
          compat: w.getWorkerResources().compat, fromBlob: WLLAMA_BLOB },
      };
    },
    async promptTokens() {
      return null; // wllama 3.x has no tokenize(); the count comes from the completion's timings.prompt_n
    },
    async generate(h, { prompt, tokens }) {
      const t0 = performance.now();
      const r = await h.w.createCompletion({ prompt, max_tokens: tokens, temperature: 0, seed: 1 });
      const wallMs = performance.now() - t0;
      const t = r.timings ?? {};
      return {
        text: r.choices?.[0]?.text ?? '', wallMs,
        promptTokens: t.prompt_n ?? r.usage?.prompt_tokens ?? null,
        cachedPromptTokens: t.cache_n ?? null,
        generatedTokens: t.predicted_n ?? r.usage?.completion_tokens ?? null,
        prefillTokS: t.prompt_per_second ?? null,
        decodeTokS: t.predicted_per_second ?? null,
        finishReason: r.choices?.[0]?.finish_reason ?? null,
      };
    },
    async unload(h) {
      await h.w.exit();
    },
  },
};

function need() {
  if (!current) throw new Error('no engine loaded');
  return current;
}

window.bench = {
  engines: Object.keys(engines),
  async load(engine, opts) {
    if (current) throw new Error(`${current.engine} is still loaded`);
    const e = engines[engine];
    if (!e) throw new Error(`unknown engine ${engine}`);
    const { loadMs, handle, info } = await e.load(opts);
    current = { engine, ...handle };
    return { loadMs, info };
  },
  async promptTokens(prompt) {
    const c = need();
    return engines[c.engine].promptTokens(c, prompt);
  },
  async generate(opts) {
    const c = need();
    return engines[c.engine].generate(c, opts);
  },
  async unload() {
    const c = need();
    current = null;
    await engines[c.engine].unload(c);
  },
};
window.benchReady = true;
