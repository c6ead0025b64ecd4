// PocketLM: one loaded model, running in its own worker.

import { WorkerConnection, resolveUrl, spawnWorker } from './rpc.js';
import { ModelCache, callProgress } from './model_cache.js';
import { PocketLMError, throwIfAborted } from './errors.js';
import { attachOpenAI } from './openai.js';
import { loadWithFallback } from './remote.js';

/**
 * @typedef {object} GenerateOptions
 * @property {number} [maxTokens]
 * @property {number} [temperature] 0 = greedy
 * @property {number} [topK]
 * @property {number} [topP]
 * @property {number} [minP]
 * @property {number} [repeatPenalty]
 * @property {number} [repeatLastN]
 * @property {number} [seed]
 * @property {string[]} [stop] generation ends before any of these strings (they are not part of the output)
 * @property {boolean} [profile] time each stage of the prefill and decode steps (lastStats.prefillProfile, .profile)
 * @property {AbortSignal} [signal]
 *
 * @typedef {object} GenerationStats
 * @property {number} promptTokens
 * @property {number} generatedTokens
 * @property {number} prefillTokensPerSecond
 * @property {number} decodeTokensPerSecond
 * @property {'eos' | 'stop' | 'length' | 'context' | 'aborted' | null} finishReason
 * @property {{stage: string, ms: number}[]} [profile] with the profile option: milliseconds per generated token
 * @property {{stage: string, ms: number}[]} [prefillProfile] with the profile option: milliseconds per prefilled
 *   prompt token
 *
 * @typedef {{role: string, content: string}} ChatMessage
 */

const NUMBER_OPTIONS = ['maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'seed'];
const INTEGER_OPTIONS = new Set(['maxTokens', 'topK', 'repeatLastN', 'seed']);

/**
 * The engine's share of the options: checked here, so a mistake fails at the call, with its name.
 * @param {GenerateOptions} [opts]
 */
function engineOptions(opts = {}) {
  if (typeof opts !== 'object' || opts === null) {
    throw new PocketLMError('invalid-argument', 'options must be an object');
  }
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const k of NUMBER_OPTIONS) {
    const v = /** @type {any} */ (opts)[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (INTEGER_OPTIONS.has(k) && !Number.isInteger(v))) {
      throw new PocketLMError('invalid-argument', `${k} must be a non-negative ${INTEGER_OPTIONS.has(k)
        ? 'integer' : 'number'}, got ${String(v)}`);
    }
    out[k] = v;
  }
  if (opts.stop !== undefined) {
    const stop = typeof opts.stop === 'string' ? [opts.stop] : opts.stop;
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string' && s.length > 0)) {
      throw new PocketLMError('invalid-argument', 'stop must be an array of non-empty strings');
    }
    out.stop = [...stop];
  }
  if (opts.profile !== undefined) {
    if (typeof opts.profile !== 'boolean') throw new PocketLMError('invalid-argument', 'profile must be a boolean');
    out.profile = opts.profile;
  }
  return out;
}

/** @param {unknown} messages @returns {ChatMessage[]} */
function chatMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0
    || !messages.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string')) {
    throw new PocketLMError('invalid-argument', 'messages must be a non-empty array of {role, content} strings');
  }
  return messages.map((m) => ({ role: m.role, content: m.content }));
}

