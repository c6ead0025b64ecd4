// The demo page: model loading with progress, the stored-model manager, chat, and the private tools, all over one
// PocketLM instance from the `pocketlm` npm package. Model output is only ever inserted as text (text nodes,
// textContent), never parsed as HTML.
import { formatBytes, formatDuration, toMB, RateMeter, fileName } from './format.js';
import {
  TONES, summarizeMessages, rewriteMessages, sentimentMessages, SENTIMENT_OPTIONS, parseSentiment,
} from './tools.js';

const params = new URLSearchParams(location.search);
// `?fake=1` swaps in a scripted stand-in for UI work without the wasm engine. It is never the default.
const FAKE = params.get('fake') === '1';
// The package as a user of the npm package gets it: the built ES module (pkg/dist/ next to www/ in the repository).
const ENGINE_URL = FAKE ? './dev/fake-pocketlm.js' : '../pkg/dist/index.js';

const PRESETS = [
  { id: 'smollm2', label: 'SmolLM2 135M Instruct (98 MB)', url: '../models/SmolLM2-135M-Instruct.Q4_1.gguf' },
  { id: 'gemma3', label: 'Gemma 3 270M base (253 MB)', url: '../models/gemma-3-270m-q4_k_m.gguf' },
  { id: 'custom', label: 'Other GGUF URL…', url: '' },
];
const PHASES = { download: 'Downloading', cache: 'Reading from browser storage', file: 'Reading the file',
  init: 'Preparing the model' };
const BACKENDS = { 'relaxed-simd': 'relaxed SIMD', simd128: 'SIMD128', scalar: 'scalar (no SIMD)' };
const TOOL_OPTIONS = { temperature: 0.2, topP: 0.9, repeatPenalty: 1.1 };
const SETTINGS_KEY = 'pocketlm-demo-settings';
const NARROW = '(max-width: 52rem)'; // the one-column layout in style.css

const $ = (id) => document.getElementById(id);
const el = {
  status: $('status'), statusEngine: $('status-engine'),
  modelPanel: $('model-panel'), modelSummary: $('model-summary'), loadForm: $('load-form'), preset: $('preset'),
  urlField: $('url-field'), url: $('model-url'), file: $('model-file'), loadBtn: $('load-btn'), cancelBtn: $('cancel-btn'),
  unloadBtn: $('unload-btn'), progressBox: $('progress-box'), progress: $('load-progress'),
  progressPhase: $('progress-phase'), progressPercent: $('progress-percent'), progressDetail: $('progress-detail'),
  loadError: $('load-error'), modelInfo: $('model-info'),
  cacheList: $('cache-list'), cacheSummary: $('cache-summary'), usageFill: $('usage-fill'), usageText: $('usage-text'),
  cacheRefresh: $('cache-refresh'), cacheClear: $('cache-clear'),
  tabs: [$('tab-chat'), $('tab-tools')],
  messages: $('messages'), chatEmpty: $('chat-empty'), chatForm: $('chat-form'), chatInput: $('chat-input'),
  sendBtn: $('send-btn'), stopBtn: $('stop-btn'), regenBtn: $('regen-btn'), clearBtn: $('clear-btn'),
  statSpeed: $('stat-speed'), statContext: $('stat-context'),
  temperature: $('temperature'), temperatureOut: $('temperature-out'), topP: $('top-p'), topPOut: $('top-p-out'),
  maxTokens: $('max-tokens'), systemPrompt: $('system-prompt'), settingsSummary: $('settings-summary'),
  toolInput: $('tool-input'), tone: $('tone'), toolButtons: [...document.querySelectorAll('[data-tool]')],
  toolStop: $('tool-stop'), toolOutput: $('tool-output'), toolKind: $('tool-result-kind'),
  sentimentBadge: $('sentiment-badge'), toolCopy: $('tool-copy'), toolStats: $('tool-stats'),
};

const state = {
  engine: null, // the imported module: { PocketLM, ModelCache, PocketLMError }
  lm: null, // the loaded model
  loadedUrl: null,
  loading: null, // AbortController while a load runs
  generating: null, // { ctl: AbortController, kind: 'chat'|'tool' } while the model writes
  history: [], // [{ role, content, node }]
};

