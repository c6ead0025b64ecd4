// The model cache in IndexedDB: one manifest per model URL and the file itself in fixed-size chunks.
//
// Database 'pocketlm-weights', version 1:
//   'manifests'  keyPath 'url'   -> Manifest (below)
//   'chunks'     key [url, index] -> ArrayBuffer of exactly chunkLength(manifest, index) bytes
// A chunk and the manifest bit that records it are written in one transaction, so a manifest never claims a chunk
// that is not stored; `complete` is set only once every chunk is present (and the sha256 matched, when one was
// given). Readers still check each chunk's length, so a damaged entry is detected rather than used.

import { PocketLMError } from './errors.js';

const DB_NAME = 'pocketlm-weights';
const DB_VERSION = 1;
const MANIFESTS = 'manifests';
const CHUNKS = 'chunks';

/**
 * @typedef {object} Manifest
 * @property {string} url          absolute URL, the key
 * @property {string} generation   random id of this download; a writer whose id no longer matches stops
 * @property {number} size         file size in bytes
 * @property {number} chunkSize
 * @property {number} chunkCount   ceil(size / chunkSize)
 * @property {number[]} chunks     chunkCount entries, 1 where the chunk is stored
 * @property {number} bytes        sum of the stored chunks' lengths
 * @property {string|null} etag          validators from the response, to detect a changed file when resuming
 * @property {string|null} lastModified
 * @property {string|null} sha256  lowercase hex: the expected hash given by the caller, or the verified one
 * @property {boolean} verified    the stored bytes were hashed and matched `sha256`
 * @property {boolean} complete
 * @property {number} storedAt     ms since the epoch: when the download started, then when it completed
 */

/** @type {Promise<IDBDatabase> | null} */
let dbPromise = null;

function openDb() {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new PocketLMError('storage', 'IndexedDB is not available here (a sandboxed frame or a browser setting '
        + 'blocks storage), so models cannot be cached'));
      return;
    }
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(MANIFESTS)) db.createObjectStore(MANIFESTS, { keyPath: 'url' });
      if (!db.objectStoreNames.contains(CHUNKS)) db.createObjectStore(CHUNKS);
    };
    req.onsuccess = () => {
      const db = req.result;
      // Let a newer version of the package upgrade the database; reopen lazily afterwards.
      db.onversionchange = () => { db.close(); dbPromise = null; };
      db.onclose = () => { dbPromise = null; };
      resolve(db);
    };
    req.onerror = () => reject(storageError(req.error, 'open the model cache'));
    req.onblocked = () => reject(new PocketLMError('storage', 'the model cache is held open by an older version '
      + 'of this page in another tab; close it and retry'));
  });
  dbPromise.catch(() => { dbPromise = null; });
  return dbPromise;
}

/** @param {unknown} e @param {string} what */
export function storageError(e, what, free = 'ModelCache.delete()/clear()') {
  if (e instanceof PocketLMError) return e;
  const err = /** @type {any} */ (e);
  if (err?.name === 'QuotaExceededError') {
    return new PocketLMError('quota', `the browser refused to store more data while trying to ${what} (quota `
      + `exceeded); free space with ${free}`, { cause: e });
  }
  return new PocketLMError('storage', `IndexedDB failed to ${what}: ${err?.message ?? err}`, { cause: e });
}

/** @template T @param {IDBRequest<T>} r @returns {Promise<T>} */
function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/**
 * Runs `fn` in one transaction and resolves with its value once the transaction has committed. Awaiting IDB
 * requests inside `fn` is fine (their promises resolve while the transaction is active); awaiting anything else
 * is not. If `fn` throws, the transaction is aborted and nothing it wrote is kept.
 * @template T
 * @param {string[]} stores @param {IDBTransactionMode} mode @param {string} what for error messages
 * @param {(t: IDBTransaction) => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function withTx(stores, mode, what, fn) {
  const db = await openDb();
  let t;
  try {
    t = db.transaction(stores, mode, { durability: 'relaxed' });
  } catch (e) {
    throw storageError(e, what);
  }
  const committed = new Promise((resolve, reject) => {
    t.oncomplete = () => resolve(undefined);
    t.onabort = () => reject(t.error ?? new DOMException('transaction aborted', 'AbortError'));
  });
  let value;
  try {
    value = await fn(t);
  } catch (e) {
    committed.catch(() => {});
    try { t.abort(); } catch { /* already finished */ }
    throw e instanceof PocketLMError ? e : storageError(e, what);
  }
  try {
    await committed;
  } catch (e) {
    throw storageError(e, what);
  }
  return value;
}

