// Gets a model file into the IndexedDB cache and, in the same pass, hands its bytes in file order to a sink (the
// engine's WeightLoader). Downloads in fixed-size chunks, resumes an interrupted download with HTTP Range requests
// for the missing chunks only, notices a file that changed on the server, and verifies an optional sha256.

import * as store from './weight_store.js';
import { Sha256 } from './sha256.js';
import { PocketLMError, abortError, throwIfAborted } from './errors.js';

export const DEFAULT_CHUNK_SIZE = 8 << 20;
/** Progress is reported at least every this many bytes (and at every phase change and at the end). */
const PROGRESS_STEP = 1 << 20;

/**
 * @typedef {{push(bytes: Uint8Array): void}} Sink receives the file's bytes in order; may throw to stop the load
 * @typedef {'download' | 'cache' | 'init'} Phase
 * @typedef {object} EnsureOptions
 * @property {(total: number) => Sink} [open] called when the size is known, before the first byte is passed on;
 *   called again, for a fresh sink, if the load has to start over (the file changed under a resumed download)
 * @property {(p: {loaded: number, total: number, phase: Phase}) => void} [onProgress] monotone in `loaded`
 * @property {AbortSignal} [signal]
 * @property {string} [sha256] expected hash of the whole file, hex
 * @property {number} [chunkSize] for a new entry; a resumed one keeps its own
 * @property {{quota: number, usage: number}} [storageEstimate] replaces navigator.storage.estimate() (tests)
 */

/** Thrown inside an attempt to make `ensureWeights` start over from the manifest. */
class Restart extends Error {}

/**
 * Makes `url` completely cached and streams it into `opts.open(...)`'s sink.
 * @param {string} url absolute URL (the cache key)
 * @param {EnsureOptions} [opts]
 * @returns {Promise<store.Manifest>} the complete entry
 */
export async function ensureWeights(url, opts = {}) {
  const ctx = {
    url,
    open: opts.open,
    signal: opts.signal,
    sha256: normalizeSha256(opts.sha256),
    chunkSize: normalizeChunkSize(opts.chunkSize),
    storageEstimate: opts.storageEstimate,
    progress: monotoneProgress(opts.onProgress),
  };
  return withUrlLock(url, opts.signal, async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await attemptOnce(ctx);
      } catch (e) {
        if (!(e instanceof Restart)) throw e;
        if (attempt === 3) {
          throw new PocketLMError('network', `${url}: gave up after ${attempt} attempts (${e.message}); try again later`);
        }
      }
    }
  });
}

/**
 * @typedef {object} Ctx one load's settings, normalised
 * @property {string} url
 * @property {EnsureOptions['open']} open
 * @property {AbortSignal | undefined} signal
 * @property {string | null} sha256
 * @property {number} chunkSize
 * @property {EnsureOptions['storageEstimate']} storageEstimate
 * @property {(loaded: number, total: number, phase: Phase) => void} progress
 */

/** @param {Ctx} ctx */
async function attemptOnce(ctx) {
  throwIfAborted(ctx.signal, `loading ${ctx.url}`);
  const m = await store.getManifest(ctx.url);
  if (m && store.isComplete(m)) return fromCache(ctx, m);
  if (m && !m.complete && store.isWellFormed(m) && m.bytes > 0 && (m.etag || m.lastModified)) return resume(ctx, m);
  // No entry, or one that cannot be resumed safely (no validator to tell whether the file changed): start over.
  return fresh(ctx);
}

/** A complete entry: no network at all. Reads the chunks only if someone needs the bytes. */
async function fromCache(ctx, m) {
  const hasher = ctx.sha256 && !(m.verified && m.sha256 === ctx.sha256) ? new Sha256() : null;
  const sink = ctx.open ? ctx.open(m.size) : null;
  const st = { loaded: 0 };
  if (sink || hasher) {
    await readCached(ctx, m, 0, m.chunkCount, sink, hasher, st);
  } else {
    ctx.progress(m.size, m.size, 'cache');
  }
  if (!hasher) return m;
  const got = hasher.hex();
  if (got !== ctx.sha256) {
    await store.deleteEntry(ctx.url);
    throw integrityError(ctx.url, ctx.sha256, got);
  }
  return store.setVerified(ctx.url, m.generation, got);
}

/** No usable entry: one GET for the whole file. */
async function fresh(ctx) {
  const res = await request(ctx, null);
  const size = contentLength(res);
  if (size === null) {
    cancel(res);
    throw new PocketLMError('http', `${ctx.url}: the server sent no usable Content-Length (missing, or the body is `
      + 'compressed), so the file cannot be stored in chunks; serve it uncompressed');
  }
  return storeWholeBody(ctx, res, size);
}