// ---------------------------------------------------------------------------------------------------- start-up

init();

async function init() {
  for (const p of PRESETS) el.preset.append(new Option(p.label, p.id));
  for (const tone of Object.keys(TONES)) el.tone.append(new Option(`in a ${tone} tone`, tone));
  const wanted = params.get('model');
  if (wanted) {
    const preset = PRESETS.find((p) => p.url && sameUrl(p.url, wanted));
    el.preset.value = preset ? preset.id : 'custom';
    if (!preset) el.url.value = wanted;
  }
  syncPreset();
  restoreSettings();
  // On a phone the stored-model list would push the chat far down; it opens on demand there.
  if (matchMedia(NARROW).matches) $('cache-panel').open = false;
  wireEvents();
  updateControls();

  try {
    state.engine = await import(ENGINE_URL);
  } catch (err) {
    console.error(err);
    showLoadError(!navigator.onLine
      ? 'You are offline and the engine is not stored for offline use. Reconnect to load a model.'
      : FAKE
        ? 'Could not load the fake engine (www/dev/fake-pocketlm.js).'
        : 'The pocketlm package was not found next to this site (pkg/dist/index.js). Build it with “make pkg”.');
    setEngineStatus('Engine unavailable');
    updateControls();
    return;
  }
  setEngineStatus(FAKE ? 'No model loaded (FAKE engine for UI development)' : 'No model loaded');
  updateControls();
  refreshCache();

  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('./sw.js').catch((err) => console.warn('service worker not registered:', err));
  }
}

function sameUrl(a, b) {
  try {
    return new URL(a, location.href).href === new URL(b, location.href).href;
  } catch {
    return false;
  }
}

function wireEvents() {
  el.preset.addEventListener('change', syncPreset);
  el.loadForm.addEventListener('submit', (e) => {
    e.preventDefault();
    loadSelected();
  });
  // A local GGUF: chosen with the file input or dropped on the model panel.
  el.file.addEventListener('change', () => el.file.files?.[0] && loadSelected(el.file.files[0]));
  el.modelPanel.addEventListener('dragover', (e) => e.preventDefault());
  el.modelPanel.addEventListener('drop', (e) => {
    const f = e.dataTransfer?.files?.[0];
    if (!f) return;
    e.preventDefault();
    loadSelected(f);
  });
  el.cancelBtn.addEventListener('click', () => state.loading?.abort());
  el.unloadBtn.addEventListener('click', unload);
  el.cacheRefresh.addEventListener('click', refreshCache);
  el.cacheClear.addEventListener('click', clearCache);

  for (const tab of el.tabs) {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', onTabKey);
  }

  el.chatForm.addEventListener('submit', (e) => {
    e.preventDefault();
    sendChat();
  });
  el.chatInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      sendChat();
    } else if (e.key === 'Escape' && state.generating) {
      e.preventDefault();
      stopGenerating();
    }
  });
  el.chatInput.addEventListener('input', updateControls);
  el.stopBtn.addEventListener('click', stopGenerating);
  el.toolStop.addEventListener('click', stopGenerating);
  el.regenBtn.addEventListener('click', regenerate);
  el.clearBtn.addEventListener('click', clearChat);

  for (const input of [el.temperature, el.topP, el.maxTokens, el.systemPrompt]) {
    input.addEventListener('input', () => {
      showSettings();
      saveSettings();
    });
  }

  for (const btn of el.toolButtons) btn.addEventListener('click', () => runTool(btn.dataset.tool));
  el.toolInput.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.generating) stopGenerating();
  });
  el.toolCopy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(el.toolOutput.textContent);
      announce('Result copied to the clipboard.');
    } catch {
      announce('Copying is not allowed here; select the text instead.');
    }
  });
}

// ---------------------------------------------------------------------------------------------------- status

function setEngineStatus(text) {
  el.statusEngine.textContent = text;
}

