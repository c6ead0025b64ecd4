// The stored-models panel: what the package keeps in IndexedDB, the storage use, delete one, delete all.
import { formatBytes, toMB, fileName } from '../format.js';
import { NARROW, $, el, state, announce, updateControls } from './page.js';

export function setupStoragePanel() {
  // On a phone the stored-model list would push the chat far down; it opens on demand there.
  if (matchMedia(NARROW).matches) $('cache-panel').open = false;
  el.cacheRefresh.addEventListener('click', refreshCache);
  el.cacheClear.addEventListener('click', clearCache);
}

export async function refreshCache() {
  const cache = state.engine?.ModelCache;
  if (!cache) return;
  let entries;
  try {
    entries = await cache.list();
  } catch (err) {
    console.error(err);
    el.cacheList.replaceChildren(listNote(`Cannot read the browser storage: ${err.message ?? err}`));
    return;
  }
  el.cacheList.replaceChildren();
  for (const entry of entries) el.cacheList.append(cacheItem(entry));
  if (!entries.length) el.cacheList.append(listNote('No models stored yet.'));
  el.cacheSummary.textContent = entries.length ? `${entries.length} stored` : '';
  el.cacheList.dataset.count = String(entries.length);
  try {
    // { bytes: stored by pocketlm, usage/quota: the whole site per navigator.storage.estimate(), or null }
    const u = await cache.usage();
    const used = Number.isFinite(u.usage) ? u.usage : u.bytes;
    const quota = Number.isFinite(u.quota) ? u.quota : 0;
    el.usageFill.style.width = quota > 0 ? `${Math.max(1, Math.min(100, (100 * used) / quota))}%` : '0%';
    el.usageText.textContent = `Models: ${formatBytes(u.bytes ?? 0)}`
      + (quota > 0 ? ` · site storage ${formatBytes(used)} of ${formatBytes(quota)}` : '')
      + (u.persisted ? ' · kept (persistent)' : '');
  } catch {
    el.usageText.textContent = 'Storage use is not available in this browser.';
  }
  updateControls();
}

function listNote(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  return li;
}

function cacheItem({ url, bytes, size, complete, storedAt }) {
  const li = document.createElement('li');
  li.className = 'cache-item';
  li.dataset.url = url;
  const name = document.createElement('span');
  name.className = 'cache-name';
  name.textContent = fileName(url);
  name.title = url;
  const meta = document.createElement('span');
  meta.className = 'cache-meta';
  const when = storedAt ? new Date(storedAt) : null;
  const tag = document.createElement('span');
  tag.className = `tag ${complete ? 'ok' : 'partial'}`;
  tag.textContent = complete ? 'complete' : 'partial';
  meta.append(tag, complete || !size ? ` ${formatBytes(size || bytes)}` : ` ${toMB(bytes)} / ${formatBytes(size)}`);
  if (when && !Number.isNaN(when.getTime())) {
    meta.append(' · ');
    const time = document.createElement('time');
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
    meta.append(time);
  }
  if (state.loadedUrl === url) {
    const inUse = document.createElement('span');
    inUse.className = 'tag live';
    inUse.textContent = 'in use';
    meta.append(' ', inUse);
  }
  const url2 = document.createElement('span');
  url2.className = 'cache-url';
  url2.textContent = url;
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'icon danger';
  del.textContent = 'Delete';
  del.setAttribute('aria-label', `Delete ${fileName(url)} from this browser's storage`);
  del.addEventListener('click', async () => {
    del.disabled = true;
    try {
      await state.engine.ModelCache.delete(url);
      announce(`Deleted ${fileName(url)} from storage.`);
    } catch (err) {
      announce(`Could not delete: ${err.message ?? err}`);
    }
    await refreshCache();
    el.cacheRefresh.focus();
  });
  li.append(name, url2, meta, del);
  return li;
}

// "Delete all" asks for a second click instead of a modal confirm() dialog.
let clearArmed = 0;
async function clearCache() {
  if (!clearArmed) {
    el.cacheClear.textContent = 'Click again to delete all';
    clearArmed = setTimeout(() => {
      clearArmed = 0;
      el.cacheClear.textContent = 'Delete all';
    }, 4000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = 0;
  el.cacheClear.textContent = 'Delete all';
  try {
    await state.engine.ModelCache.clear();
    announce('All stored models deleted.');
  } catch (err) {
    announce(`Could not delete: ${err.message ?? err}`);
  }
  refreshCache();
}
