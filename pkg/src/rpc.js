// The page's side of the worker protocol (protocol.js): numbered requests, replies matched by id, events routed to
// the request that caused them, AbortSignal turned into a 'cancel' message.

import { PocketLMError, abortError, fromWire } from './errors.js';

/** Starts the engine worker, found next to this module so the package works from any static server. */
export function spawnWorker() {
  if (typeof Worker === 'undefined') {
    throw new PocketLMError('unsupported', 'Web Workers are not available here; pocketlm runs in browser pages');
  }
  return new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'pocketlm' });
}

/** Absolute form of a model URL (the cache key), resolved against the page like fetch() would. */
export function resolveUrl(url) {
  try {
    return new URL(String(url), globalThis.location?.href).href;
  } catch {
    throw new PocketLMError('invalid-argument', `not a valid URL: ${JSON.stringify(String(url))}`);
  }
}

/**
 * @typedef {object} Pending
 * @property {(v: any) => void} resolve
 * @property {(e: Error) => void} reject
 * @property {((msg: any) => void) | undefined} onEvent
 * @property {() => void} cleanup
 */

export class WorkerConnection {
  /** @type {Worker} */
  #worker;
  #nextId = 1;
  /** @type {Map<number, Pending>} */
  #pending = new Map();
  /** @type {PocketLMError | null} */
  #closed = null;

  /** @param {Worker} worker */
  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = (ev) => this.#onMessage(ev.data);
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      const detail = /** @type {any} */ (ev).message || 'worker.js or one of its modules could not be loaded: '
        + 'serve the whole dist/ directory, with JavaScript and wasm MIME types';
      this.close(new PocketLMError('worker', `the pocketlm worker failed: ${detail}`));
    };
    worker.onmessageerror = () => {
      this.close(new PocketLMError('worker', 'a message from the pocketlm worker could not be read'));
    };
  }

  /**
   * Sends one request. Aborting `signal` sends 'cancel'; the promise still settles with the worker's reply (an
   * AbortError), so when it rejects the worker has really stopped.
   * @param {string} verb @param {object} args
   * @param {{signal?: AbortSignal, onEvent?: (msg: any) => void, transfer?: Transferable[]}} [opts]
   * @returns {{id: number, promise: Promise<any>}}
   */
  send(verb, args, opts = {}) {
    const id = this.#nextId++;
    if (this.#closed) return { id, promise: Promise.reject(this.#closed) };
    const { signal, onEvent, transfer = [] } = opts;
    if (signal?.aborted) return { id, promise: Promise.reject(abortError(signal.reason)) };
    const promise = new Promise((resolve, reject) => {
      const onAbort = () => this.cancel(id);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        resolve, reject, onEvent,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      });
    });
    this.#worker.postMessage({ id, verb, args }, transfer);
    return { id, promise };
  }

  /** @param {string} verb @param {object} args @param {Parameters<WorkerConnection['send']>[2]} [opts] */
  request(verb, args, opts) {
    return this.send(verb, args, opts).promise;
  }

  /** Asks the worker to stop request `target`; its reply will say how it ended. */
  cancel(target) {
    if (this.#closed || !this.#pending.has(target)) return;
    this.#worker.postMessage({ id: this.#nextId++, verb: 'cancel', args: { target } });
  }

  get closed() {
    return this.#closed !== null;
  }

  /** Terminates the worker (freeing all its memory) and rejects whatever is pending with `reason`. */
  close(reason = new PocketLMError('unloaded', 'the model was unloaded')) {
    if (this.#closed) return;
    this.#closed = reason;
    this.#worker.terminate();
    for (const p of this.#pending.values()) {
      p.cleanup();
      p.reject(reason);
    }
    this.#pending.clear();
  }

  #onMessage(msg) {
    const p = msg && this.#pending.get(msg.id);
    if (!p) return;
    if (!('ok' in msg)) {
      p.onEvent?.(msg);
      return;
    }
    this.#pending.delete(msg.id);
    p.cleanup();
    if (msg.ok) p.resolve(msg.value);
    else p.reject(fromWire(msg.error));
  }
}