/** One-off messages for screen readers and sighted users alike go through the status line. */
let announceTimer = 0;
function announce(text) {
  const before = el.statusEngine.dataset.steady ?? el.statusEngine.textContent;
  el.statusEngine.dataset.steady = before;
  setEngineStatus(text);
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    setEngineStatus(el.statusEngine.dataset.steady);
    delete el.statusEngine.dataset.steady;
  }, 4000);
}

function engineDescription(info) {
  const backend = BACKENDS[info.backend] ?? String(info.backend ?? 'unknown backend');
  const threads = Number(info.threads) || 1;
  return `${backend} · ${threads} thread${threads === 1 ? '' : 's'}`;
}

/** Enables exactly the controls that make sense now. */
function updateControls() {
  const ready = !!state.lm;
  const loading = !!state.loading;
  const busy = !!state.generating;
  el.loadBtn.disabled = !state.engine || loading || busy;
  el.preset.disabled = loading;
  el.url.disabled = loading;
  el.cancelBtn.hidden = !loading;
  el.unloadBtn.hidden = !ready || loading;
  el.unloadBtn.disabled = busy;

  el.sendBtn.disabled = !ready || busy || !el.chatInput.value.trim();
  el.sendBtn.hidden = busy && state.generating.kind === 'chat';
  el.stopBtn.hidden = !(busy && state.generating.kind === 'chat');
  el.regenBtn.disabled = !ready || busy || !state.history.some((m) => m.role === 'user');
  el.clearBtn.disabled = busy || state.history.length === 0;
  el.messages.setAttribute('aria-busy', String(busy && state.generating.kind === 'chat'));

  for (const b of el.toolButtons) b.disabled = !ready || busy;
  el.toolStop.hidden = !(busy && state.generating.kind === 'tool');
  el.toolOutput.setAttribute('aria-busy', String(busy && state.generating.kind === 'tool'));

  for (const b of el.cacheList.querySelectorAll('button')) b.disabled = loading;
  el.cacheClear.disabled = loading || !Number(el.cacheList.dataset.count);
  el.chatInput.placeholder = ready ? 'Message the model…' : 'Load a model to start chatting…';
}

// ---------------------------------------------------------------------------------------------------- loading

function syncPreset() {
  const custom = el.preset.value === 'custom';
  el.urlField.hidden = !custom;
  el.url.required = custom;
}

