// The model cache as the page sees it: what is stored, how much, deleting, and downloading ahead of time.

import * as store from './weight_store.js';
import * as sessionStore from './session_store.js';
import { WorkerConnection, resolveUrl, spawnWorker } from './rpc.js';

/**
 * @typedef {object} CacheEntry
 * @property {string} url
 * @property {number} bytes       stored so far
 * @property {number} size        of the whole file
 * @property {boolean} complete   usable without the network
 * @property {number} storedAt    ms since the epoch (download start; completion once complete)
 * @property {string|null} sha256 verified hash, if one was given
 */

/** @param {any} m @returns {CacheEntry} */
function entry(m) {
  const ok = store.isWellFormed(m);
  return {
    url: String(m.url),
    bytes: ok ? m.bytes : 0,
    size: ok ? m.size : 0,
    complete: store.isComplete(m),
    storedAt: typeof m.storedAt === 'number' ? m.storedAt : 0,
    sha256: m.verified ? m.sha256 : null,
  };
}

export class ModelCache {
  /** Every cached or partly downloaded model. @returns {Promise<CacheEntry[]>} */
  static async list() {
    return (await store.listManifests()).map(entry);
  }

  /** Deletes one model (complete or partial). @returns {Promise<boolean>} whether it was there */
  static async delete(url) {
    return store.deleteEntry(resolveUrl(url));
  }

  /** Deletes every cached model. */
  static async clear() {
    await store.clearAll();
  }

  /**
   * `bytes`: stored by pocketlm; `quota` / `usage`: navigator.storage.estimate() for the whole origin (null where
   * the browser does not say); `persisted`: whether the browser promised not to evict the origin's storage.
   * @returns {Promise<{bytes: number, quota: number|null, usage: number|null, persisted: boolean}>}
   */
  static async usage() {
    const bytes = (await ModelCache.list()).reduce((sum, e) => sum + e.bytes, 0);
    const s = globalThis.navigator?.storage;
    const est = await s?.estimate?.().catch(() => null);
    const persisted = (await s?.persisted?.().catch(() => false)) ?? false;
    return { bytes, quota: est?.quota ?? null, usage: est?.usage ?? null, persisted };
  }

  /** Sessions stored with `session.persist(key)`. @returns {Promise<{key: string, size: number, savedAt: number}[]>} */
  static async sessions() {
    return sessionStore.listSessions();
  }

  /** Deletes a stored session. @returns {Promise<boolean>} whether it was there */
  static async deleteSession(key) {
    return sessionStore.deleteSession(key);
  }

  /** Asks the browser not to evict cached models under storage pressure. @returns {Promise<boolean>} granted */
  static async persist() {
    const s = globalThis.navigator?.storage;
    if (!s?.persist) return false;
    return s.persist().catch(() => false);
  }

  /**
   * Downloads a model into the cache without loading it (for offline use later); resumes a partial download and
   * makes no request for a complete one. Runs in a short-lived worker.
   * @param {string | URL} url
   * @param {{onProgress?: (p: {loaded: number, total: number, phase: string}) => void, signal?: AbortSignal,
   *   sha256?: string, chunkSize?: number}} [options]
   * @returns {Promise<CacheEntry>}
   */
  static async download(url, options = {}) {
    const href = resolveUrl(url);
    ModelCache.persist().catch(() => {});
    const conn = new WorkerConnection(spawnWorker());
    try {
      return await conn.request('download', {
        url: href,
        sha256: options.sha256,
        chunkSize: options.chunkSize,
        storageEstimate: /** @type {any} */ (options).__storageEstimate,
      }, { signal: options.signal, onEvent: (m) => m.progress && callProgress(options.onProgress, m.progress) });
    } finally {
      conn.close(); // nothing is pending by now; this only ends the worker
    }
  }
}

/** Calls the user's progress callback; an exception there is reported but does not stop the download. */
export function callProgress(cb, p) {
  if (typeof cb !== 'function') return;
  try {
    cb(p);
  } catch (e) {
    if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
    else queueMicrotask(() => { throw e; });
  }
}
