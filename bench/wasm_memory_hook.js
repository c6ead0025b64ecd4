// Runs first in every worker the bench page starts (see worker_wrap.js): records each WebAssembly.Memory the
// worker creates or gets from an instance, so the driver can read the engine's linear-memory size with
// Playwright's worker.evaluate(). Only wraps functions; the engines' code paths and timing are unchanged.

const memories = new Set();
Object.defineProperty(globalThis, '__benchWasmMemories', { value: memories });

function note(instance) {
  try {
    for (const v of Object.values(instance?.exports ?? {})) if (v instanceof WebAssembly.Memory) memories.add(v);
  } catch { /* not an instance */ }
}

const W = WebAssembly;
const OrigMemory = W.Memory;
// Memories made by JS (imported by the module, e.g. shared memory for threads).
W.Memory = new Proxy(OrigMemory, {
  construct(target, args) {
    const m = Reflect.construct(target, args);
    memories.add(m);
    return m;
  },
});
const OrigInstance = W.Instance;
W.Instance = new Proxy(OrigInstance, {
  construct(target, args) {
    const i = Reflect.construct(target, args);
    note(i);
    return i;
  },
});
for (const name of ['instantiate', 'instantiateStreaming']) {
  const orig = W[name];
  if (typeof orig !== 'function') continue;
  W[name] = async function (...args) {
    const r = await orig.apply(this, args);
    note(r instanceof OrigInstance ? r : r?.instance);
    return r;
  };
}
