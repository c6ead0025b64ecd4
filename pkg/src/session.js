// Session: one conversation with its own KV cache in the engine (src/session.rs). Several per model; each turn
// prefills only what its cache does not hold; save() / persist() keep it (cache included) across page loads.

import { PocketLMError } from './errors.js';
import * as sessionStore from './session_store.js';

/** What a session saves beside its KV cache (the metadata bytes of the engine's blob). */
const META_VERSION = 1;

/**
 * The plumbing a PocketLM hands its sessions: worker requests, and its generation calls with a session attached.
 * @typedef {{request: (verb: string, args: object, opts?: object) => Promise<any>,
 *   collect: (input: object, options: object) => Promise<string>, stream: (input: object, options: object) => any,
 *   lastStats: () => any, newId: () => number}} SessionPort
 */

const CONSTRUCT = Symbol('Session');

/** Raw text in a session, for the Prompt API polyfill (which renders its own conversation):
 * `session[RAW](prompt, options, stream)` -> Promise<string> or, with stream, a TextStream. Not public API. */
export const RAW = Symbol('Session.raw');

function checkMessages(list) {
  if (!Array.isArray(list) || !list.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string')) {
    throw new PocketLMError('invalid-argument', 'a turn is a string or an array of {role, content} strings');
  }
  return list.map((m) => ({ role: m.role, content: m.content }));
}

export class Session {
  /** @type {SessionPort} */
  #port;
  #id;
  /** @type {{role: string, content: string}[]} */
  #messages;
  #destroyed = false;
  /** @type {any} */
  #lastStats = null;

  /** @private use lm.session(), lm.restoreSession(), lm.loadSession() */
  constructor(token, port, id, messages) {
    if (token !== CONSTRUCT) throw new TypeError('use lm.session() to create a Session');
    this.#port = port;
    this.#id = id;
    this.#messages = messages;
  }

  /** A new session on `port`'s engine (not yet holding any KV memory). @param {SessionPort} port */
  static create(port, { system } = {}) {
    if (system !== undefined && typeof system !== 'string') {
      throw new PocketLMError('invalid-argument', 'system must be a string');
    }
    const id = port.newId();
    // Requests run in order in the worker: later calls on this session find it created.
    const created = port.request('createSession', { session: id });
    created.catch(() => {}); // its failure reaches the first call that uses the session
    return new Session(CONSTRUCT, port, id, system === undefined ? [] : [{ role: 'system', content: system }]);
  }

  /**
   * A session from bytes `save()` returned (from this model file, loaded with the same kvType): nothing of its
   * history is prefilled again. Rejects with 'format' (damaged bytes) or 'session-mismatch' (another model).
   * @param {{[k: symbol]: any}} lm a PocketLM @param {Uint8Array} bytes @returns {Promise<Session>}
   */
  static async restore(lm, bytes) {
    return lm.restoreSession(bytes);
  }

  /** @param {SessionPort} port @param {Uint8Array} bytes */
  static async fromBytes(port, bytes) {
    if (!(bytes instanceof Uint8Array)) throw new PocketLMError('invalid-argument', 'a saved session is a Uint8Array');
    const id = port.newId();
    const meta = await port.request('restoreSession', { session: id, blob: bytes.slice() });
    let messages;
    try {
      const m = JSON.parse(new TextDecoder().decode(meta));
      if (m?.v !== META_VERSION) throw new Error(`metadata version ${m?.v}`);
      messages = checkMessages(m.messages);
    } catch (e) {
      port.request('dropSession', { session: id }).catch(() => {});
      throw new PocketLMError('format', `the saved session's conversation is unreadable (${/** @type {Error} */ (e).message})`);
    }
    return new Session(CONSTRUCT, port, id, messages);
  }

  /** The conversation so far (a copy): the system message, then the turns. */
  get messages() {
    return this.#messages.map((m) => ({ ...m }));
  }

  /** Statistics of this session's last turn (prefilledTokens: what its cache did not hold), or null. */
  get lastStats() {
    return this.#lastStats;
  }

  #turn(input) {
    if (this.#destroyed) throw new PocketLMError('invalid-argument', 'this session was destroyed');
    return typeof input === 'string' ? [{ role: 'user', content: input }] : checkMessages(input);
  }

  /**
   * Adds `input` (the user's text, or messages) to the conversation and resolves to the assistant's reply, which
   * is added too. Only the new turn is prefilled while the session's cache holds the rest.
   * @param {string | {role: string, content: string}[]} input @param {object} [options] GenerateOptions
   * @returns {Promise<string>}
   */
  async chat(input, options = {}) {
    const turn = this.#turn(input);
    const messages = [...this.#messages, ...turn];
    const text = await this.#port.collect({ messages, session: this.#id }, options);
    this.#lastStats = this.#port.lastStats();
    this.#messages = [...messages, { role: 'assistant', content: text }];
    return text;
  }

  /**
   * `chat` as text pieces (a TextStream); the reply joins the conversation when the stream ends complete.
   * @returns {AsyncIterableIterator<string>}
   */
  chatStream(input, options = {}) {
    const turn = this.#turn(input);
    const messages = [...this.#messages, ...turn];
    let text = '';
    const inner = this.#port.stream({ messages, session: this.#id }, options);
    const self = this;
    return {
      async next() {
        const r = await inner.next();
        if (r.done) {
          const stats = self.#port.lastStats();
          if (stats && stats.finishReason !== 'aborted') {
            self.#lastStats = stats;
            self.#messages = [...messages, { role: 'assistant', content: text }];
          }
        } else {
          text += r.value;
        }
        return r;
      },
      return: () => inner.return(),
      [Symbol.asyncIterator]() { return this; },
    };
  }

  [RAW](prompt, options, stream) {
    if (this.#destroyed) throw new PocketLMError('invalid-argument', 'this session was destroyed');
    const input = { prompt: String(prompt), session: this.#id };
    return stream ? this.#port.stream(input, options) : this.#port.collect(input, options);
  }

  /** A copy of this session (its conversation and KV cache); the two then go separate ways. */
  clone() {
    if (this.#destroyed) throw new PocketLMError('invalid-argument', 'this session was destroyed');
    const id = this.#port.newId();
    this.#port.request('cloneSession', { session: id, source: this.#id }).catch(() => {});
    return new Session(CONSTRUCT, this.#port, id, this.messages);
  }

  /**
   * The session as bytes (header with the model's hash and the KV layout, the tokens, the KV rows, a checksum):
   * `lm.restoreSession(bytes)` continues it on this model, after a reload too.
   * @returns {Promise<Uint8Array>}
   */
  async save() {
    if (this.#destroyed) throw new PocketLMError('invalid-argument', 'this session was destroyed');
    const meta = new TextEncoder().encode(JSON.stringify({ v: META_VERSION, messages: this.#messages }));
    return this.#port.request('saveSession', { session: this.#id, meta }, { transfer: [meta.buffer] });
  }

  /**
   * Saves the session in IndexedDB under `key` (replacing what was there); `lm.loadSession(key)` restores it.
   * Rejects with 'quota' when the origin's storage cannot take it.
   * @param {string} key
   */
  async persist(key) {
    if (typeof key !== 'string' || key === '') throw new PocketLMError('invalid-argument', 'a session key is a non-empty string');
    await sessionStore.putSession(key, await this.save());
  }

  /** Frees the session's KV cache; later calls reject with 'invalid-argument'. */
  async destroy() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await this.#port.request('dropSession', { session: this.#id }).catch(() => {});
  }
}