/** Stores a 200 response carrying the whole file as a new entry (replacing any old one). */
async function storeWholeBody(ctx, res, size) {
  let sink = null;
  let m;
  try {
    await checkQuota(ctx, size);
    sink = ctx.open ? ctx.open(size) : null;
    m = store.newManifest(ctx.url, size, ctx.chunkSize, validators(res), ctx.sha256);
    await store.createEntry(m);
  } catch (e) {
    cancel(res);
    throw e;
  }
  const hasher = ctx.sha256 ? new Sha256() : null;
  await receive(ctx, res, m, 0, m.chunkCount, 0, sink, hasher, { loaded: 0 });
  return finish(ctx, m, hasher);
}

/**
 * A partial entry. The first missing run is requested before anything is passed on, so that its answer can show
 * a changed file (other ETag / Last-Modified / size) before the sink has seen stale bytes.
 */
async function resume(ctx, m) {
  const runs = missingRuns(m);
  if (runs.length === 0) { // every chunk is stored but the entry was never flagged complete
    const hasher = ctx.sha256 ? new Sha256() : null;
    await readCached(ctx, m, 0, m.chunkCount, ctx.open ? ctx.open(m.size) : null, hasher, { loaded: 0 });
    return finish(ctx, m, hasher);
  }
  const first = await request(ctx, rangeOf(m, runs[0]));
  if (first.status === 416 || changed(m, first)) { // 416: the file is now shorter than what we stored
    cancel(first);
    return fresh(ctx);
  }
  if (first.status === 200) { // the server ignores Range and sends the (unchanged) file from its start
    return storeWholeBody(ctx, first, m.size);
  }
  let sink = null;
  try {
    checkContentRange(ctx, first, m, runs[0]);
    await checkQuota(ctx, m.size - m.bytes);
    sink = ctx.open ? ctx.open(m.size) : null;
  } catch (e) {
    cancel(first);
    throw e;
  }
  const hasher = ctx.sha256 ? new Sha256() : null;
  // Without a sink or a hash to feed, the stored chunks need not be read: count them as loaded up front.
  const readStored = !!(sink || hasher);
  const st = { loaded: readStored ? 0 : m.bytes };
  if (!readStored) ctx.progress(st.loaded, m.size, 'cache');
  let next = 0; // first chunk not yet passed on
  for (const run of runs) {
    if (readStored && next < run[0]) await readCached(ctx, m, next, run[0], sink, hasher, st);
    let res = first;
    let skip = 0;
    if (run !== runs[0]) {
      res = await request(ctx, rangeOf(m, run));
      if (changed(m, res)) { // too late to keep the sink: start over from a fresh entry
        cancel(res);
        await store.deleteEntry(ctx.url);
        throw new Restart('the file changed on the server during the download');
      }
      if (res.status === 200) skip = run[0] * m.chunkSize;
      else checkContentRange(ctx, res, m, run);
    }
    await receive(ctx, res, m, run[0], run[1], skip, sink, hasher, st);
    next = run[1];
  }
  if (readStored && next < m.chunkCount) await readCached(ctx, m, next, m.chunkCount, sink, hasher, st);
  return finish(ctx, m, hasher);
}

/** Verifies the hash if there is one, then flags the entry complete. */
async function finish(ctx, m, hasher) {
  let verified = null;
  if (hasher) {
    verified = hasher.hex();
    if (verified !== ctx.sha256) {
      await store.deleteEntry(ctx.url);
      throw integrityError(ctx.url, ctx.sha256, verified);
    }
  }
  return store.markComplete(ctx.url, m.generation, verified);
}

/**
 * Reads the body of `res` into chunks [from, to), storing each as it completes and passing every byte on.
 * `skip` bytes at the start of the body are dropped (a 200 answer to a Range request starts at byte 0).
 * At most one chunk write is in flight while the next chunk fills, so memory stays at about three chunks.
 * On failure, already completed chunks are stored before the error is thrown, so a later call resumes after them.
 */
