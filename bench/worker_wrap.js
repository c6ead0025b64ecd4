// Imported by the bench page before either engine: every module worker the page starts first runs
// wasm_memory_hook.js, then the engine's own worker script (static imports evaluate in order, so the hook is in
// place before the engine's first line, and messages are handled exactly as without the wrapper).

const HOOK = new URL('./wasm_memory_hook.js', import.meta.url).href;
const OrigWorker = globalThis.Worker;

globalThis.Worker = class extends OrigWorker {
  constructor(url, options) {
    if (options?.type !== 'module') {
      super(url, options);
      return;
    }
    const target = new URL(String(url), location.href).href;
    const boot = `import ${JSON.stringify(HOOK)};\nimport ${JSON.stringify(target)};\n`;
    super(URL.createObjectURL(new Blob([boot], { type: 'text/javascript' })), options);
  }
};