function selectedUrl() {
  const preset = PRESETS.find((p) => p.id === el.preset.value);
  const raw = preset?.id === 'custom' ? el.url.value.trim() : preset?.url;
  if (!raw) return null;
  try {
    const url = new URL(raw, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** @param {File} [file] a local GGUF instead of the selected URL */
async function loadSelected(file) {
  if (state.loading || !state.engine) return;
  const url = file ?? selectedUrl();
  const label = file ? file.name : fileName(url ?? '');
  if (!url) {
    showLoadError('Enter the full http(s) address of a .gguf file.');
    el.url.focus();
    return;
  }
  if (state.lm) await unload();
  showLoadError(null);

  const ctl = new AbortController();
  state.loading = ctl;
  const meter = new RateMeter();
  let phase = null;
  el.progressBox.hidden = false;
  el.progress.max = 1;
  el.progress.value = 0;
  el.progressPhase.textContent = 'Starting';
  el.progressPercent.textContent = '';
  el.progressDetail.textContent = '';
  el.modelSummary.textContent = 'loading…';
  setEngineStatus(`Loading ${label}…`);
  updateControls();

  const onProgress = ({ loaded = 0, total = 0, phase: p = 'download' } = {}) => {
    if (p !== phase) {
      phase = p;
      meter.reset();
      el.progressPhase.textContent = PHASES[p] ?? p;
      refreshCache(); // a new download shows up as a partial entry
    }
    meter.add(loaded);
    if (total > 0) {
      el.progress.max = total;
      el.progress.value = Math.min(loaded, total);
      el.progressPercent.textContent = `${Math.floor((100 * Math.min(loaded, total)) / total)}%`;
    } else {
      el.progress.removeAttribute('value'); // indeterminate: the size is not known (yet)
      el.progressPercent.textContent = '';
    }
    el.progressDetail.textContent = progressDetail(p, loaded, total, meter.rate());
  };

  try {
    // threads 'auto' (the package's default share of the cores) is used only where the page is cross-origin
    // isolated (the demo server sends COOP/COEP); otherwise the package runs one thread.
    // A file is also stored in the cache (cache: true), so it appears in the list and loads again from there.
    const lm = await state.engine.PocketLM.load(url, { onProgress, signal: ctl.signal, threads: 'auto',
      ...(file ? { cache: true } : {}) });
    state.lm = lm;
    state.loadedUrl = file ? lm.info.cacheKey : url;
    el.progress.value = el.progress.max;
    el.progressPercent.textContent = '100%';
    showModelInfo(lm.info);
    setEngineStatus(`Ready · ${engineDescription(lm.info)}`);
    // The file name says which variant this is; the GGUF's own name is in the info table.
    el.modelSummary.textContent = `${label.replace(/\.gguf$/i, '')} · ready`;
    updateContextStat(0);
    el.progressBox.hidden = true;
    if (matchMedia(NARROW).matches) el.modelPanel.open = false;
    state.engine.ModelCache.persist?.().catch(() => {});
  } catch (err) {
    el.modelSummary.textContent = 'not loaded';
    el.progressBox.hidden = true;
    if (isAbort(err)) {
      setEngineStatus('Loading cancelled');
      showLoadError('Loading cancelled. What was already downloaded is kept, so loading again continues from there.');
    } else {
      console.error(err);
      setEngineStatus('No model loaded');
      showLoadError(describeError(err));
    }
  } finally {
    state.loading = null;
    updateControls();
    refreshCache();
  }
}

function progressDetail(phase, loaded, total, rate) {
  // The package reports 'init' with loaded === total: every byte is in, the engine is building the model.
  if (phase === 'init') return `${formatBytes(total)} in memory · building the model…`;
  const parts = [total > 0 ? `${toMB(loaded)} / ${toMB(total)} MB` : `${toMB(loaded)} MB`];
  if (Number.isFinite(rate) && rate > 0) {
    parts.push(`${(rate / 1e6).toFixed(1)} MB/s`);
    if (total > loaded) parts.push(`${formatDuration((total - loaded) / rate)} left`);
  }
  return parts.join(' · ');
}

function showLoadError(text) {
  el.loadError.hidden = !text;
  el.loadError.textContent = text ?? '';
}

function showModelInfo(info) {
  const rows = [
    ['Model', info.name],
    ['Architecture', info.architecture],
    ['Parameters', formatCount(info.parameters)],
    ['Quantization', info.quantization],
    ['File size', formatBytes(info.fileBytes)],
    ['Context', info.contextSize ? `${info.contextSize.toLocaleString()} tokens` : undefined],
    ['Vocabulary', info.vocabSize ? `${info.vocabSize.toLocaleString()} tokens` : undefined],
    ['Engine', engineDescription(info)],
  ];
  el.modelInfo.replaceChildren();
  for (const [k, v] of rows) {
    if (v === undefined || v === null || v === '') continue;
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = String(v);
    el.modelInfo.append(dt, dd);
  }
  el.modelInfo.hidden = false;
}

function formatCount(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return n;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  return n.toLocaleString();
}

async function unload() {
  const lm = state.lm;
  if (!lm) return;
  stopGenerating();
  state.lm = null;
  state.loadedUrl = null;
  el.modelInfo.hidden = true;
  el.modelSummary.textContent = 'not loaded';
  setEngineStatus('No model loaded');
  updateContextStat(null);
  updateControls();
  try {
    await lm.unload();
  } catch (err) {
    console.warn('unload failed:', err);
  }
  refreshCache();
}

function isAbort(err) {
  return err?.name === 'AbortError' || err?.code === 'aborted';
}

/** A sentence a user can act on, from a PocketLMError's stable code. */
function describeError(err) {
  const detail = err?.message ? ` (${err.message})` : '';
  switch (err?.code) {
    case 'network': return 'The download was interrupted by a network error. Loading again continues where it stopped.';
    case 'http': return `The server did not deliver the model file${err.status ? ` (HTTP ${err.status})` : detail}.`;
    case 'quota': return 'Not enough browser storage for this model. Delete stored models below, or free disk space.';
    case 'storage': return `The browser storage failed${detail}. Private windows may not allow storing models.`;
    case 'memory': return 'The model does not fit in the memory this page can use. Try a smaller model or context.';
    case 'worker': return navigator.onLine ? `The engine could not start: ${err.message}`
      : 'You are offline, and the engine’s files are not stored for offline use. Reconnect to load a model.';
    case 'unloaded': return 'The model was unloaded. Load it again to continue.';
    case 'integrity': return 'The downloaded file does not match its checksum, so it was discarded. Try loading again.';
    case 'format': return `This file is not a GGUF model the engine can read${detail}.`;
    case 'unsupported': return `This model needs something the engine does not support yet${detail}.`;
    case 'context-overflow': return 'This no longer fits in the model’s context window. Clear the chat or use shorter text.';
    default: return err?.message || String(err);
  }
}

// ---------------------------------------------------------------------------------------------------- cache manager

async function refreshCache() {
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

// ---------------------------------------------------------------------------------------------------- tabs

function selectTab(tab) {
  for (const t of el.tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
}

function onTabKey(e) {
  const i = el.tabs.indexOf(e.currentTarget);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: el.tabs.length - 1 }[e.key];
  if (next === undefined) return;
  e.preventDefault();
  const tab = el.tabs[(next + el.tabs.length) % el.tabs.length];
  selectTab(tab);
  tab.focus();
}

// ---------------------------------------------------------------------------------------------------- settings

function settings() {
  const num = (input, fallback) => (Number.isFinite(input.valueAsNumber) ? input.valueAsNumber : fallback);
  return {
    temperature: num(el.temperature, 0.7),
    topP: num(el.topP, 0.9),
    maxTokens: Math.max(1, Math.min(4096, Math.round(num(el.maxTokens, 256)))),
    system: el.systemPrompt.value.trim(),
  };
}

function showSettings() {
  const s = settings();
  el.temperatureOut.textContent = s.temperature.toFixed(2);
  el.topPOut.textContent = s.topP.toFixed(2);
  el.settingsSummary.textContent = `temperature ${s.temperature.toFixed(2)} · top-p ${s.topP.toFixed(2)} · ${s.maxTokens} tokens${s.system ? ' · system prompt' : ''}`;
}

function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings()));
  } catch {
    // Storage can be disabled; settings then last for this visit only.
  }
}

