// The model panel: the preset or URL or local file, loading with progress, cancel, unload, and the model's info.
import { formatBytes, formatDuration, toMB, RateMeter, fileName } from '../format.js';
import { NARROW, el, state, setEngineStatus, updateControls, stopGenerating, isAbort, describeError } from './page.js';
import { refreshCache } from './storage.js';
import { updateContextStat } from './chat.js';

const PRESETS = [
  { id: 'smollm2', label: 'SmolLM2 135M Instruct (98 MB)', url: '../models/SmolLM2-135M-Instruct.Q4_1.gguf' },
  { id: 'gemma3', label: 'Gemma 3 270M base (253 MB)', url: '../models/gemma-3-270m-q4_k_m.gguf' },
  { id: 'custom', label: 'Other GGUF URL…', url: '' },
];
const PHASES = { download: 'Downloading', cache: 'Reading from browser storage', file: 'Reading the file',
  init: 'Preparing the model' };
const BACKENDS = { 'relaxed-simd': 'relaxed SIMD', simd128: 'SIMD128', scalar: 'scalar (no SIMD)' };

/** Fills the preset list, preselects `?model=`, and wires the panel's controls. */
export function setupModelPanel(params) {
  for (const p of PRESETS) el.preset.append(new Option(p.label, p.id));
  const wanted = params.get('model');
  if (wanted) {
    const preset = PRESETS.find((p) => p.url && sameUrl(p.url, wanted));
    el.preset.value = preset ? preset.id : 'custom';
    if (!preset) el.url.value = wanted;
  }
  syncPreset();
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
}

function sameUrl(a, b) {
  try {
    return new URL(a, location.href).href === new URL(b, location.href).href;
  } catch {
    return false;
  }
}

function engineDescription(info) {
  const backend = BACKENDS[info.backend] ?? String(info.backend ?? 'unknown backend');
  const threads = Number(info.threads) || 1;
  return `${backend} · ${threads} thread${threads === 1 ? '' : 's'}`;
}

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

export function showLoadError(text) {
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
