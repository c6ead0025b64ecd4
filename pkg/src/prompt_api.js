// `pocketlm/prompt-api`: the web's Prompt API (WICG webmachinelearning/prompt-api: `LanguageModel`) on a local
// model. Every session of a page shares one PocketLM (one worker, one engine); a session keeps its conversation
// and renders it with the model's chat template on each call, and runs in its own engine session (lm.session(): its
// own KV cache), so a follow-up prompt prefills only the new turn whatever other sessions ran in between; clone()
// copies the engine session, destroy() frees it.

import { PocketLM } from './pocketlm.js';
import { ModelCache } from './model_cache.js';
import { RAW } from './session.js';
import { SIMD128_PROBE } from './backend.js';
import { MODES, PARAMS, abortable, canonicalize, checkExpected, constraintOf, domError, plain, quotaError, samplingOf,
  toPromptError } from './prompt_input.js';

/** The model a page gets without configure()/install() options: this path resolved against the page's URL. */
export const DEFAULT_MODEL_URL = 'models/SmolLM2-135M-Instruct.Q4_1.gguf';

/** @type {{modelUrl: string, loadOptions: Record<string, any>, languages: string[], maxResponseTokens: number}} */
const config = { modelUrl: DEFAULT_MODEL_URL, loadOptions: {}, languages: ['en'], maxResponseTokens: 1024 };

/**
 * Sets what `LanguageModel` runs: `modelUrl` (a GGUF file; default DEFAULT_MODEL_URL), `loadOptions` (passed to
 * PocketLM.load: contextSize, threads, sha256, ...) and `languages` (BCP 47 tags the model is offered for, default
 * ['en']: `availability()` answers 'unavailable' for expected languages outside them), `maxResponseTokens` (the
 * longest answer, default 1024 tokens, and never more than the context window has left: a small model can repeat
 * itself until the window is full). Applies to sessions created afterwards; a model already loaded for other sessions
 * stays loaded until they are destroyed.
 * @param {{modelUrl?: string | URL, loadOptions?: Record<string, any>, languages?: string[], maxResponseTokens?: number}}
 *   [options]
 */
export function configure(options = {}) {
  if (options.modelUrl !== undefined) config.modelUrl = String(options.modelUrl);
  if (options.loadOptions !== undefined) config.loadOptions = { ...options.loadOptions };
  if (options.languages !== undefined) config.languages = Intl.getCanonicalLocales(options.languages);
  if (options.maxResponseTokens !== undefined) {
    if (!Number.isSafeInteger(options.maxResponseTokens) || options.maxResponseTokens < 1) {
      throw new RangeError('maxResponseTokens must be a positive integer');
    }
    config.maxResponseTokens = options.maxResponseTokens;
  }
}

/**
 * Defines `globalThis.LanguageModel` when the browser has none (a built-in one is left alone), after applying
 * `options` as configure() does. Returns the `LanguageModel` now in effect (ours or the browser's).
 */
export function install(options = {}) {
  configure(options);
  if (!('LanguageModel' in globalThis)) {
    Object.defineProperty(globalThis, 'LanguageModel', { value: LanguageModel, writable: true, configurable: true });
  }
  return /** @type {any} */ (globalThis).LanguageModel;
}

// --- the shared model

/**
 * @typedef {object} Shared
 * @property {string} url
 * @property {Promise<PocketLM>} ready
 * @property {PocketLM | null} lm
 * @property {Set<(fraction: number) => void>} listeners download progress, 0..1
 * @property {number} waiting creates waiting for the load
 * @property {AbortController} controller aborts the load when every waiting create was aborted
 * @property {Set<object>} users sessions
 */

/** The models sessions use, by URL (one PocketLM per URL, shared by its sessions). @type {Map<string, Shared>} */
const models = new Map();

/** The PocketLM that sessions of the configured model share (its info, lastStats, ...), or null before it loaded. */
export function sharedModel() {
  return models.get(modelHref())?.lm ?? null;
}

function modelHref() {
  return new URL(config.modelUrl, globalThis.document?.baseURI ?? globalThis.location?.href).href;
}

