// Service worker: keeps the demo's own files (and the pocketlm package they import) so the page opens offline.
// Network first, so a deployed update is seen on the next visit; the cache is only the offline fallback.
// Model files are NOT handled here: the package stores weights in IndexedDB itself, fetches them with Range
// requests, and a second copy in Cache Storage would double the disk use.
const CACHE = 'pocketlm-demo-v1';
const SCOPE = new URL('./', self.location).pathname; // e.g. /www/
const PKG = new URL('../pkg/dist/', self.location).pathname; // the built npm package next to the site
const DEV = `${SCOPE}dev/`; // development-only fake engine: never cached
const SITE = ['./', './index.html', './app.js', './format.js', './tools.js', './style.css', './favicon.svg',
  './panels/page.js', './panels/model.js', './panels/storage.js', './panels/tabs.js', './panels/settings.js',
  './panels/chat.js', './panels/tools.js'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SITE)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('pocketlm-demo-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || req.headers.has('range')) return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  const path = url.pathname;
  const ours = (path.startsWith(SCOPE) && !path.startsWith(DEV)) || path.startsWith(PKG);
  if (!ours) return; // models and anything else: straight to the network, untouched
  event.respondWith(networkFirst(event, req));
});

async function networkFirst(event, req) {
  const cache = await caches.open(CACHE);
  // Pages are stored without their query (?model=..., ?fake=1) so any variant opens offline.
  const key = req.mode === 'navigate' ? new URL('./index.html', self.location).href : req;
  try {
    const res = await fetch(req);
    // Stored in the background so a large file (the engine's .wasm) streams to the page without waiting.
    if (res.status === 200 && res.type === 'basic') event.waitUntil(cache.put(key, res.clone()));
    return res;
  } catch (err) {
    const hit = await cache.match(key, { ignoreSearch: true });
    if (hit) return hit;
    throw err;
  }
}
