// What every panel of the demo page shares: its elements, its state, the status line, which controls are enabled,
// and the wording of errors. Model output is only ever inserted as text (text nodes, textContent), never parsed as
// HTML.

export const NARROW = '(max-width: 52rem)'; // the one-column layout in style.css

export const $ = (id) => document.getElementById(id);
export const el = {
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

export const state = {
  engine: null, // the imported module: { PocketLM, ModelCache, PocketLMError }
  lm: null, // the loaded model
  loadedUrl: null,
  loading: null, // AbortController while a load runs
  generating: null, // { ctl: AbortController, kind: 'chat'|'tool' } while the model writes
  history: [], // [{ role, content, node }]
};

export function setEngineStatus(text) {
  el.statusEngine.textContent = text;
}

/** One-off messages for screen readers and sighted users alike go through the status line. */
let announceTimer = 0;
export function announce(text) {
  const before = el.statusEngine.dataset.steady ?? el.statusEngine.textContent;
  el.statusEngine.dataset.steady = before;
  setEngineStatus(text);
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    setEngineStatus(el.statusEngine.dataset.steady);
    delete el.statusEngine.dataset.steady;
  }, 4000);
}

/** Enables exactly the controls that make sense now. */
export function updateControls() {
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

export function stopGenerating() {
  state.generating?.ctl.abort();
}

export function isAbort(err) {
  return err?.name === 'AbortError' || err?.code === 'aborted';
}

/** A sentence a user can act on, from a PocketLMError's stable code. */
export function describeError(err) {
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
