// Test page helpers: imports the package (from ?pkg=, default /pkg/dist/) and exposes it with helpers that return
// plain, serialisable results (page.evaluate cannot carry PocketLMError's fields back to node).

const base = new URLSearchParams(location.search).get('pkg') || '/pkg/dist/';

/** An error as plain data. */
function plainError(e) {
  return { name: e?.name, code: e?.code, message: String(e?.message ?? e), status: e?.status, details: e?.details };
}

/** Runs `fn(onProgress)`; resolves {ok, value | error, progress}. */
async function capture(fn) {
  const progress = [];
  try {
    const value = await fn((p) => progress.push({ ...p }));
    return { ok: true, value, progress };
  } catch (e) {
    return { ok: false, error: plainError(e), progress };
  }
}

try {
  const pocketlm = await import(`${base}index.js`);
  const store = await import(`${base}weight_store.js`);
  Object.assign(window, {
    pocketlm,
    store,
    capture,
    plainError,
    /** ModelCache.download with progress captured; `abortAt`: abort once this many bytes have been reported. */
    download(url, opts = {}) {
      const { abortAt, ...rest } = opts;
      const ac = new AbortController();
      return capture((onProgress) => pocketlm.ModelCache.download(url, {
        ...rest,
        signal: abortAt === undefined ? undefined : ac.signal,
        onProgress: (p) => {
          onProgress(p);
          if (abortAt !== undefined && p.loaded >= abortAt) ac.abort();
        },
      }));
    },
    /** SHA-256 (Web Crypto, over one buffer: fine for test-sized files) of what the cache holds for `url`. */
    async storedSha256(url) {
      const parts = [];
      let n = 0;
      await store.readEntry(new URL(url, location.href).href, (bytes) => { parts.push(bytes.slice()); n += bytes.length; });
      const all = new Uint8Array(n);
      let off = 0;
      for (const p of parts) { all.set(p, off); off += p.length; }
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
      return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
    },
    /** PocketLM.load with progress captured; the instance is kept as window.models[name]. */
    load(url, opts = {}, name = 'lm') {
      const { abortAt, ...rest } = opts;
      const ac = new AbortController();
      return capture(async (onProgress) => {
        const lm = await pocketlm.PocketLM.load(url, {
          ...rest,
          signal: abortAt === undefined ? undefined : ac.signal,
          onProgress: (p) => {
            onProgress(p);
            if (abortAt !== undefined && p.loaded >= abortAt) ac.abort();
          },
        });
        window.models[name] = lm;
        return lm.info;
      });
    },
    models: {},
    async entry(url) {
      const href = new URL(url, location.href).href;
      return (await pocketlm.ModelCache.list()).find((e) => e.url === href) ?? null;
    },
    harnessReady: true,
  });
} catch (e) {
  window.harnessError = String(e?.stack ?? e);
}