function positiveInteger(name, v) {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new PocketLMError('invalid-argument', `${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

const CONSTRUCT = Symbol('PocketLM.load');

export class PocketLM {
  /** @type {WorkerConnection} */
  #conn;
  /** @type {Readonly<Record<string, any>>} */
  #info;
  /** @type {GenerationStats | null} */
  #lastStats = null;

  /**
   * Loads a GGUF model: from the IndexedDB cache when it is there (no network request), else downloading it
   * into the cache (resuming an interrupted download), then building the engine in a new worker.
   * @param {string | URL} url
   * @param {{onProgress?: (p: {loaded: number, total: number, phase: 'download' | 'cache' | 'init'}) => void,
   *   signal?: AbortSignal, contextSize?: number, sha256?: string, threads?: number | 'auto', chunkSize?: number}}
   *   [options]
   * @returns {Promise<PocketLM>}
   */
  static async load(url, options = {}) {
    // Hybrid: this device if it can (preflight + load), else the OpenAI-compatible server (a RemoteLM).
    if (options.fallback !== undefined) return loadWithFallback(PocketLM, url, options);
    const href = resolveUrl(url);
    const args = {
      url: href,
      contextSize: positiveInteger('contextSize', options.contextSize),
      threads: options.threads === undefined || options.threads === 'auto' ? 'auto'
        : positiveInteger('threads', options.threads),
      chunkSize: positiveInteger('chunkSize', options.chunkSize),
      sha256: options.sha256,
      storageEstimate: /** @type {any} */ (options).__storageEstimate,
    };
    throwIfAborted(options.signal, `loading ${href}`);
    // Not awaited: some browsers ask the user, and the load should not wait on the answer.
    ModelCache.persist().catch(() => {});
    const conn = new WorkerConnection(spawnWorker());
    try {
      const info = await conn.request('load', args, {
        signal: options.signal,
        onEvent: (m) => m.progress && callProgress(options.onProgress, m.progress),
      });
      return new PocketLM(CONSTRUCT, conn, info);
    } catch (e) {
      conn.close(/** @type {PocketLMError} */ (e));
      throw e;
    }
  }

  /** @private use PocketLM.load() */
  constructor(token, conn, info) {
    if (token !== CONSTRUCT) throw new TypeError('use PocketLM.load(url) to create a PocketLM');
    this.#conn = conn;
    this.#info = Object.freeze(info);
    attachOpenAI(this); // lm.chat.completions.create (OpenAI's shape; lm.chat(...) still works) and lm.fetch
  }

  /** What the engine reports about the model (architecture, name, parameters, quantization, contextSize, ...). */
  get info() {
    return this.#info;
  }

  /** Statistics of the last finished (or aborted) generation, or null before the first. */
  get lastStats() {
    return this.#lastStats;
  }

  /**
   * The continuation of `prompt` (raw text, no chat template).
   * @param {string} prompt @param {GenerateOptions} [options] @returns {Promise<string>}
   */
  async complete(prompt, options = {}) {
    return this.#collect({ prompt: String(prompt) }, options);
  }

  /**
   * The assistant's reply, with the model's own chat template applied to `messages`.
   * @param {ChatMessage[]} messages @param {GenerateOptions} [options] @returns {Promise<string>}
   */
  async chat(messages, options = {}) {
    return this.#collect({ messages: chatMessages(messages) }, options);
  }

  /**
   * `complete` as text pieces while they are generated. Leaving a `for await` loop early stops generation.
   * @param {string} prompt @param {GenerateOptions} [options] @returns {TextStream}
   */
  stream(prompt, options = {}) {
    return this.#stream({ prompt: String(prompt) }, options);
  }

  /** `chat` as text pieces while they are generated. @returns {TextStream} */
  chatStream(messages, options = {}) {
    return this.#stream({ messages: chatMessages(messages) }, options);
  }

  /** `stream` as a ReadableStream<string>; cancelling the stream stops generation. */
  readable(prompt, options = {}) {
    return toReadable(this.stream(prompt, options));
  }

  /** `chatStream` as a ReadableStream<string>. */
  chatReadable(messages, options = {}) {
    return toReadable(this.chatStream(messages, options));
  }

  /**
   * Token ids of `text`; `addSpecial` adds the BOS/EOS tokens the model's metadata asks for.
   * @param {string} text @param {{addSpecial?: boolean}} [options] @returns {Promise<Uint32Array>}
   */
  tokenize(text, options = {}) {
    return this.#conn.request('tokenize', { text: String(text), addSpecial: !!options.addSpecial });
  }

  /** @param {ArrayLike<number>} ids @returns {Promise<string>} */
  detokenize(ids) {
    const arr = Uint32Array.from(ids);
    return this.#conn.request('detokenize', { ids: arr }, { transfer: [arr.buffer] });
  }

  /** The prompt text `chat(messages)` would feed the model. @returns {Promise<string>} */
  applyChatTemplate(messages) {
    return this.#conn.request('applyChatTemplate', { messages: chatMessages(messages) });
  }

  /** Stops the worker and frees the model's memory. Pending calls reject with code 'unloaded'. */
  async unload() {
    this.#conn.close();
  }

  async #collect(input, options) {
    const req = { ...input, options: engineOptions(options), collect: true };
    try {
      const { text, stats } = await this.#conn.request('generate', req, { signal: options.signal });
      this.#lastStats = stats;
      return text;
    } catch (e) {
      this.#noteAbortStats(e);
      throw e;
    }
  }

  #stream(input, options) {
    const req = { ...input, options: engineOptions(options) };
    return new TextStream((sink) => {
      const { id, promise } = this.#conn.send('generate', req, {
        signal: options.signal,
        onEvent: (m) => typeof m.piece === 'string' && sink.piece(m.piece),
      });
      promise.then(({ stats }) => {
        this.#lastStats = stats;
        sink.end();
      }, (e) => {
        this.#noteAbortStats(e);
        sink.fail(e);
      });
      return () => this.#conn.cancel(id);
    });
  }

  #noteAbortStats(e) {
    const stats = /** @type {any} */ (e)?.details?.stats;
    if (stats) this.#lastStats = stats;
  }
}

/**
 * The AsyncIterableIterator<string> returned by stream() / chatStream(). Generation starts when it is created
 * (calls run in call order) and pieces are buffered until read; `return()` (leaving a for-await loop) cancels it.
 */
export class TextStream {
  /** @type {string[]} */
  #buffered = [];
  /** @type {{resolve: (r: IteratorResult<string>) => void, reject: (e: Error) => void}[]} */
  #readers = [];
  #ended = false;
  /** @type {Error | null} */
  #error = null;
  #stopped = false;
  /** @type {() => void} */
  #cancel;

  /** @param {(sink: {piece(s: string): void, end(): void, fail(e: Error): void}) => () => void} start */
  constructor(start) {
    this.#cancel = start({
      piece: (s) => {
        if (this.#stopped) return;
        const r = this.#readers.shift();
        if (r) r.resolve({ value: s, done: false });
        else this.#buffered.push(s);
      },
      end: () => {
        this.#ended = true;
        for (const r of this.#readers.splice(0)) r.resolve({ value: undefined, done: true });
      },
      fail: (e) => {
        this.#ended = true;
        if (this.#stopped) return; // the reader left; the AbortError that follows is expected
        const r = this.#readers.shift();
        if (r) r.reject(e);
        else this.#error = e;
        for (const other of this.#readers.splice(0)) other.resolve({ value: undefined, done: true });
      },
    });
  }

  /** @returns {Promise<IteratorResult<string>>} */
  next() {
    if (this.#buffered.length > 0) return Promise.resolve({ value: /** @type {string} */ (this.#buffered.shift()), done: false });
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      this.#stopped = true;
      return Promise.reject(e);
    }
    if (this.#ended || this.#stopped) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#readers.push({ resolve, reject }));
  }

  /** Stops generation (within one token) and ends the iteration. */
  return() {
    if (!this.#ended && !this.#stopped) this.#cancel();
    this.#stopped = true;
    this.#buffered.length = 0;
    for (const r of this.#readers.splice(0)) r.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/** @param {TextStream} it @returns {ReadableStream<string>} */
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
