// Hybrid fallback: `PocketLM.load(url, {fallback: {baseURL, apiKey, model}})` decides before loading whether this
// device can run the model (memory budget, storage quota), and otherwise (or if the device load then fails for a
// reason of the device) returns a RemoteLM: the same methods over an OpenAI-compatible server
// (`/chat/completions`, `/completions`, `/models`), with `info.backend === 'remote'`.

import { PocketLMError, abortError, throwIfAborted } from './errors.js';
import { ModelCache } from './model_cache.js';
import { TextStream } from './pocketlm.js';
import { createFetch } from './openai.js';

/** wasm32 memory ends at 4 GiB; the engine needs the file plus its KV cache and scratch in it. */
const WASM_MAX = 4 * 2 ** 30;
/** What the engine holds beyond the file: KV cache and scratch (SmolLM2 at 2048 tokens: ~40 MB) plus room. */
const OVERHEAD = 96 * 2 ** 20;

/**
 * @typedef {object} Preflight
 * @property {boolean} device     whether to run on this device
 * @property {string | null} reason why not
 * @property {number | null} modelBytes the file's size (null when unknown)
 * @property {number} memoryBudget bytes the model may take
 * @property {number | null} storageAvailable bytes the origin may still store (null when the browser does not say)
 * @property {boolean} cached     the file is completely in the cache
 * @property {number} [probeTokensPerSecond] with minTokensPerSecond: the device's decode rate in the speed probe
 */

/**
 * Whether the model at `href` fits this device: its size (from the cache, else a HEAD request) plus the engine's
 * overhead within the memory budget (`memoryBudget` in bytes, else a quarter of `navigator.deviceMemory`, at most the
 * 4 GiB of wasm32), and, unless it is cached already, within the storage the origin has left.
 * @param {string} href
 * @param {{memoryBudget?: number, signal?: AbortSignal}} options
 * @returns {Promise<Preflight>}
 */
export async function preflight(href, options = {}) {
  const deviceMemory = /** @type {any} */ (globalThis.navigator)?.deviceMemory;
  let memoryBudget = WASM_MAX;
  if (options.memoryBudget !== undefined) {
    if (typeof options.memoryBudget !== 'number' || !(options.memoryBudget >= 0)) {
      throw new PocketLMError('invalid-argument', `memoryBudget must be a number of bytes, got ${String(options.memoryBudget)}`);
    }
    memoryBudget = Math.min(WASM_MAX, options.memoryBudget);
  } else if (typeof deviceMemory === 'number' && deviceMemory > 0) {
    memoryBudget = Math.min(WASM_MAX, (deviceMemory * 2 ** 30) / 4);
  }
  const entry = (await ModelCache.list().catch(() => [])).find((e) => e.url === href);
  const cached = !!entry?.complete;
  let modelBytes = entry && entry.size > 0 ? entry.size : null;
  if (modelBytes === null) {
    try {
      const r = await fetch(href, { method: 'HEAD', signal: options.signal });
      const n = Number(r.headers.get('content-length'));
      if (r.ok && Number.isFinite(n) && n > 0) modelBytes = n;
    } catch (e) {
      throwIfAborted(options.signal, `loading ${href}`);
      return { device: false, reason: `the model cannot be reached (${/** @type {any} */ (e)?.message ?? e})`, modelBytes,
        memoryBudget, storageAvailable: null, cached };
    }
  }
  let storageAvailable = null;
  const est = await globalThis.navigator?.storage?.estimate?.().catch(() => null);
  if (est && typeof est.quota === 'number') storageAvailable = est.quota - (est.usage ?? 0);
  const base = { modelBytes, memoryBudget, storageAvailable, cached };
  if (modelBytes !== null && modelBytes + OVERHEAD > memoryBudget) {
    return { ...base, device: false,
      reason: `the model needs about ${mb(modelBytes + OVERHEAD)} of memory; the budget is ${mb(memoryBudget)}` };
  }
  const toStore = modelBytes === null || cached ? 0 : modelBytes - (entry?.bytes ?? 0);
  if (storageAvailable !== null && toStore > storageAvailable) {
    return { ...base, device: false,
      reason: `the model needs ${mb(toStore)} of storage; the origin has ${mb(storageAvailable)} left` };
  }
  return { ...base, device: true, reason: null };
}

const mb = (n) => `${Math.round(n / 2 ** 20)} MB`;

/** Tokens of the speed probe (minTokensPerSecond): enough for a steady decode rate, short enough not to matter. */
const PROBE_TOKENS = 16;

/** Device failures after which the remote model is used (anything else, e.g. an abort, is thrown). */
const DEVICE_CODES = new Set(['memory', 'quota', 'storage', 'worker', 'unsupported', 'network', 'http']);