/** IDB key range of every chunk of `url`. */
const chunkRange = (url) => IDBKeyRange.bound([url, 0], [url, Infinity]);

/** Length of chunk `index` (the last one is shorter). @param {Manifest} m @param {number} index */
export function chunkLength(m, index) {
  return Math.min(m.chunkSize, m.size - index * m.chunkSize);
}

/**
 * A manifest for a download about to start.
 * @param {string} url @param {number} size @param {number} chunkSize
 * @param {{etag: string|null, lastModified: string|null}} validators @param {string|null} sha256
 * @returns {Manifest}
 */
export function newManifest(url, size, chunkSize, validators, sha256) {
  const chunkCount = Math.ceil(size / chunkSize);
  return {
    url,
    generation: randomId(),
    size,
    chunkSize,
    chunkCount,
    chunks: new Array(chunkCount).fill(0),
    bytes: 0,
    etag: validators.etag,
    lastModified: validators.lastModified,
    sha256,
    verified: false,
    complete: false,
    storedAt: Date.now(),
  };
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Whether a stored manifest is self-consistent (it may come from an older or interrupted writer).
 * @param {any} m
 * @returns {m is Manifest}
 */
export function isWellFormed(m) {
  return !!m && typeof m.url === 'string' && Number.isSafeInteger(m.size) && m.size >= 0
    && Number.isSafeInteger(m.chunkSize) && m.chunkSize > 0 && m.chunkCount === Math.ceil(m.size / m.chunkSize)
    && Array.isArray(m.chunks) && m.chunks.length === m.chunkCount && Number.isSafeInteger(m.bytes);
}

/** A manifest that may be used as a whole file: well formed, flagged complete, every chunk present. */
export function isComplete(m) {
  return isWellFormed(m) && m.complete === true && m.bytes === m.size && m.chunks.every((c) => c === 1);
}

/** @param {string} url @returns {Promise<Manifest | undefined>} */
export function getManifest(url) {
  return withTx([MANIFESTS], 'readonly', 'read the model cache', (t) => req(t.objectStore(MANIFESTS).get(url)));
}

/** @returns {Promise<Manifest[]>} */
export function listManifests() {
  return withTx([MANIFESTS], 'readonly', 'list the model cache', (t) => req(t.objectStore(MANIFESTS).getAll()));
}

/** Starts a new entry for `m.url`, dropping whatever was stored for that URL. @param {Manifest} m */
export function createEntry(m) {
  return withTx([MANIFESTS, CHUNKS], 'readwrite', 'start a cache entry', async (t) => {
    t.objectStore(CHUNKS).delete(chunkRange(m.url));
    await req(t.objectStore(MANIFESTS).put(m));
  });
}

/** @param {IDBTransaction} t @param {string} url @param {string} generation */
async function currentManifest(t, url, generation) {
  const m = await req(t.objectStore(MANIFESTS).get(url));
  if (!m || m.generation !== generation) {
    throw new PocketLMError('storage', `the cache entry for ${url} was deleted or replaced while it was being `
      + 'written (ModelCache.delete/clear, or another tab); load again');
  }
  return m;
}

/**
 * Stores chunk `index` and marks it in the manifest, in one transaction.
 * @param {string} url @param {string} generation @param {number} index
 * @param {Uint8Array} bytes exactly chunkLength(m, index) bytes
 * @returns {Promise<Manifest>}
 */
export function putChunk(url, generation, index, bytes) {
  const value = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer : bytes.slice().buffer;
  return withTx([MANIFESTS, CHUNKS], 'readwrite', 'store a downloaded chunk', async (t) => {
    const m = await currentManifest(t, url, generation);
    if (!(index >= 0 && index < m.chunkCount) || bytes.byteLength !== chunkLength(m, index)) {
      throw new PocketLMError('internal', `chunk ${index} of ${url} has ${bytes.byteLength} bytes`);
    }
    t.objectStore(CHUNKS).put(value, [url, index]);
    if (m.chunks[index] !== 1) {
      m.chunks[index] = 1;
      m.bytes += bytes.byteLength;
    }
    await req(t.objectStore(MANIFESTS).put(m));
    return m;
  });
}

/**
 * Flags the entry complete (every chunk must be stored) and records a verified sha256 if there is one.
 * @param {string} url @param {string} generation @param {string|null} verifiedSha256
 * @returns {Promise<Manifest>}
 */
export function markComplete(url, generation, verifiedSha256) {
  return withTx([MANIFESTS], 'readwrite', 'finish a cache entry', async (t) => {
    const m = await currentManifest(t, url, generation);
    if (m.bytes !== m.size || !m.chunks.every((c) => c === 1)) {
      throw new PocketLMError('internal', `${url}: ${m.bytes} of ${m.size} bytes stored, cannot mark complete`);
    }
    m.complete = true;
    m.storedAt = Date.now();
    if (verifiedSha256) {
      m.sha256 = verifiedSha256;
      m.verified = true;
    }
    await req(t.objectStore(MANIFESTS).put(m));
    return m;
  });
}

/** Records that a complete entry's bytes hash to `sha256`. */
export function setVerified(url, generation, sha256) {
  return withTx([MANIFESTS], 'readwrite', 'update a cache entry', async (t) => {
    const m = await currentManifest(t, url, generation);
    m.sha256 = sha256;
    m.verified = true;
    await req(t.objectStore(MANIFESTS).put(m));
    return m;
  });
}

/** @returns {Promise<ArrayBuffer | undefined>} */
export function getChunk(url, index) {
  return withTx([CHUNKS], 'readonly', 'read a cached chunk', (t) => req(t.objectStore(CHUNKS).get([url, index])));
}

/** Deletes the manifest and every chunk of `url`. @returns {Promise<boolean>} whether there was an entry */
export function deleteEntry(url) {
  return withTx([MANIFESTS, CHUNKS], 'readwrite', 'delete a cache entry', async (t) => {
    const existed = (await req(t.objectStore(MANIFESTS).count(url))) > 0;
    t.objectStore(MANIFESTS).delete(url);
    t.objectStore(CHUNKS).delete(chunkRange(url));
    return existed;
  });
}

/** Deletes every entry. */
export function clearAll() {
  return withTx([MANIFESTS, CHUNKS], 'readwrite', 'clear the model cache', async (t) => {
    t.objectStore(MANIFESTS).clear();
    await req(t.objectStore(CHUNKS).clear());
  });
}

/**
 * Calls `onChunk` with each stored chunk of a complete entry, in order (one chunk in memory at a time).
 * Throws code 'storage' if the entry is missing, incomplete or damaged.
 * @param {string} url @param {(bytes: Uint8Array, index: number) => void | Promise<void>} onChunk
 */
export async function readEntry(url, onChunk) {
  const m = await getManifest(url);
  if (!m || !isComplete(m)) throw new PocketLMError('storage', `${url} is not completely cached`);
  for (let i = 0; i < m.chunkCount; i++) {
    const buf = await getChunk(url, i);
    if (!(buf instanceof ArrayBuffer) || buf.byteLength !== chunkLength(m, i)) {
      throw new PocketLMError('storage', `chunk ${i} of cached ${url} is missing or damaged`);
    }
    await onChunk(new Uint8Array(buf), i);
  }
}
