// PocketLM: one loaded model, running in its own worker.

import { WorkerConnection, resolveUrl, spawnWorker } from './rpc.js';
import { ModelCache, callProgress } from './model_cache.js';
import { PocketLMError, throwIfAborted } from './errors.js';
import { attachOpenAI } from './openai.js';
import { loadWithFallback } from './remote.js';
import { Session } from './session.js';
import { getSession } from './session_store.js';
import { KV_TYPES } from './protocol.js';
import { assistantMessage, chatMessages, engineOptions, fileCacheKey, oneOf, overflowArg, positiveInteger, sessionInput,
  toolList, toolMessages, wantsPrefill } from './call_options.js';

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
 * @property {ResponseFormat} [responseFormat] constrain the output: JSON Schema, any JSON object, a regex, a Lark grammar
 * @property {AbortSignal} [signal] aborts generation, and the prompt's prefill between chunks of 128 tokens
 * @property {(p: {done: number, total: number}) => void} [onPrefillProgress] prompt tokens prefilled so far, after each
 *   chunk; `total` excludes tokens reused from the KV cache, and the last event has done === total
 *
 * @typedef {{type: 'json_schema', schema: object} | {type: 'json_schema', json_schema: {schema: object}}
 *   | {type: 'json_object'} | {type: 'regex', pattern: string | RegExp} | {type: 'grammar', lark: string}
 *   | {type: 'text'}} ResponseFormat
 *
 * @typedef {{type: 'function', function: {name: string, description?: string, parameters?: object}}} Tool
 * @typedef {'auto' | 'none' | 'required' | {type: 'function', function: {name: string}}} ToolChoice
 * @typedef {{id: string, type: 'function', function: {name: string, arguments: string}}} ToolCall
 * @typedef {{role: 'assistant', content: string | null, toolCalls: ToolCall[]}} AssistantMessage
 *
 * @typedef {object} GenerationStats
 * @property {number} promptTokens
 * @property {number} generatedTokens
 * @property {number} prefillTokensPerSecond
 * @property {number} decodeTokensPerSecond
 * @property {number} [prefillMs] absent when aborted during the prefill
 * @property {number} [decodeMs]
 * @property {'eos' | 'stop' | 'length' | 'aborted' | null} finishReason 'length' also when the context filled up
 *   (then contextFull: true)
 * @property {{stage: string, ms: number}[]} [profile] with the profile option: milliseconds per generated token
 * @property {{stage: string, ms: number}[]} [prefillProfile] with the profile option: milliseconds per prefilled
 *   prompt token
 *
 * @typedef {{role: string, content: string}} ChatMessage
 * @typedef {ChatMessage | {role: 'assistant', content: string | null, toolCalls: ToolCall[]}
 *   | {role: 'tool', toolCallId: string, content: string}} ToolChatMessage
 */


const CONSTRUCT = Symbol('PocketLM.load');

export class PocketLM {
  /** @type {WorkerConnection} */
  #conn;
  /** @type {Readonly<Record<string, any>>} */
  #info;
  /** @type {GenerationStats | null} */
  #lastStats = null;
  /** @type {{content: string | null, toolCalls: {id: string, name: string, arguments: string}[]} | null} */
  #lastReply = null;
  /** What this model's sessions use (session.js). @type {import('./session.js').SessionPort} */
  #port;
  #nextSession = 1;