/**
 * PocketLM.load with a fallback: the device when the preflight allows it and the load succeeds, else the remote.
 * @param {any} PocketLMClass
 * @param {string | URL} url
 * @param {Record<string, any>} options
 */
export async function loadWithFallback(PocketLMClass, url, options) {
  const { fallback, memoryBudget, minTokensPerSecond, ...rest } = options;
  checkFallback(fallback);
  if (minTokensPerSecond !== undefined && !(typeof minTokensPerSecond === 'number' && minTokensPerSecond > 0)) {
    throw new PocketLMError('invalid-argument', `minTokensPerSecond must be a positive number, got ${String(minTokensPerSecond)}`);
  }
  const href = new URL(url, globalThis.location?.href).href;
  const pre = await preflight(href, { memoryBudget, signal: options.signal });
  if (pre.device) {
    let lm = null;
    try {
      lm = await PocketLMClass.load(url, rest);
    } catch (e) {
      const code = /** @type {any} */ (e)?.code;
      if (!DEVICE_CODES.has(code)) throw e;
      pre.device = false;
      pre.reason = `loading on the device failed (${code}: ${/** @type {any} */ (e).message})`;
    }
    if (lm && minTokensPerSecond !== undefined) {
      // The speed probe: a short greedy generation; too slow a device hands over to the server.
      await lm.complete('The quick brown fox', { temperature: 0, maxTokens: PROBE_TOKENS, signal: options.signal });
      const speed = lm.lastStats?.decodeTokensPerSecond ?? 0;
      pre.probeTokensPerSecond = speed;
      if (speed < minTokensPerSecond) {
        await lm.unload();
        lm = null;
        pre.device = false;
        pre.reason = `the device decodes ${speed.toFixed(1)} tokens/s, below minTokensPerSecond ${minTokensPerSecond}`;
      }
    }
    if (lm) return lm;
  }
  throwIfAborted(options.signal, `loading ${href}`);
  return RemoteLM.connect(fallback, { preflight: pre, signal: options.signal });
}

function checkFallback(f) {
  if (!f || typeof f !== 'object' || typeof f.baseURL !== 'string' || !f.baseURL) {
    throw new PocketLMError('invalid-argument', 'fallback must be {baseURL, apiKey?, model?}');
  }
}

/** The core package's generation options -> OpenAI request fields (non-standard ones only when given). */
function requestFields(options = {}) {
  const o = {};
  if (options.maxTokens !== undefined) o.max_tokens = options.maxTokens;
  if (options.temperature !== undefined) o.temperature = options.temperature;
  if (options.topP !== undefined) o.top_p = options.topP;
  if (options.seed !== undefined) o.seed = options.seed;
  if (options.stop !== undefined) o.stop = options.stop;
  // Not in OpenAI's API; llama.cpp's server and others take them under these names.
  if (options.topK !== undefined) o.top_k = options.topK;
  if (options.minP !== undefined) o.min_p = options.minP;
  if (options.repeatPenalty !== undefined) o.repeat_penalty = options.repeatPenalty;
  const rf = options.responseFormat;
  if (rf) {
    if (rf.type === 'json_schema') o.response_format = { type: 'json_schema', json_schema: { name: 'response', schema: rf.schema, strict: true } };
    else if (rf.type === 'json_object') o.response_format = { type: 'json_object' };
    else throw new PocketLMError('invalid-argument', `responseFormat '${rf.type}' is not available with a remote model (json_schema and json_object are)`);
  }
  if (options.tools) {
    o.tools = options.tools;
    if (options.toolChoice !== undefined) o.tool_choice = options.toolChoice;
  }
  return o;
}

/** pocketlm chat messages -> OpenAI's. */
function openaiMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new PocketLMError('invalid-argument', 'messages must be a non-empty array of {role, content} strings');
  }
  return messages.map((m) => {
    if (m?.role === 'tool') return { role: 'tool', tool_call_id: m.toolCallId, content: m.content };
    if (m?.role === 'assistant' && Array.isArray(m.toolCalls)) {
      return { role: 'assistant', content: m.content ?? null, tool_calls: m.toolCalls };
    }
    if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new PocketLMError('invalid-argument', 'messages must be a non-empty array of {role, content} strings');
    }
    return { role: m.role, content: m.content };
  });
}

const FINISH_BACK = { stop: 'eos', length: 'length', tool_calls: 'eos', content_filter: 'stop' };

function statsOf(usage, finish, stop) {
  const prompt = usage?.prompt_tokens ?? 0;
  const cached = usage?.prompt_tokens_details?.cached_tokens;
  return {
    promptTokens: prompt,
    prefilledTokens: typeof cached === 'number' ? prompt - cached : prompt,
    generatedTokens: usage?.completion_tokens ?? 0,
    prefillTokensPerSecond: NaN,
    decodeTokensPerSecond: NaN,
    // A stop string ends as 'stop' in OpenAI's answer, like an end of text; we cannot tell them apart.
    finishReason: finish === 'stop' && stop ? 'stop' : (FINISH_BACK[finish] ?? null),
  };
}