function restoreSettings() {
  try {
    const s = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? 'null');
    if (s && typeof s === 'object') {
      if (Number.isFinite(s.temperature)) el.temperature.value = String(s.temperature);
      if (Number.isFinite(s.topP)) el.topP.value = String(s.topP);
      if (Number.isFinite(s.maxTokens)) el.maxTokens.value = String(s.maxTokens);
      if (typeof s.system === 'string') el.systemPrompt.value = s.system;
    }
  } catch {
    // Ignore unreadable saved settings.
  }
  showSettings();
}

// ---------------------------------------------------------------------------------------------------- chat

function sendChat() {
  const text = el.chatInput.value.trim();
  if (!text || !state.lm || state.generating) return;
  el.chatInput.value = '';
  state.history.push({ role: 'user', content: text, node: addMessage('user', text) });
  updateControls();
  generateReply();
}

/** Appends a message bubble; returns it. The text goes into a text node, so it can never become markup. */
function addMessage(role, text) {
  el.chatEmpty.hidden = true;
  const msg = document.createElement('article');
  msg.className = `msg ${role}`;
  const who = document.createElement('span');
  who.className = 'sr-only';
  who.textContent = role === 'user' ? 'You said:' : role === 'assistant' ? 'Model replied:' : 'Notice:';
  const body = document.createElement('div');
  body.className = 'text';
  body.append(document.createTextNode(text));
  msg.append(who, body);
  el.messages.append(msg);
  scrollToEnd(true);
  return msg;
}

