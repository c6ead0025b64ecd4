// The chat's sampling settings and system prompt, kept in localStorage between visits.
import { el } from './page.js';

const SETTINGS_KEY = 'pocketlm-demo-settings';

/** Restores the saved settings and saves them again on every change. */
export function setupSettings() {
  restoreSettings();
  for (const input of [el.temperature, el.topP, el.maxTokens, el.systemPrompt]) {
    input.addEventListener('input', () => {
      showSettings();
      saveSettings();
    });
  }
}

export function settings() {
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
