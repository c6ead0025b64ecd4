// Saved sessions in IndexedDB (Session.persist / PocketLM.loadSession): database 'pocketlm-sessions', version 1,
// store 'sessions' keyed by the caller's key: {key, bytes: Uint8Array (the engine's saved session), size, savedAt}.
// A separate database from the weights' ('pocketlm-weights'), so neither's schema version depends on the other.

import { PocketLMError } from './errors.js';
import { storageError as weightStorageError } from './weight_store.js';

const DB_NAME = 'pocketlm-sessions';
const STORE = 'sessions';
/** Largest session stored (a full 8192-token f32 SmolLM2 cache is ~360 MB; f16 half that). */
export const MAX_SESSION_BYTES = 512 * 1024 * 1024;

/** @type {Promise<IDBDatabase> | null} */
let dbPromise = null;

function openDb() {
  if (typeof indexedDB === 'undefined') {
    return Promise.reject(new PocketLMError('storage', 'IndexedDB is not available here: sessions cannot be stored'));
  }
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'key' });
    req.onsuccess = () => {
      req.result.onversionchange = () => { req.result.close(); dbPromise = null; };
      resolve(req.result);
    };
    req.onerror = () => { dbPromise = null; reject(storageError(req.error, 'open the session store')); };
  });
  return dbPromise;
}

const storageError = (e, what) => weightStorageError(e, what, 'ModelCache.deleteSession() or ModelCache.delete()');

/** Runs `fn` on the store in one transaction; resolves with fn's request result once the transaction commits. */
async function withStore(mode, what, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    let result;
    let t;
    try {
      t = db.transaction(STORE, mode);
      const r = fn(t.objectStore(STORE));
      r.onsuccess = () => { result = r.result; };
    } catch (e) {
      reject(storageError(e, what));
      return;
    }
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(storageError(t.error, what));
    t.onabort = () => reject(storageError(t.error, what));
  });
}

function checkKey(key) {
  if (typeof key !== 'string' || key === '') throw new PocketLMError('invalid-argument', 'a session key is a non-empty string');
}

/**
 * Stores `bytes` under `key` (replacing what was there), after checking the size bound and the origin's quota.
 * @param {string} key @param {Uint8Array} bytes @param {{quota: number, usage: number}} [estimate] test hook
 */
export async function putSession(key, bytes, estimate) {
  checkKey(key);
  if (bytes.length > MAX_SESSION_BYTES) {
    throw new PocketLMError('quota', `the session is ${bytes.length} bytes, more than the ${MAX_SESSION_BYTES} a stored session may take`);
  }
  const est = estimate ?? await globalThis.navigator?.storage?.estimate?.().catch(() => null);
  if (est && typeof est.quota === 'number' && typeof est.usage === 'number' && est.usage + bytes.length > est.quota) {
    throw new PocketLMError('quota', `storing the session (${bytes.length} bytes) would exceed the storage quota `
      + `(${est.usage} of ${est.quota} bytes used)`, { details: { needed: bytes.length, quota: est.quota, usage: est.usage } });
  }
  await withStore('readwrite', 'store a session', (s) => s.put({ key, bytes, size: bytes.length, savedAt: Date.now() }));
}

/** The bytes stored under `key`, or null. @returns {Promise<Uint8Array | null>} */
export async function getSession(key) {
  checkKey(key);
  const v = await withStore('readonly', 'read a session', (s) => s.get(key));
  return v?.bytes instanceof Uint8Array ? v.bytes : null;
}

/** @returns {Promise<{key: string, size: number, savedAt: number}[]>} */
export async function listSessions() {
  const all = await withStore('readonly', 'list sessions', (s) => s.getAll());
  return all.map((v) => ({ key: v.key, size: v.size, savedAt: v.savedAt }));
}

/** @returns {Promise<boolean>} whether it was there */
export async function deleteSession(key) {
  checkKey(key);
  const n = await withStore('readonly', 'read a session', (s) => s.count(key));
  await withStore('readwrite', 'delete a session', (s) => s.delete(key));
  return n > 0;
}