function scrollToEnd(force) {
  const box = el.messages;
  const nearEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 96;
  if (force || nearEnd) box.scrollTop = box.scrollHeight;
}

function addMeta(node, text, kind = '') {
  const meta = document.createElement('p');
  meta.className = `meta ${kind}`.trim();
  meta.textContent = text;
  node.append(meta);
}

async function generateReply() {
  const s = settings();
  const messages = [];
  if (s.system) messages.push({ role: 'system', content: s.system });
  for (const m of state.history) messages.push({ role: m.role, content: m.content });

  const node = addMessage('assistant', '');
  node.classList.add('streaming');
  const textNode = node.querySelector('.text').firstChild;
  const ctl = new AbortController();
  state.generating = { ctl, kind: 'chat' };
  updateControls();

  let pieces = 0;
  let firstAt = 0;
  let outcome = 'done';
  let error = null;
  el.statSpeed.textContent = 'reading prompt…';
  try {
    const stream = state.lm.chatStream(messages, {
      temperature: s.temperature, topP: s.topP, maxTokens: s.maxTokens, signal: ctl.signal,
    });
    for await (const piece of stream) {
      if (!piece) continue;
      const now = performance.now();
      if (!firstAt) firstAt = now;
      textNode.appendData(piece);
      pieces++;
      // Live estimate (a streamed piece is about one token); replaced by the engine's own count when done.
      if (now - firstAt > 250) el.statSpeed.textContent = `≈${((1000 * (pieces - 1)) / (now - firstAt)).toFixed(1)} tok/s`;
      scrollToEnd(false);
    }
  } catch (err) {
    if (isAbort(err)) outcome = 'stopped';
    else {
      outcome = 'error';
      error = err;
      console.error(err);
    }
  }
  if (ctl.signal.aborted && outcome === 'done') outcome = 'stopped';

  node.classList.remove('streaming');
  const text = textNode.data;
  if (text.trim()) {
    state.history.push({ role: 'assistant', content: text, node });
  } else if (outcome !== 'done') {
    node.remove();
  } else {
    textNode.data = '(empty reply)';
    node.classList.add('muted');
    state.history.push({ role: 'assistant', content: '', node });
  }
  const stats = showStats();
  if (outcome === 'stopped' && text.trim()) addMeta(node, 'Stopped.', 'stopped');
  else if (outcome === 'stopped') addMessage('notice', 'Stopped before the model wrote anything.');
  else if (outcome === 'error') addMessage('notice', describeError(error)).classList.add('error');
  else if (stats) addMeta(node, replyMeta(stats));

  const hadFocus = document.activeElement === el.stopBtn;
  state.generating = null;
  updateControls();
  if (hadFocus) el.chatInput.focus();
}

const FINISH = { length: ' · reached max tokens', context: ' · context full' };
function replyMeta(st) {
  return `${st.generatedTokens} tokens · ${st.decodeTokensPerSecond.toFixed(1)} tok/s${FINISH[st.finishReason] ?? ''}`;
}

/** Shows the engine's own numbers for the last chat call; returns them when they are usable. */
function showStats() {
  const st = state.lm?.lastStats;
  if (!st || !Number.isFinite(st.decodeTokensPerSecond)) {
    el.statSpeed.textContent = '— tok/s';
    return null;
  }
  el.statSpeed.textContent = `${st.decodeTokensPerSecond.toFixed(1)} tok/s`;
  el.statSpeed.title = `prompt: ${st.promptTokens} tokens at ${st.prefillTokensPerSecond?.toFixed?.(1) ?? '?'} tok/s`;
  updateContextStat((st.promptTokens || 0) + (st.generatedTokens || 0));
  return st;
}

function updateContextStat(used) {
  const size = state.lm?.info?.contextSize;
  if (used === null || !size) {
    el.statContext.textContent = 'context —';
    return;
  }
  el.statContext.textContent = `context ${used.toLocaleString()} / ${size.toLocaleString()} tokens`;
  el.statContext.classList.toggle('warn', used / size > 0.85);
}

function stopGenerating() {
  state.generating?.ctl.abort();
}

