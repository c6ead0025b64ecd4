// Weight store end to end, JS side only (no engine needed): ModelCache.download() in each browser of
// POCKETLM_BROWSERS (browsers.mjs) against the test server, checking what reaches IndexedDB and what went over the wire.
//
// Run: node --test tests/e2e/   (needs pkg/dist: `cd pkg && npm run build` is enough for these tests)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openPage, TestServer, seededBytes, sha256, checkProgress, BROWSERS, FEATURES } from './harness.mjs';

const MB = 1 << 20;
const CHUNK = 4 * MB;
const SIZE = 40 * MB + 12345; // not a multiple of CHUNK: the last chunk is short

for (const name of BROWSERS) describe(`weight store [${name}]`, () => {
  /** @type {Awaited<ReturnType<typeof launchBrowser>>} */
  let browser;
  /** @type {TestServer} */
  let server;
  /** @type {Awaited<ReturnType<typeof openPage>>} */
  let page;

  before(async () => {
    server = await new TestServer().start();
    browser = await launchBrowser(name);
    page = await openPage(browser, server.origin);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const download = (url, opts = {}) => page.evaluate(([u, o]) => window.download(u, o), [url, opts]);
  const entry = (url) => page.evaluate((u) => window.entry(u), url);
  const storedSha256 = (url) => page.evaluate((u) => window.storedSha256(u), url);
  const must = (r) => assert.ok(r.ok, `expected success, got ${JSON.stringify(r.error)}`);
  // A dropped connection errors the response's stream, and an errored stream discards the chunks still queued in it
  // (Streams spec). WebKit reads the body ahead of the page far more than the others, so at localhost speed the
  // whole partial body can be queued and lost, leaving nothing to resume from: pace the body there so the page
  // keeps up (what it has read by the drop is what any browser keeps).
  const dropPace = name === 'webkit' ? { bytesPerSecond: 32 * MB } : {};
  /** A fresh in-memory file on the server. */
  const file = (name, seed, size = SIZE) => {
    const data = seededBytes(size, seed);
    server.addFile(`/files/${name}`, data);
    return { url: `/files/${name}`, data };
  };

  it('the browser has the features browsers.mjs records for it (they decide the expectations of every suite)', async () => {
    const got = await page.evaluate(async () => {
      const { RELAXED_SIMD_PROBE } = await import('/pkg/dist/backend.js');
      return { relaxedSimd: WebAssembly.validate(RELAXED_SIMD_PROBE),
        storageEstimate: typeof navigator.storage?.estimate === 'function', webLocks: !!navigator.locks };
    });
    const { threads, ...want } = FEATURES[name];
    assert.deepEqual(got, want);
  });

  it('downloads in chunks and stores bytes identical to the file', async () => {
    const { url, data } = file('whole.bin', 1);
    const r = await download(url, { chunkSize: CHUNK });
    must(r);
    const last = checkProgress(assert, r.progress, SIZE);
    assert.equal(last.loaded, SIZE);
    assert.ok(r.progress.every((p) => p.phase === 'download'));
    assert.equal(r.value.complete, true);
    assert.equal(r.value.bytes, SIZE);
    assert.equal(r.value.size, SIZE);
    const st = server.stats(url);
    assert.equal(st.requests, 1);
    assert.equal(st.log[0].range, null);
    assert.equal(st.bytes, SIZE);
    assert.equal(await storedSha256(url), sha256(data));
  });

  it('makes no request for a cached file, and verifies a sha256 from the cache', async () => {
    const { url, data } = file('cached.bin', 2);
    must(await download(url, { chunkSize: CHUNK }));
    server.resetStats();
    const again = await download(url);
    must(again);
    assert.equal(server.stats(url).requests, 0);
    const verified = await download(url, { sha256: sha256(data) });
    must(verified);
    assert.equal(verified.value.sha256, sha256(data));
    // The only requests are the package's own modules for the download worker.
    assert.deepEqual(server.requestedPaths().filter((p) => !p.startsWith('/pkg/dist/')), []);
  });

  it('resumes after a dropped connection, fetching only the missing chunks', async () => {
    const { url, data } = file('dropped.bin', 3);
    server.configure(url, { dropAfter: 18 * MB + 777, dropOnce: true, ...dropPace });
    const first = await download(url, { chunkSize: CHUNK });
    assert.equal(first.ok, false);
    assert.equal(first.error.code, 'network', first.error.message);
    const partial = await entry(url);
    assert.equal(partial.complete, false);
    // Whole chunks only, and none beyond what the server sent before cutting the connection.
    assert.equal(partial.bytes % CHUNK, 0);
    assert.ok(partial.bytes > 0 && partial.bytes <= 18 * MB, `stored ${partial.bytes}`);

    server.resetStats();
    const second = await download(url, { chunkSize: CHUNK });
    must(second);
    checkProgress(assert, second.progress, SIZE);
    const st = server.stats(url);
    assert.equal(st.requests, 1);
    assert.equal(st.log[0].range, `bytes=${partial.bytes}-${SIZE - 1}`);
    assert.equal(st.log[0].status, 206);
    assert.equal(st.bytes, SIZE - partial.bytes);
    assert.equal(await storedSha256(url), sha256(data));
  });

  it('aborts with an AbortError, keeps the chunks, and resumes from them', async () => {
    const { url, data } = file('aborted.bin', 4);
    server.configure(url, { bytesPerSecond: 16 * MB }); // the abort lands mid-download however busy the machine is
    const first = await download(url, { chunkSize: CHUNK, abortAt: 14 * MB });
    assert.equal(first.ok, false);
    assert.equal(first.error.name, 'AbortError');
    assert.equal(first.error.code, 'aborted');
    const partial = await entry(url);
    assert.equal(partial.complete, false);
    assert.ok(partial.bytes >= 3 * CHUNK, `stored ${partial.bytes}: the chunks completed before the abort are kept`);

    server.resetStats();
    server.resetBehavior(url);
    const second = await download(url);
    must(second);
    const st = server.stats(url);
    assert.equal(st.requests, 1);
    assert.equal(st.log[0].range, `bytes=${partial.bytes}-${SIZE - 1}`);
    assert.equal(st.bytes, SIZE - partial.bytes);
    assert.equal(await storedSha256(url), sha256(data));
  });

  it('completes a resume when the server ignores Range', async () => {
    const { url, data } = file('norange.bin', 5);
    server.configure(url, { dropAfter: 10 * MB, dropOnce: true, ...dropPace });
    assert.equal((await download(url, { chunkSize: CHUNK })).ok, false);
    assert.ok((await entry(url)).bytes > 0);
    server.configure(url, { ignoreRange: true });
    server.resetStats();
    must(await download(url));
    const st = server.stats(url);
    assert.equal(st.log[0].status, 200);
    assert.equal(await storedSha256(url), sha256(data));
    assert.equal((await entry(url)).complete, true);
  });

  for (const variant of [
    { name: 'ETag', behavior: {}, newSize: SIZE },
    { name: 'Last-Modified only', behavior: { etag: false }, newSize: SIZE },
    { name: 'size (file now shorter than what was stored)', behavior: {}, newSize: 6 * MB },
  ]) {
    it(`refetches from scratch a file that changed on the server (${variant.name})`, async () => {
      const name = `changed-${variant.newSize}-${variant.behavior.etag === false ? 'lm' : 'etag'}.bin`;
      const { url } = file(name, 6);
      server.configure(url, { ...variant.behavior, dropAfter: 12 * MB, dropOnce: true, ...dropPace });
      assert.equal((await download(url, { chunkSize: CHUNK })).ok, false);
      assert.ok((await entry(url)).bytes > 0);
      const changed = seededBytes(variant.newSize, 7);
      server.addFile(url, changed);
      server.resetStats();
      const r = await download(url, { chunkSize: CHUNK });
      must(r);
      assert.equal(r.value.size, variant.newSize);
      const st = server.stats(url);
      const full = st.log.filter((e) => e.range === null);
      assert.equal(full.length, 1, `one full refetch: ${JSON.stringify(st.log)}`);
      assert.equal(full[0].bytes, variant.newSize);
      assert.equal(await storedSha256(url), sha256(changed));
    });
  }

  it('reports HTTP 404 as code "http" with the status, storing nothing', async () => {
    const r = await download('/files/missing.bin');
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'http');
    assert.equal(r.error.status, 404);
    assert.equal(await entry('/files/missing.bin'), null);
  });

  it('reports a network failure as code "network"', async () => {
    const other = await new TestServer().start();
    const url = `${other.origin}/files/gone.bin`;
    await other.stop(); // nothing listens on that port now
    const r = await download(url);
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'network', r.error.message);
    assert.equal(await entry(url), null);
  });

  it('refuses with code "quota", before writing anything, when storage is too small', async () => {
    const { url } = file('quota.bin', 8);
    const r = await download(url, { __storageEstimate: { quota: 30 * MB, usage: 1 * MB } });
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'quota');
    assert.deepEqual(r.error.details, { needed: SIZE, available: 29 * MB, quota: 30 * MB, usage: 1 * MB });
    assert.match(r.error.message, /needs 40\.0 MB but only 29\.0 MB/);
    assert.equal(await entry(url), null);
  });

  it('deletes the entry and throws code "integrity" on a sha256 mismatch', async () => {
    const { url, data } = file('integrity.bin', 9);
    const wrong = sha256(Buffer.from('something else'));
    const r = await download(url, { sha256: wrong });
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'integrity');
    assert.deepEqual(r.error.details, { expected: wrong, actual: sha256(data) });
    assert.equal(await entry(url), null);
    const good = await download(url, { sha256: sha256(data).toUpperCase() });
    must(good);
    assert.equal(good.value.sha256, sha256(data));
  });

  it('verifies sha256 across a resume (stored chunks are hashed too)', async () => {
    const { url, data } = file('resume-sha.bin', 10);
    server.configure(url, { dropAfter: 9 * MB, dropOnce: true, ...dropPace });
    assert.equal((await download(url, { chunkSize: CHUNK })).ok, false);
    must(await download(url, { sha256: sha256(data) }));
    assert.equal((await entry(url)).sha256, sha256(data));
  });

  it('downloads and resumes from a cross-origin server (CORS)', async () => {
    const models = await new TestServer().start();
    try {
      const data = seededBytes(SIZE, 11);
      models.addFile('/x/model.bin', data);
      const url = `${models.origin}/x/model.bin`;
      models.configure('/x/model.bin', { dropAfter: 13 * MB, dropOnce: true, ...dropPace });
      assert.equal((await download(url, { chunkSize: CHUNK })).ok, false);
      const partial = await entry(url);
      assert.ok(partial.bytes > 0);
      models.resetStats();
      must(await download(url));
      const gets = models.stats('/x/model.bin').log.filter((e) => e.method === 'GET');
      assert.equal(gets.length, 1);
      assert.equal(gets[0].range, `bytes=${partial.bytes}-${SIZE - 1}`);
      assert.equal(gets[0].bytes, SIZE - partial.bytes);
      assert.equal(await storedSha256(url), sha256(data));
    } finally {
      await models.stop();
    }
  });

  it('never uses a damaged entry: a missing chunk is noticed, the entry dropped and fetched again', async () => {
    const { url, data } = file('damaged.bin', 15);
    must(await download(url, { chunkSize: CHUNK }));
    // Remove one stored chunk behind the manifest's back (what a storage bug or manual tampering could do).
    await page.evaluate((u) => new Promise((resolve, reject) => {
      const open = indexedDB.open('pocketlm-weights');
      open.onsuccess = () => {
        const t = open.result.transaction('chunks', 'readwrite');
        t.objectStore('chunks').delete([new URL(u, location.href).href, 3]);
        t.oncomplete = () => { open.result.close(); resolve(undefined); };
        t.onerror = () => reject(t.error);
      };
    }), url);
    server.resetStats();
    const r = await download(url, { sha256: sha256(data) }); // a sha256 makes it read the cached chunks
    must(r);
    assert.equal(server.stats(url).bytes, SIZE, 'downloaded again in full');
    assert.equal(await storedSha256(url), sha256(data));
  });

  it('serialises concurrent downloads of one URL: one transfer, both succeed', async () => {
    const { url, data } = file('concurrent.bin', 14);
    const [a, b] = await page.evaluate((u) => Promise.all([window.download(u), window.download(u)]), url);
    must(a);
    must(b);
    const st = server.stats(url);
    assert.equal(st.requests, 1, JSON.stringify(st.log));
    assert.equal(st.bytes, SIZE);
    assert.equal(await storedSha256(url), sha256(data));
  });

  it('ModelCache lists, measures, deletes and clears entries', async () => {
    await page.evaluate(() => window.pocketlm.ModelCache.clear());
    const a = file('list-a.bin', 12, 5 * MB);
    const b = file('list-b.bin', 13, 3 * MB + 1);
    must(await download(a.url));
    must(await download(b.url));
    const origin = server.origin;
    const list = await page.evaluate(() => window.pocketlm.ModelCache.list());
    assert.deepEqual(list.map((e) => [e.url, e.bytes, e.complete]).sort(),
      [[`${origin}${a.url}`, 5 * MB, true], [`${origin}${b.url}`, 3 * MB + 1, true]]);
    assert.ok(list.every((e) => typeof e.storedAt === 'number' && e.storedAt > 0));
    const usage = await page.evaluate(() => window.pocketlm.ModelCache.usage());
    assert.equal(usage.bytes, 8 * MB + 1);
    if (FEATURES[name].storageEstimate) assert.ok(usage.quota > 0 && usage.usage >= 0, JSON.stringify(usage));
    else assert.deepEqual([usage.quota, usage.usage], [null, null]); // no navigator.storage: the documented nulls
    assert.equal(await page.evaluate((u) => window.pocketlm.ModelCache.delete(u), a.url), true);
    assert.equal(await page.evaluate((u) => window.pocketlm.ModelCache.delete(u), a.url), false);
    assert.deepEqual((await page.evaluate(() => window.pocketlm.ModelCache.list())).map((e) => e.url),
      [`${origin}${b.url}`]);
    await page.evaluate(() => window.pocketlm.ModelCache.clear());
    assert.deepEqual(await page.evaluate(() => window.pocketlm.ModelCache.list()), []);
    assert.equal((await page.evaluate(() => window.pocketlm.ModelCache.usage())).bytes, 0);
    assert.equal(typeof await page.evaluate(() => window.pocketlm.ModelCache.persist()), 'boolean');
  });

  it('leaves no errors on the page', async () => {
    assert.deepEqual(await page.problems(), []);
  });
});
