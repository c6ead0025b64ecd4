// The one error type of the package, and its form on the wire between the worker and the page.

/**
 * Every failure the package reports. `code` is stable and meant for programs; `message` is meant for the developer
 * and says what to do. Aborts have `name === 'AbortError'` (like fetch's) and `code === 'aborted'`.
 *
 * Codes: 'network' | 'http' (with `status`) | 'quota' (with `details`) | 'storage' | 'integrity' | 'format' |
 * 'unsupported' | 'context-overflow' | 'memory' | 'tokenizer' | 'template' | 'invalid-argument' | 'aborted' |
 * 'worker' | 'unloaded' | 'internal' | 'length' (lm.json(): maxTokens ran out inside the JSON) |
 * 'session-mismatch' (a saved session from another model or kvType) | 'not-found' (lm.loadSession: no such key).
 */
export class PocketLMError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, details?: object, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = code === 'aborted' ? 'AbortError' : 'PocketLMError';
    /** @type {string} */
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.details !== undefined) this.details = extra.details;
  }
}

/** @param {unknown} [reason] an AbortSignal's reason, kept as `cause` */
export function abortError(reason, what = 'the operation') {
  const why = reason instanceof Error && reason.name !== 'AbortError' && reason.message ? `: ${reason.message}` : '';
  return new PocketLMError('aborted', `${what} was aborted${why}`, { cause: reason });
}

/** @param {AbortSignal | undefined} signal */
export function throwIfAborted(signal, what) {
  if (signal?.aborted) throw abortError(signal.reason, what);
}

/**
 * Turns anything thrown (a wasm `Error` carrying `code`, a DOMException, a plain Error) into the wire form
 * `{code, message, status?, details?}`, which survives structured cloning.
 * @param {unknown} e
 * @returns {{code: string, message: string, status?: number, details?: object}}
 */
export function toWire(e) {
  if (e instanceof PocketLMError) {
    const out = { code: e.code, message: e.message };
    if (e.status !== undefined) out.status = e.status;
    if (e.details !== undefined) out.details = e.details;
    return out;
  }
  const err = /** @type {any} */ (e);
  if (err && typeof err.code === 'string' && typeof err.message === 'string') {
    return { code: err.code, message: err.message };
  }
  if (err?.name === 'AbortError') return { code: 'aborted', message: err.message || 'aborted' };
  if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) {
    return { code: 'internal', message: `the engine crashed (${err.message}); load the model again` };
  }
  return { code: 'internal', message: String(err?.message ?? err) };
}

/** @param {{code: string, message: string, status?: number, details?: object}} w */
export function fromWire(w) {
  return new PocketLMError(w.code, w.message, { status: w.status, details: w.details });
}