function regenerate() {
  if (!state.lm || state.generating) return;
  while (state.history.length && state.history[state.history.length - 1].role === 'assistant') {
    state.history.pop().node.remove();
  }
  // Notices (stopped, errors) after the last user message belong to the reply being replaced.
  const lastUser = state.history[state.history.length - 1]?.node;
  while (lastUser?.nextElementSibling) lastUser.nextElementSibling.remove();
  if (!state.history.length) return;
  generateReply();
}

function clearChat() {
  if (state.generating) return;
  state.history = [];
  for (const node of [...el.messages.children]) if (node !== el.chatEmpty) node.remove();
  el.chatEmpty.hidden = false;
  el.statSpeed.textContent = '— tok/s';
  updateContextStat(state.lm ? 0 : null);
  updateControls();
  el.chatInput.focus();
}

// ---------------------------------------------------------------------------------------------------- tools

const TOOL_TITLES = { summarize: 'summary', rewrite: 'rewrite', sentiment: 'sentiment' };

async function runTool(kind) {
  if (!state.lm || state.generating) return;
  const text = el.toolInput.value.trim();
  if (!text) {
    el.toolOutput.replaceChildren(hint('Paste some text above first.'));
    el.toolInput.focus();
    return;
  }
  const ctl = new AbortController();
  state.generating = { ctl, kind: 'tool' };
  el.toolKind.textContent = kind === 'rewrite' ? `· rewrite ${el.tone.selectedOptions[0].text}` : `· ${TOOL_TITLES[kind]}`;
  el.sentimentBadge.hidden = true;
  el.toolCopy.disabled = true;
  el.toolStats.textContent = '';
  const out = document.createTextNode('');
  el.toolOutput.replaceChildren(out);
  el.toolOutput.classList.remove('error', 'muted');
  updateControls();

  try {
    if (kind === 'sentiment') {
      el.toolOutput.replaceChildren(hint('Reading…'));
      const answer = asText(await state.lm.chat(sentimentMessages(text), { ...SENTIMENT_OPTIONS, signal: ctl.signal }));
      const label = parseSentiment(answer);
      el.sentimentBadge.textContent = label ?? 'unclear';
      el.sentimentBadge.dataset.label = label ?? 'unclear';
      el.sentimentBadge.hidden = false;
      el.toolOutput.replaceChildren(document.createTextNode(`The model answered: “${answer.trim()}”`));
      el.toolOutput.classList.add('muted');
    } else {
      const messages = kind === 'summarize' ? summarizeMessages(text) : rewriteMessages(text, el.tone.value);
      const maxTokens = kind === 'summarize' ? 160 : Math.min(768, 64 + Math.ceil(text.length / 2));
      for await (const piece of state.lm.chatStream(messages, { ...TOOL_OPTIONS, maxTokens, signal: ctl.signal })) {
        out.appendData(piece);
      }
      if (!out.data.trim()) el.toolOutput.replaceChildren(hint('(The model returned nothing.)'));
    }
  } catch (err) {
    if (isAbort(err)) {
      el.toolOutput.append(hint(out.data ? ' — stopped.' : 'Stopped.'));
    } else {
      console.error(err);
      el.toolOutput.replaceChildren(document.createTextNode(describeError(err)));
      el.toolOutput.classList.add('error');
    }
  }
  // The chat's tokens/s and context figures stay the chat's; the tool's own figures go under its result.
  const st = state.lm?.lastStats;
  el.toolStats.textContent = st && Number.isFinite(st.decodeTokensPerSecond) ? replyMeta(st) : '';
  el.toolCopy.disabled = !el.toolOutput.textContent.trim();
  const hadFocus = document.activeElement === el.toolStop;
  state.generating = null;
  updateControls();
  if (hadFocus) el.toolButtons[0].focus();
}

function asText(result) {
  if (typeof result === 'string') return result;
  if (result && typeof result.text === 'string') return result.text;
  return String(result ?? '');
}

function hint(text) {
  const span = document.createElement('span');
  span.className = 'hint';
  span.textContent = text;
  return span;
}