/** @returns {Shared} */
function acquireShared() {
  const url = modelHref();
  const existing = models.get(url);
  if (existing) return existing;
  const s = /** @type {Shared} */ ({ url, lm: null, listeners: new Set(), waiting: 0, controller: new AbortController(),
    users: new Set() });
  s.ready = PocketLM.load(url, {
    ...config.loadOptions,
    signal: s.controller.signal,
    onProgress: ({ loaded, total, phase }) => {
      // Download (or reading the cache) is the part a user waits for; 1 is reported once the model is ready.
      const f = phase === 'init' || !total ? 0.99 : Math.min(0.99, loaded / total);
      for (const l of s.listeners) l(f);
    },
  }).then((lm) => {
    s.lm = lm;
    return lm;
  }, (e) => {
    if (models.get(url) === s) models.delete(url);
    throw e;
  });
  models.set(url, s);
  return s;
}

/** A session is done with the model: the last one unloads it (a later create loads it again, from the cache). */
function releaseShared(s, session) {
  s.users.delete(session);
  if (s.users.size === 0 && s.waiting === 0) {
    if (models.get(s.url) === s) models.delete(s.url);
    s.lm?.unload();
  }
}

// --- options and input

function supportsLanguage(tag) {
  return config.languages.some((l) => tag === l || tag.startsWith(`${l}-`));
}

/** Why these options cannot be served (types other than text, languages outside config.languages, tools), or null. */
function unsupported(inputs, outputs, tools) {
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) throw new TypeError('tools must be an array');
    if (tools.length > 0) return 'tools are not supported by this implementation yet';
  }
  for (const x of inputs) if (x.type !== 'text') return `input type '${x.type}' is not supported (text only)`;
  for (const x of outputs) if (x.type !== 'text') return `output type '${x.type}' is not supported (text only)`;
  for (const x of [...inputs, ...outputs]) {
    for (const l of x.languages ?? []) if (!supportsLanguage(l)) return `language '${l}' is not supported`;
  }
  return null;
}

function canRun() {
  return typeof WebAssembly === 'object' && typeof Worker === 'function' && WebAssembly.validate(SIMD128_PROBE);
}

// --- the monitor