  /**
   * Loads a GGUF model: from the IndexedDB cache when it is there (no network request), else downloading it
   * into the cache (resuming an interrupted download), then building the engine in a new worker.
   * @param {string | URL | Blob} url a URL, or a local GGUF file (File / Blob)
   * @param {{onProgress?: (p: {loaded: number, total: number, phase: 'download' | 'cache' | 'file' | 'init'}) => void,
   *   cache?: boolean | string,
   *   signal?: AbortSignal, contextSize?: number | 'auto', kvType?: 'f16' | 'q8_0' | 'f32', sha256?: string,
   *   threads?: number | 'auto', chunkSize?: number, sessionMemory?: number}}
   *   [options]
   * @returns {Promise<PocketLM>}
   */
  static async load(url, options = {}) {
    // A File/Blob (an <input type=file>, a drop): read in slices inside the worker, never whole in the page;
    // `cache: true` (or a key string) also stores it in the ModelCache under info.cacheKey.
    // Hybrid: this device if it can (preflight + load), else the OpenAI-compatible server (a RemoteLM).
    const isBlob = typeof Blob !== 'undefined' && url instanceof Blob;
    if (options.fallback !== undefined && !isBlob) return loadWithFallback(PocketLM, url, options);
    const href = isBlob ? null : resolveUrl(url);
    const args = {
      ...(isBlob ? { file: url, cacheKey: fileCacheKey(/** @type {Blob} */ (url), options.cache) } : { url: href }),
      contextSize: options.contextSize === 'auto' ? undefined : positiveInteger('contextSize', options.contextSize),
      kvType: oneOf('kvType', options.kvType, KV_TYPES),
      threads: options.threads === undefined || options.threads === 'auto' ? 'auto'
        : positiveInteger('threads', options.threads),
      chunkSize: positiveInteger('chunkSize', options.chunkSize),
      sha256: options.sha256,
      storageEstimate: /** @type {any} */ (options).__storageEstimate,
      sessionMemory: positiveInteger('sessionMemory', options.sessionMemory),
    };
    throwIfAborted(options.signal, `loading ${href ?? 'the file'}`);
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
    this.#port = {
      request: (verb, args, opts) => this.#conn.request(verb, args, opts),
      collect: (input, options) => this.#collect(sessionInput(input, options), options),
      stream: (input, options) => this.#stream(sessionInput(input, options), options),
      lastStats: () => this.#lastStats,
      newId: () => this.#nextSession++,
    };
  }

  /**
   * A conversation with its own KV cache in the engine: several per model, each turn prefilling only what its
   * cache does not hold. Idle sessions' caches are freed least recently used first when they together pass the
   * `sessionMemory` load option (default 512 MB); such a session re-prefills its conversation on its next turn.
   * @param {{system?: string}} [options] @returns {Session}
   */
  session(options = {}) {
    return Session.create(this.#port, options);
  }

  /**
   * Continues a session from `session.save()`'s bytes (this model file, same kvType), its history not prefilled
   * again. Rejects with 'format' (damaged bytes) or 'session-mismatch' (another model), changing nothing.
   * @param {Uint8Array} bytes @returns {Promise<Session>}
   */
  restoreSession(bytes) {
    return Session.fromBytes(this.#port, bytes);
  }

  /**
   * The session `session.persist(key)` stored; rejects with 'not-found' when there is none under `key`.
   * @param {string} key @returns {Promise<Session>}
   */
  async loadSession(key) {
    const bytes = await getSession(key);
    if (!bytes) throw new PocketLMError('not-found', `no session is stored under ${JSON.stringify(key)}`);
    return this.restoreSession(bytes);
  }

  /** The engine's sessions: [{id, tokens, kvBytes, evicted, current}] (ids are the engine's; 0 is the default). */
  sessionInfo() {
    return this.#conn.request('sessions', {});
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
   * The assistant's reply, with the model's own chat template applied to `messages`. With `tools`, resolves to the
   * assistant's message `{role: 'assistant', content, toolCalls}` instead of a string: a call names one of the
   * tools and its arguments are valid for that tool's `parameters` schema.
   * @param {ChatMessage[] | ToolChatMessage[]} messages
   * @param {GenerateOptions & {tools?: Tool[], toolChoice?: ToolChoice}} [options]
   * @returns {Promise<any>} string, or AssistantMessage with tools
   */
  async chat(messages, options = {}) {
    if (options.tools !== undefined) {
      const input = { messages: toolMessages(messages), tools: toolList(options.tools), toolChoice: options.toolChoice ?? 'auto' };
      await this.#collect(input, options);
      return assistantMessage(/** @type {any} */ (this.#lastReply));
    }
    return this.#collect({ messages: chatMessages(messages), ...overflowArg(options) }, options);
  }

  /**
   * The reply as a parsed JSON value valid for `schema` (JSON Schema; `null` or omitted: any JSON object). A string
   * prompt is sent as the user's message when the model has a chat template, else completed as raw text.
   * Rejects with code 'length' (details: {text, stats}) when maxTokens ran out before the JSON was complete.
   * @param {string | ChatMessage[]} input @param {object | null} [schema] @param {GenerateOptions} [options]
   * @returns {Promise<any>}
   */
  async json(input, schema, options = {}) {
    const responseFormat = schema == null ? { type: 'json_object' } : { type: 'json_schema', schema };
    const opts = { ...options, responseFormat };
    const text = typeof input === 'string' && !this.#info.chatTemplate
      ? await this.complete(input, opts)
      : await this.chat(typeof input === 'string' ? [{ role: 'user', content: input }] : input, opts);
    const stats = /** @type {any} */ (this.#lastStats);
    if (stats?.finishReason === 'length' || stats?.finishReason === 'context' || stats?.constraint?.complete === false) {
      throw new PocketLMError('length', `the output stopped (${stats?.finishReason}) after ${stats?.generatedTokens} `
        + 'tokens, before the JSON was complete: raise maxTokens (or contextSize)', { details: { text, stats } });
    }
    return JSON.parse(text);
  }

  /**
   * `complete` as text pieces while they are generated. Leaving a `for await` loop early stops generation.
   * @param {string} prompt @param {GenerateOptions} [options] @returns {TextStream}
   */
  stream(prompt, options = {}) {
    return this.#stream({ prompt: String(prompt) }, options);
  }

  /**
   * `chat` as text pieces while they are generated. With `tools`, the pieces are the raw reply (a call as
   * `<tool_call>` JSON); `lastReply` then has the parsed {content, toolCalls} once the stream ends.
   * @returns {TextStream}
   */
  chatStream(messages, options = {}) {
    if (options.tools !== undefined) {
      return this.#stream({ messages: toolMessages(messages), tools: toolList(options.tools),
        toolChoice: options.toolChoice ?? 'auto' }, options);
    }
    return this.#stream({ messages: chatMessages(messages), ...overflowArg(options) }, options);
  }

  /** The assistant message of the last chat with tools ({role, content, toolCalls}), or null. */
  get lastReply() {
    return this.#lastReply ? assistantMessage(this.#lastReply) : null;
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
    const req = { ...input, options: engineOptions(options), collect: true, prefillProgress: wantsPrefill(options) };
    try {
      const { text, stats, reply } = await this.#conn.request('generate', req, {
        signal: options.signal,
        onEvent: (m) => m.prefill && options.onPrefillProgress(m.prefill),
      });
      this.#lastStats = stats;
      this.#lastReply = reply ?? null;
      return text;
    } catch (e) {
      this.#noteAbortStats(e);
      throw e;
    }
  }

  #stream(input, options) {
    const req = { ...input, options: engineOptions(options), prefillProgress: wantsPrefill(options) };
    return new TextStream((sink) => {
      const { id, promise } = this.#conn.send('generate', req, {
        signal: options.signal,
        onEvent: (m) => {
          if (typeof m.piece === 'string') sink.piece(m.piece);
          else if (m.prefill) options.onPrefillProgress(m.prefill);
        },
      });
      promise.then(({ stats, reply }) => {
        this.#lastStats = stats;
        this.#lastReply = reply ?? null;
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