/** Parses a server-sent-events body into its `data:` payloads (JSON), ending at `[DONE]`. */
async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
        const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        const obj = JSON.parse(data);
        if (obj.error) throw new PocketLMError('http', `the remote model failed: ${obj.error.message ?? JSON.stringify(obj.error)}`);
        yield obj;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

const CONSTRUCT = Symbol('RemoteLM.connect');

/**
 * A model on an OpenAI-compatible server with PocketLM's methods. tokenize/detokenize/applyChatTemplate are not
 * available (code 'unsupported'): the server does not expose them.
 */
export class RemoteLM {
  #baseURL;
  #apiKey;
  #model;
  /** @type {Record<string, any>} */ #info;
  /** @type {Record<string, any> | null} */ #lastStats = null;
  /** @type {Record<string, any> | null} */ #lastReply = null;
  /** @type {Set<AbortController>} */ #pending = new Set();
  #closed = false;

  /**
   * Checks the server (GET /models; the model is its first one unless named) and returns the remote model.
   * @param {{baseURL: string, apiKey?: string, model?: string}} fallback
   * @param {{preflight?: Preflight, signal?: AbortSignal}} [extra]
   */
  static async connect(fallback, extra = {}) {
    checkFallback(fallback);
    const baseURL = fallback.baseURL.replace(/\/+$/, '');
    const lm = new RemoteLM(CONSTRUCT, baseURL, fallback.apiKey, fallback.model ?? null);
    const list = await lm.#json('GET', '/models', undefined, extra.signal);
    const ids = Array.isArray(list?.data) ? list.data.map((m) => m.id) : [];
    const model = fallback.model ?? ids[0];
    if (!model) throw new PocketLMError('http', `${baseURL}/models lists no model; give fallback.model`);
    lm.#model = model;
    lm.#info = Object.freeze({ backend: 'remote', name: model, baseURL, threads: 0, contextSize: null,
      fallbackReason: extra.preflight?.reason ?? null, preflight: extra.preflight ?? null });
    return lm;
  }

  /** @private use RemoteLM.connect() or PocketLM.load(url, {fallback}) */
  constructor(token, baseURL, apiKey, model) {
    if (token !== CONSTRUCT) throw new TypeError('use PocketLM.load(url, {fallback}) or RemoteLM.connect()');
    this.#baseURL = baseURL;
    this.#apiKey = apiKey;
    this.#model = model;
    const self = this;
    const chat = (messages, options) => RemoteLM.prototype.chat.call(self, messages, options);
    Object.defineProperty(chat, 'completions', { enumerable: true, value: {
      /** OpenAI's chat.completions.create, passed through to the server (the model defaults to this one's). */
      create: (params, requestOptions = {}) => self.#passThrough(params, requestOptions.signal ?? params?.signal),
    } });
    Object.defineProperty(this, 'chat', { value: chat, configurable: true, enumerable: false });
    let fetchFn = null;
    Object.defineProperty(this, 'fetch', { get: () => (fetchFn ??= createFetch(this)), configurable: true, enumerable: false });
  }

  get info() { return this.#info; }
  get lastStats() { return this.#lastStats; }

  async complete(prompt, options = {}) {
    const r = await this.#json('POST', '/completions', { model: this.#model, prompt: String(prompt), ...requestFields(options) },
      options.signal);
    this.#lastStats = statsOf(r.usage, r.choices?.[0]?.finish_reason, options.stop);
    return r.choices?.[0]?.text ?? '';
  }

  async chat(messages, options = {}) {
    const r = await this.#json('POST', '/chat/completions', { model: this.#model, messages: openaiMessages(messages),
      ...requestFields(options) }, options.signal);
    const choice = r.choices?.[0];
    this.#lastStats = statsOf(r.usage, choice?.finish_reason, options.stop);
    if (options.tools) {
      this.#lastReply = { role: 'assistant', content: choice?.message?.content ?? null,
        toolCalls: (choice?.message?.tool_calls ?? []).map((c) => ({ id: c.id, type: 'function', function: c.function })) };
      return this.lastReply;
    }
    return choice?.message?.content ?? '';
  }

  /** The assistant message of the last chat with tools, or null. */
  get lastReply() {
    return this.#lastReply ? structuredClone(this.#lastReply) : null;
  }

  /** As PocketLM.json: the reply parsed as JSON valid for `schema` (null: any JSON object), via response_format. */
  async json(input, schema, options = {}) {
    const responseFormat = schema == null ? { type: 'json_object' } : { type: 'json_schema', schema };
    const messages = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
    const text = await this.chat(messages, { ...options, responseFormat });
    if (this.#lastStats?.finishReason === 'length') {
      throw new PocketLMError('length', `the output stopped (length) after ${this.#lastStats.generatedTokens} tokens, `
        + 'before the JSON was complete: raise maxTokens', { details: { text, stats: this.#lastStats } });
    }
    return JSON.parse(text);
  }

  stream(prompt, options = {}) {
    return this.#textStream('/completions', { prompt: String(prompt) }, options, (c) => c.choices?.[0]?.text);
  }

  chatStream(messages, options = {}) {
    return this.#textStream('/chat/completions', { messages: openaiMessages(messages) }, options,
      (c) => c.choices?.[0]?.delta?.content);
  }

  readable(prompt, options = {}) { return toReadable(this.stream(prompt, options)); }
  chatReadable(messages, options = {}) { return toReadable(this.chatStream(messages, options)); }

  async tokenize() { throw unsupported('tokenize'); }
  async detokenize() { throw unsupported('detokenize'); }
  async applyChatTemplate() { throw unsupported('applyChatTemplate'); }

  /** Aborts pending requests (they reject with code 'unloaded'); later calls reject the same way. */
  async unload() {
    this.#closed = true;
    for (const c of this.#pending) c.abort(new PocketLMError('unloaded', 'the model was unloaded'));
  }

  #textStream(path, input, options, pieceOf) {
    const body = { model: this.#model, ...input, ...requestFields(options), stream: true, stream_options: { include_usage: true } };
    return new TextStream((sink) => {
      const controller = new AbortController();
      (async () => {
        const res = await this.#request('POST', path, body, options.signal, controller);
        let usage = null;
        let finish = null;
        for await (const chunk of sseEvents(res.body)) {
          const piece = pieceOf(chunk);
          if (typeof piece === 'string' && piece) sink.piece(piece);
          finish = chunk.choices?.[0]?.finish_reason ?? finish;
          if (chunk.usage) usage = chunk.usage;
        }
        this.#lastStats = statsOf(usage, finish, options.stop);
        this.#pending.delete(controller);
        sink.end();
      })().catch((e) => sink.fail(this.#failure(e, options.signal, controller)));
      return () => controller.abort();
    });
  }

  async #passThrough(params, signal) {
    const body = { model: this.#model, ...params };
    delete body.signal;
    if (!body.stream) return this.#json('POST', '/chat/completions', body, signal);
    const controller = new AbortController();
    const res = await this.#request('POST', '/chat/completions', body, signal, controller);
    const events = sseEvents(res.body);
    return Object.assign((async function* chunks() {
      try {
        yield* events;
      } finally {
        controller.abort();
      }
    })(), { controller });
  }

  async #json(method, path, body, signal) {
    const controller = new AbortController();
    try {
      const res = await this.#request(method, path, body, signal, controller);
      return await res.json();
    } catch (e) {
      throw this.#failure(e, signal, controller);
    } finally {
      this.#pending.delete(controller);
    }
  }

  /** fetch with the key, the caller's signal and ours (unload); HTTP errors as PocketLMError 'http'. */
  async #request(method, path, body, signal, controller) {
    if (this.#closed) throw new PocketLMError('unloaded', 'the model was unloaded');
    throwIfAborted(signal, 'the request');
    this.#pending.add(controller);
    const headers = { accept: body?.stream ? 'text/event-stream' : 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    let res;
    try {
      res = await fetch(this.#baseURL + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, controller.signal]) : controller.signal });
    } catch (e) {
      throw this.#failure(e, signal, controller);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let message = text.slice(0, 500);
      try {
        message = JSON.parse(text).error?.message ?? message;
      } catch { /* not JSON */ }
      throw new PocketLMError('http', `${method} ${this.#baseURL}${path}: HTTP ${res.status}: ${message}`, { status: res.status });
    }
    return res;
  }

  #failure(e, signal, controller) {
    this.#pending.delete(controller);
    if (e instanceof PocketLMError) return e;
    if (signal?.aborted) return abortError(signal.reason, 'the request');
    if (controller.signal.aborted) {
      return controller.signal.reason instanceof PocketLMError ? controller.signal.reason : abortError(undefined, 'the request');
    }
    return new PocketLMError('network', `${this.#baseURL}: ${/** @type {any} */ (e)?.message ?? e}`, { cause: e });
  }
}

function unsupported(what) {
  return new PocketLMError('unsupported', `${what} is not available with a remote model (info.backend === 'remote')`);
}

/** @param {TextStream} it */
function toReadable(it) {
  return new ReadableStream({
    async pull(controller) {
      const r = await it.next();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel() {
      it.return();
    },
  }, { highWaterMark: 0 });
}