class CreateMonitor extends EventTarget {
  /** @type {((e: Event) => void) | null} */
  #handler = null;
  get ondownloadprogress() {
    return this.#handler;
  }
  set ondownloadprogress(fn) {
    if (this.#handler) this.removeEventListener('downloadprogress', this.#handler);
    this.#handler = typeof fn === 'function' ? fn : null;
    if (this.#handler) this.addEventListener('downloadprogress', this.#handler);
  }
}

const CREATE = Symbol('LanguageModel.create');

export class LanguageModel extends EventTarget {
  /** @type {Shared} */ #shared;
  /** This session's engine session (its own KV cache). @type {import('./session.js').Session} */ #engine;
  /** @type {{role: string, content: string}[]} */ #initial;
  /** @type {{role: string, content: string}[][]} turns after the initial prompts, oldest first */ #turns;
  #usage = 0;
  #window;
  #maxResponse;
  #temperature;
  #topK;
  #samplingMode;
  #expectedInputs;
  #expectedOutputs;
  #destroyer = new AbortController();
  /** @type {Promise<unknown>} */ #queue = Promise.resolve();
  /** @type {Record<string, ((e: Event) => void) | null>} */ #handlers = { contextoverflow: null, quotaoverflow: null };

  /** @private use LanguageModel.create() */
  constructor(token, init) {
    super();
    if (token !== CREATE) throw new TypeError('Illegal constructor: use LanguageModel.create()');
    this.#shared = init.shared;
    this.#engine = init.engine;
    this.#initial = init.initial;
    this.#turns = init.turns;
    this.#usage = init.usage;
    this.#window = init.window;
    this.#maxResponse = init.maxResponse ?? config.maxResponseTokens;
    this.#temperature = init.temperature;
    this.#topK = init.topK;
    this.#samplingMode = init.samplingMode;
    this.#expectedInputs = init.expectedInputs;
    this.#expectedOutputs = init.expectedOutputs;
    init.shared.users.add(this);
  }

  /**
   * 'unavailable' (this browser cannot run the engine, or the options ask for inputs/outputs/languages it does not
   * offer), 'downloadable', 'downloading' (a create() is loading it now) or 'available' (loaded, or completely in
   * the cache).
   * @returns {Promise<'unavailable' | 'downloadable' | 'downloading' | 'available'>}
   */
  static async availability(options = {}) {
    const inputs = checkExpected(options.expectedInputs, 'expectedInputs');
    const outputs = checkExpected(options.expectedOutputs, 'expectedOutputs');
    if (options.samplingMode !== undefined && !MODES.includes(options.samplingMode)) {
      throw new TypeError(`samplingMode must be one of ${MODES.join(', ')}`);
    }
    if (unsupported(inputs, outputs, options.tools) || !canRun()) return 'unavailable';
    const url = modelHref();
    const loaded = models.get(url);
    if (loaded) return loaded.lm ? 'available' : 'downloading';
    const entry = (await ModelCache.list().catch(() => [])).find((e) => e.url === url);
    return entry?.complete ? 'available' : 'downloadable';
  }

  /** The sampling parameters' ranges (the spec marks this experimental). */
  static async params() {
    return PARAMS;
  }

  /**
   * A new session. Loads the model the first time (downloading it into the IndexedDB cache if needed), firing
   * `downloadprogress` events (loaded 0..1, total 1; at least 0 and 1) at the monitor.
   */
  static async create(options = {}) {
    const inputs = checkExpected(options.expectedInputs, 'expectedInputs');
    const outputs = checkExpected(options.expectedOutputs, 'expectedOutputs');
    const sampling = samplingOf(options);
    const initial = options.initialPrompts === undefined ? [] : canonicalize(options.initialPrompts, false);
    if (initial.some((m) => m.prefix)) throw domError('SyntaxError', 'initialPrompts cannot end with a prefix');
    const signal = options.signal;
    if (signal?.aborted) throw signal.reason;
    const why = unsupported(inputs, outputs, options.tools) ?? (canRun() ? null : 'this browser cannot run the engine (WebAssembly SIMD and Worker needed)');
    if (why) throw domError('NotSupportedError', why);
    const monitor = new CreateMonitor();
    if (options.monitor !== undefined) {
      if (typeof options.monitor !== 'function') throw new TypeError('monitor must be a function');
      options.monitor(monitor);
    }
    const progress = (loaded) => monitor.dispatchEvent(new ProgressEvent('downloadprogress', { loaded, total: 1, lengthComputable: true }));
    let last = 0;
    progress(0);
    const s = acquireShared();
    const listener = (f) => {
      if (f > last) {
        last = f;
        progress(f);
      }
    };
    s.listeners.add(listener);
    // Counted as waiting until the session exists, so that destroying the other sessions meanwhile does not unload
    // the model under it.
    s.waiting++;
    let session;
    let engine = null;
    try {
      const lm = await abortable(s.ready, signal);
      progress(1);
      const window = lm.info.contextSize;
      let usage = 0;
      engine = lm.session();
      if (initial.length > 0) {
        const text = await lm.applyChatTemplate(plain(initial));
        usage = (await lm.tokenize(text, { addSpecial: true })).length;
        if (usage + 1 > window) {
          throw quotaError(`the initial prompts need ${usage} tokens; the context window has ${window}`, usage, window);
        }
        // Prefill them now (no token generated), so the first prompt prefills only itself.
        await engine[RAW](text, { maxTokens: 0, signal });
      }
      session = new LanguageModel(CREATE, { shared: s, engine, initial: plain(initial), turns: [], usage, window,
        ...sampling, expectedInputs: inputs, expectedOutputs: outputs });
    } catch (e) {
      engine?.destroy();
      throw toPromptError(e, signal, 'create');
    } finally {
      s.listeners.delete(listener);
      s.waiting--;
      if (s.waiting === 0 && s.users.size === 0) {
        // Every create waiting for this model gave up (or failed): stop the download, or unload.
        if (!s.lm) s.controller.abort(signal?.reason);
        else releaseShared(s, null);
      }
    }
    signal?.addEventListener('abort', () => session.destroy(signal.reason), { once: true });
    return session;
  }

  get contextUsage() { return this.#usage; }
  get contextWindow() { return this.#window; }
  /** Deprecated names of contextUsage / contextWindow. */
  get inputUsage() { return this.#usage; }
  get inputQuota() { return this.#window; }
  get temperature() { return this.#temperature; }
  get topK() { return this.#topK; }
  get samplingMode() { return this.#samplingMode; }
  get expectedInputs() { return this.#expectedInputs.length ? structuredClone(this.#expectedInputs) : undefined; }
  get expectedOutputs() { return this.#expectedOutputs.length ? structuredClone(this.#expectedOutputs) : undefined; }

  get oncontextoverflow() { return this.#handlers.contextoverflow; }
  set oncontextoverflow(fn) { this.#setHandler('contextoverflow', fn); }
  get onquotaoverflow() { return this.#handlers.quotaoverflow; }
  set onquotaoverflow(fn) { this.#setHandler('quotaoverflow', fn); }

  #setHandler(type, fn) {
    if (this.#handlers[type]) this.removeEventListener(type, this.#handlers[type]);
    this.#handlers[type] = typeof fn === 'function' ? fn : null;
    if (this.#handlers[type]) this.addEventListener(type, this.#handlers[type]);
  }

  /** The model's answer to `input` (a string, or messages), added to the session with it. */
  prompt(input, options = {}) {
    let job;
    try {
      job = this.#prepare(input, options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#enqueue(job.signal, async () => {
      const { lm, prompt, genOptions, messages, prefix, constraint } = await this.#fit(job);
      let text;
      try {
        text = await this.#engine[RAW](prompt, { ...genOptions, signal: job.signal });
      } catch (e) {
        throw toPromptError(e, job.signal);
      }
      this.#checkConstraint(lm, constraint, text);
      await this.#commit(lm, [...messages, { role: 'assistant', content: prefix + text }]);
      return text;
    });
  }

  /** `prompt` as a ReadableStream of the answer's pieces (each chunk is the next piece, not the text so far). */
  promptStreaming(input, options = {}) {
    let job;
    let prepareError = null;
    try {
      job = this.#prepare(input, options);
    } catch (e) {
      prepareError = e;
    }
    let pieces = null;
    let cancelled = false;
    return new ReadableStream({
      start: (controller) => {
        if (prepareError) {
          controller.error(prepareError);
          return;
        }
        this.#enqueue(job.signal, async () => {
          const { lm, prompt, genOptions, messages, prefix, constraint } = await this.#fit(job);
          if (cancelled) return;
          let text = '';
          pieces = this.#engine[RAW](prompt, { ...genOptions, signal: job.signal }, true);
          try {
            for await (const piece of pieces) {
              text += piece;
              controller.enqueue(piece);
            }
          } catch (e) {
            throw toPromptError(e, job.signal);
          }
          if (cancelled) return;
          this.#checkConstraint(lm, constraint, text);
          await this.#commit(lm, [...messages, { role: 'assistant', content: prefix + text }]);
          controller.close();
        }).catch((e) => {
          if (!cancelled) controller.error(e);
        });
      },
      cancel: () => {
        cancelled = true;
        pieces?.return();
      },
    });
  }

  /** Adds `input` to the session without asking for an answer (and prefills it). */
  append(input, options = {}) {
    let job;
    try {
      job = this.#prepare(input, { signal: options.signal }, true);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#enqueue(job.signal, async () => {
      const { lm, prompt, messages } = await this.#fit(job);
      try {
        await this.#engine[RAW](prompt, { maxTokens: 0, signal: job.signal });
      } catch (e) {
        throw toPromptError(e, job.signal);
      }
      await this.#commit(lm, messages);
    });
  }

  /** Tokens `input` would add to the session (with the chat template's markup, and a response constraint's guidance). */
  measureContextUsage(input, options = {}) {
    let job;
    try {
      job = this.#prepare(input, options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#enqueue(job.signal, async () => {
      const lm = await this.#model();
      const all = await this.#count(lm, [...this.#initial, ...this.#turns.flat(), ...job.messages]);
      return Math.max(0, all - this.#usage);
    });
  }

  /** Deprecated name of measureContextUsage. */
  measureInputUsage(input, options = {}) {
    return this.measureContextUsage(input, options);
  }

  /** A new session with this one's conversation and options; the two then go separate ways. */
  async clone(options = {}) {
    const signal = options.signal ? AbortSignal.any([this.#destroyer.signal, options.signal]) : this.#destroyer.signal;
    if (signal.aborted) throw signal.reason;
    // Queued behind this session's pending calls, so the copy includes what they add.
    return this.#enqueue(signal, async () => {
      const copy = new LanguageModel(CREATE, { shared: this.#shared, engine: this.#engine.clone(), initial: this.#initial.map((m) => ({ ...m })),
        turns: this.#turns.map((t) => t.map((m) => ({ ...m }))), usage: this.#usage, window: this.#window,
        maxResponse: this.#maxResponse,
        temperature: this.#temperature, topK: this.#topK, samplingMode: this.#samplingMode,
        expectedInputs: this.#expectedInputs, expectedOutputs: this.#expectedOutputs });
      options.signal?.addEventListener('abort', () => copy.destroy(options.signal.reason), { once: true });
      return copy;
    });
  }

  /** Ends the session: pending and later calls reject with an AbortError (or `reason`); the last session unloads the model. */
  destroy(reason) {
    if (this.#destroyer.signal.aborted) return;
    this.#destroyer.abort(reason ?? domError('AbortError', 'the session was destroyed'));
    this.#engine.destroy(); // before the model may unload with the last session; a failure there is moot
    releaseShared(this.#shared, this);
  }

  // --- internals

  /** Validates a call; everything that can fail before the model runs fails here, synchronously. */
  #prepare(input, options, isAppend = false) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    const signal = options.signal ? AbortSignal.any([this.#destroyer.signal, options.signal]) : this.#destroyer.signal;
    if (signal.aborted) throw signal.reason;
    const hasInput = this.#initial.length > 0 || this.#turns.length > 0;
    const messages = canonicalize(input, hasInput);
    const prefixAt = messages.findIndex((m) => m.prefix);
    if (isAppend && prefixAt >= 0) throw domError('SyntaxError', 'append() takes no prefix message');
    const constraint = isAppend ? null : constraintOf(options);
    const prefix = prefixAt >= 0 ? messages[prefixAt].content : '';
    const turn = plain(prefixAt >= 0 ? messages.slice(0, prefixAt) : messages);
    if (constraint && !options.omitResponseConstraintInput) {
      // The guidance goes into the last user message (it is part of the conversation from now on).
      const lastUser = turn.findLastIndex((m) => m.role === 'user');
      if (lastUser >= 0) turn[lastUser] = { ...turn[lastUser], content: `${turn[lastUser].content}\n\n${constraint.guidance}` };
      else turn.push({ role: 'user', content: constraint.guidance });
    }
    return { signal, messages: turn, prefix, constraint };
  }

  async #model() {
    return this.#shared.lm ?? this.#shared.ready;
  }

  async #count(lm, messages) {
    if (messages.length === 0) return 0;
    const text = await lm.applyChatTemplate(messages);
    return (await lm.tokenize(text, { addSpecial: true })).length;
  }

  /**
   * Makes room for the job: drops the oldest turns (never the initial prompts) until the conversation plus the new
   * messages and one answer token fit the context window, firing `contextoverflow` if any was dropped; rejects with
   * QuotaExceededError (dropping nothing) if even that is not enough. Returns the prompt text to run.
   */
  async #fit(job) {
    const lm = await this.#model();
    let turns = this.#turns;
    let rendered;
    let needed;
    for (;;) {
      const all = [...this.#initial, ...turns.flat(), ...job.messages];
      rendered = all.length ? await lm.applyChatTemplate(all) : '';
      needed = (await lm.tokenize(rendered + job.prefix, { addSpecial: true })).length;
      if (needed + 1 <= this.#window) break;
      if (turns.length === 0) {
        throw quotaError(`the prompt needs ${needed} tokens of context with the initial prompts; the window has ${this.#window}`,
          needed, this.#window);
      }
      turns = turns.slice(1);
    }
    if (job.signal.aborted) throw job.signal.reason;
    if (turns !== this.#turns) {
      this.#turns = turns;
      this.#usage = await this.#count(lm, [...this.#initial, ...turns.flat()]);
      this.dispatchEvent(new Event('contextoverflow'));
      this.dispatchEvent(new Event('quotaoverflow'));
    }
    const genOptions = {
      temperature: this.#temperature,
      topK: this.#topK,
      maxTokens: Math.min(this.#maxResponse, this.#window - needed),
      // The engine's default seed is fixed; a session samples differently on each call unless it is greedy.
      ...(this.#temperature > 0 ? { seed: crypto.getRandomValues(new Uint32Array(1))[0] } : {}),
      ...(job.constraint ? { responseFormat: job.constraint.format } : {}),
    };
    return { lm, prompt: rendered + job.prefix, genOptions, messages: job.messages, prefix: job.prefix, constraint: job.constraint };
  }

  /** A constrained answer cut short (out of tokens) did not meet its constraint: SyntaxError, as the spec says. */
  #checkConstraint(lm, constraint, text) {
    if (!constraint) return;
    const reason = lm.lastStats?.finishReason;
    if (reason === 'length' || reason === 'context') {
      throw domError('SyntaxError', `the answer ran out of room before it met the response constraint: ${text.slice(0, 80)}`);
    }
  }

  async #commit(lm, messages) {
    this.#turns = [...this.#turns, messages];
    this.#usage = await this.#count(lm, [...this.#initial, ...this.#turns.flat()]);
  }

  /** Runs `fn` after this session's earlier calls; rejects at once when `signal` aborts (queued or running). */
  #enqueue(signal, fn) {
    const run = this.#queue.then(() => {
      if (signal.aborted) throw signal.reason;
      return fn();
    });
    this.#queue = run.catch(() => {});
    return abortable(run, signal);
  }
}