async function receive(ctx, res, m, from, to, skip, sink, hasher, st) {
  if (from >= to) { cancel(res); return; }
  if (!res.body) throw new PocketLMError('network', `${ctx.url}: the response has no body`);
  const reader = res.body.getReader();
  let index = from;
  let buf = new Uint8Array(store.chunkLength(m, index)); // the chunk being filled
  let fill = 0;
  /** @type {Promise<unknown> | null} */
  let pending = null;
  try {
    while (index < to) {
      let r;
      try {
        r = await reader.read();
      } catch (e) {
        throw readError(ctx, e, st.loaded, m.size);
      }
      if (r.done) {
        throw new PocketLMError('network', `${ctx.url}: the connection closed after ${mb(st.loaded)} of `
          + `${mb(m.size)}; what arrived is kept: load again to resume`);
      }
      let v = r.value;
      if (skip > 0) {
        const n = Math.min(skip, v.length);
        skip -= n;
        v = v.subarray(n);
      }
      while (v.length > 0 && index < to) {
        const n = Math.min(v.length, buf.length - fill);
        const piece = v.subarray(0, n);
        buf.set(piece, fill);
        fill += n;
        v = v.subarray(n);
        if (sink) sink.push(piece);
        if (hasher) hasher.update(piece);
        st.loaded += n;
        ctx.progress(st.loaded, m.size, 'download');
        if (fill === buf.length) {
          if (pending) await pending;
          pending = store.putChunk(ctx.url, m.generation, index, buf);
          pending.catch(() => {}); // awaited before the next write or at the end
          index++;
          if (index < to) {
            buf = new Uint8Array(store.chunkLength(m, index));
            fill = 0;
          }
        }
      }
    }
    if (pending) await pending;
  } catch (e) {
    if (pending) await pending.catch(() => {});
    reader.cancel().catch(() => {});
    throw e;
  }
  // Whatever the body still holds (a 200 answering a Range request) is not needed.
  reader.cancel().catch(() => {});
}

/** Reads of stored chunks kept in flight: IndexedDB serves them in parallel (measured with 8 MiB chunks of a 98 MB
 * file in Chromium: one ahead 419 ms, four ahead see bench/README.md), and at most this many chunks wait in memory. */
const READ_AHEAD = 4;

/** Passes stored chunks [from, to) to the sink and hasher in order, with up to READ_AHEAD reads in flight. */
async function readCached(ctx, m, from, to, sink, hasher, st) {
  /** @type {Promise<ArrayBuffer | undefined>[]} */
  const inFlight = [];
  let next = from;
  const refill = () => {
    while (next < to && inFlight.length < READ_AHEAD) {
      const p = store.getChunk(ctx.url, next++);
      p.catch(() => {}); // awaited in order below; an early failure must not be reported as unhandled
      inFlight.push(p);
    }
  };
  for (let i = from; i < to; i++) {
    throwIfAborted(ctx.signal, `loading ${ctx.url}`);
    refill();
    const buf = await inFlight.shift();
    if (!(buf instanceof ArrayBuffer) || buf.byteLength !== store.chunkLength(m, i)) {
      // A damaged entry (storage cleared underneath us, a bug in an older version): never use it, refetch.
      await Promise.allSettled(inFlight);
      await store.deleteEntry(ctx.url);
      throw new Restart(`chunk ${i} of the cached copy was missing or damaged`);
    }
    refill();
    const bytes = new Uint8Array(buf);
    if (sink) sink.push(bytes);
    if (hasher) hasher.update(bytes);
    st.loaded += bytes.length;
    ctx.progress(st.loaded, m.size, 'cache');
  }
}

/** @param {store.Manifest} m @returns {[number, number][]} maximal runs [first, end) of missing chunks */
function missingRuns(m) {
  /** @type {[number, number][]} */
  const runs = [];
  for (let i = 0; i < m.chunkCount; i++) {
    if (m.chunks[i] === 1) continue;
    const start = i;
    while (i < m.chunkCount && m.chunks[i] !== 1) i++;
    runs.push([start, i]);
  }
  return runs;
}

/** Byte range (inclusive, as in the Range header) of the chunk run. */
function byteRange(m, [first, end]) {
  return [first * m.chunkSize, Math.min(end * m.chunkSize, m.size) - 1];
}

function rangeOf(m, run) {
  const [a, b] = byteRange(m, run);
  return `bytes=${a}-${b}`;
}

/**
 * @param {Ctx} ctx @param {string|null} range
 * @returns {Promise<Response>} an ok response (2xx) or 416
 */
