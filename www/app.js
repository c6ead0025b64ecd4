// The demo page: model loading with progress, the stored-model manager, chat, and the private tools, all over one
// PocketLM instance from the `pocketlm` npm package. Model output is only ever inserted as text (text nodes,
// textContent), never parsed as HTML.
//
// This module only starts the page: each panel (www/panels/) sets up its own controls; panels/page.js holds what
// they share.
import { state, setEngineStatus, updateControls } from './panels/page.js';
import { setupModelPanel, showLoadError } from './panels/model.js';
import { setupStoragePanel, refreshCache } from './panels/storage.js';
import { setupTabs } from './panels/tabs.js';
import { setupSettings } from './panels/settings.js';
import { setupChat } from './panels/chat.js';
import { setupToolsPanel } from './panels/tools.js';

const params = new URLSearchParams(location.search);
// `?fake=1` swaps in a scripted stand-in for UI work without the wasm engine. It is never the default.
const FAKE = params.get('fake') === '1';
// The package as a user of the npm package gets it: the built ES module (pkg/dist/ next to www/ in the repository).
const ENGINE_URL = FAKE ? './dev/fake-pocketlm.js' : '../pkg/dist/index.js';

// ---------------------------------------------------------------------------------------------------- start-up

init();

async function init() {
  setupModelPanel(params);
  setupToolsPanel();
  setupSettings();
  setupStoragePanel();
  setupTabs();
  setupChat();
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