async function request(ctx, range) {
  let res;
  try {
    // no-store: the file goes to IndexedDB; a copy in the HTTP cache would double the disk use, and a cached
    // response could answer a Range request for a file that changed.
    res = await fetch(ctx.url, { signal: ctx.signal, cache: 'no-store', headers: range ? { Range: range } : {} });
  } catch (e) {
    if (ctx.signal?.aborted) throw abortError(ctx.signal.reason, `loading ${ctx.url}`);
    throw new PocketLMError('network', `could not fetch ${ctx.url} (${/** @type {any} */ (e)?.message}): the server `
      + 'is unreachable, the network is down, or a cross-origin server does not send CORS headers', { cause: e });
  }
  if (!res.ok && !(range && res.status === 416)) {
    cancel(res);
    throw new PocketLMError('http', `${ctx.url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`,
      { status: res.status });
  }
  return res;
}

function cancel(res) {
  res.body?.cancel().catch(() => {});
}

function readError(ctx, e, loaded, size) {
  if (e instanceof PocketLMError) return e;
  if (ctx.signal?.aborted) return abortError(ctx.signal.reason, `loading ${ctx.url}`);
  return new PocketLMError('network', `${ctx.url}: the connection failed after ${mb(loaded)} of ${mb(size)} `
    + `(${e?.message ?? e}); what arrived is kept: load again to resume`, { cause: e });
}

/** @param {Response} res @returns {number | null} */
function contentLength(res) {
  const enc = res.headers.get('Content-Encoding');
  if (enc && enc.trim().toLowerCase() !== 'identity') return null;
  const v = res.headers.get('Content-Length');
  if (v === null || !/^\s*\d+\s*$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/** `Content-Range: bytes a-b/total` (RFC 9110 §14.4) -> [a, b, total | null], or null if malformed. */
function parseContentRange(res) {
  const v = res.headers.get('Content-Range');
  const match = v && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (!match) return null;
  return [Number(match[1]), Number(match[2]), match[3] === '*' ? null : Number(match[3])];
}

/** @param {Response} res */
function validators(res) {
  return { etag: res.headers.get('ETag'), lastModified: res.headers.get('Last-Modified') };
}

/**
 * Whether `res` shows that the file is not the one the entry holds. A response must match at least one
 * validator the entry recorded and contradict none, and report the same size.
 */
function changed(m, res) {
  if (res.status === 416) return true;
  const v = validators(res);
  if (m.etag && v.etag && v.etag !== m.etag) return true;
  if (m.lastModified && v.lastModified && v.lastModified !== m.lastModified) return true;
  const matched = (m.etag && v.etag === m.etag) || (m.lastModified && v.lastModified === m.lastModified);
  if (!matched) return true;
  const total = res.status === 206 ? parseContentRange(res)?.[2] ?? null : contentLength(res);
  return total !== null && total !== m.size;
}

/** A 206 must carry exactly the requested bytes. */
function checkContentRange(ctx, res, m, run) {
  const [a, b] = byteRange(m, run);
  const cr = parseContentRange(res);
  if (res.status !== 206 || !cr || cr[0] !== a || cr[1] !== b || (cr[2] !== null && cr[2] !== m.size)) {
    throw new PocketLMError('http', `${ctx.url}: asked for bytes ${a}-${b}, the server answered HTTP ${res.status} `
      + `with Content-Range ${res.headers.get('Content-Range') ?? '(none)'}`, { status: res.status });
  }
}

/** Throws 'quota' before anything is written when the origin's storage cannot take `needed` more bytes. */
async function checkQuota(ctx, needed) {
  let est = ctx.storageEstimate;
  if (!est) {
    try {
      est = await globalThis.navigator?.storage?.estimate?.();
    } catch {
      est = undefined;
    }
  }
  if (!est || typeof est.quota !== 'number') return; // unknown: let IndexedDB's own quota error speak
  const quota = est.quota;
  const usage = est.usage ?? 0;
  const available = Math.max(0, quota - usage);
  if (available < needed) {
    throw new PocketLMError('quota', `not enough storage to cache ${ctx.url}: it needs ${mb(needed)} but only `
      + `${mb(available)} is available (quota ${mb(quota)}, ${mb(usage)} used); free space with `
      + 'ModelCache.delete(url) or ModelCache.clear(), or choose a smaller model',
    { details: { needed, available, quota, usage } });
  }
}

function integrityError(url, expected, got) {
  return new PocketLMError('integrity', `${url}: sha256 is ${got}, expected ${expected}; the file is corrupt or `
    + 'not the one expected, and the cached copy was deleted', { details: { expected, actual: got } });
}

/** Serialises loads of one URL across tabs and workers (Web Locks), so two writers never share an entry. */
async function withUrlLock(url, signal, fn) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return fn();
  try {
    return await locks.request(`pocketlm-weights:${url}`, signal ? { signal } : {}, fn);
  } catch (e) {
    if (!(e instanceof PocketLMError) && /** @type {any} */ (e)?.name === 'AbortError') {
      throw abortError(signal?.reason, `loading ${url}`);
    }
    throw e;
  }
}

/**
 * Wraps the progress callback: never reports a smaller `loaded` than before (after a restart it stays silent
 * until it passes the earlier value), and reports at most every PROGRESS_STEP bytes within a phase.
 */
function monotoneProgress(cb) {
  if (typeof cb !== 'function') return () => {};
  let last = -1;
  let lastPhase = '';
  return (loaded, total, phase) => {
    if (loaded < last) return;
    if (phase === lastPhase && loaded !== total && loaded - last < PROGRESS_STEP) return;
    last = loaded;
    lastPhase = phase;
    cb({ loaded, total, phase });
  };
}

function normalizeSha256(v) {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{64}$/.test(v)) {
    throw new PocketLMError('invalid-argument', `sha256 must be 64 hex digits, got ${JSON.stringify(v)}`);
  }
  return v.toLowerCase();
}

function normalizeChunkSize(v) {
  if (v === undefined || v === null) return DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(v) || v < 64 << 10 || v > 256 << 20) {
    throw new PocketLMError('invalid-argument', `chunkSize must be an integer from 64 KiB to 256 MiB, got ${v}`);
  }
  return v;
}

const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;

/**
 * A local file (a `File` from `<input type=file>` or a drop, or any `Blob`) streamed into `opts.open(...)`'s sink
 * in slices of `chunkSize`, so no whole-file buffer exists in JS. With `opts.cacheKey`, each slice is also stored as
 * a chunk of a cache entry under that key (a later `ensureWeights(cacheKey)` finds it complete, with no network).
 * The sink is opened before the first byte is read: its size check (wasm memory) refuses a too-big file first.
 * @param {Blob} blob
 * @param {EnsureOptions & {cacheKey?: string}} [opts]
 * @returns {Promise<{size: number, cacheKey: string | null, sha256: string | null}>}
 */
export async function loadBlob(blob, opts = {}) {
  const ctx = {
    url: opts.cacheKey ?? 'the file',
    signal: opts.signal,
    sha256: normalizeSha256(opts.sha256),
    chunkSize: normalizeChunkSize(opts.chunkSize),
    storageEstimate: opts.storageEstimate,
    progress: monotoneProgress(opts.onProgress),
  };
  const size = blob.size;
  throwIfAborted(ctx.signal, `loading ${ctx.url}`);
  const sink = opts.open ? opts.open(size) : null;
  const run = async () => {
    /** @type {store.Manifest | null} */
    let m = null;
    if (opts.cacheKey) {
      await checkQuota(ctx, size);
      m = store.newManifest(opts.cacheKey, size, ctx.chunkSize, { etag: null, lastModified: null }, ctx.sha256);
      await store.createEntry(m);
    }
    try {
      const hasher = ctx.sha256 ? new Sha256() : null;
      const chunkCount = Math.ceil(size / ctx.chunkSize);
      ctx.progress(0, size, 'file');
      for (let i = 0, at = 0; i < chunkCount; i++) {
        throwIfAborted(ctx.signal, `loading ${ctx.url}`);
        const end = Math.min(at + ctx.chunkSize, size);
        let bytes;
        try {
          bytes = new Uint8Array(await blob.slice(at, end).arrayBuffer());
        } catch (e) {
          throw new PocketLMError('storage', `could not read ${ctx.url} (${/** @type {any} */ (e)?.message}): `
            + 'the file was moved, changed or deleted after it was chosen', { cause: e });
        }
        if (bytes.length !== end - at) {
          throw new PocketLMError('storage', `${ctx.url}: read ${bytes.length} bytes at ${at}, expected ${end - at}`);
        }
        if (sink) sink.push(bytes);
        if (hasher) hasher.update(bytes);
        if (m) await store.putChunk(m.url, m.generation, i, bytes);
        at = end;
        ctx.progress(at, size, 'file');
      }
      const got = hasher ? hasher.hex() : null;
      if (hasher && got !== ctx.sha256) throw integrityError(ctx.url, ctx.sha256, got);
      if (m) await store.markComplete(m.url, m.generation, got);
      return { size, cacheKey: m ? m.url : null, sha256: got };
    } catch (e) {
      // Nothing half-stored stays behind: the entry is either complete or gone.
      if (m) await store.deleteEntry(m.url).catch(() => {});
      throw e;
    }
  };
  return opts.cacheKey ? withUrlLock(opts.cacheKey, ctx.signal, run) : run();
}
