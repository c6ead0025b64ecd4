// DEVELOPMENT ONLY. A scripted stand-in for the `pocketlm` package so the demo's UI can be built and looked at
// without the wasm engine. Loaded only by `index.html?fake=1`; the service worker never caches this folder.
// It has the package's API shape (PocketLM, ModelCache, PocketLMError), makes no network request at all, and
// "generates" canned text word by word on timers. Nothing here is a language model.

const STORE_KEY = 'pocketlm-fake-cache'; // localStorage: [{ url, bytes, size, complete, storedAt, sha256 }]
const FAKE_BYTES = 98_362_432; // the size of the real default model, so the UI shows realistic numbers

export class PocketLMError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'PocketLMError';
    this.code = code;
  }
}

const abortError = () => Object.assign(new PocketLMError('aborted', 'The operation was aborted.'), { name: 'AbortError' });
const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (signal?.aborted) return reject(abortError());
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => {
    clearTimeout(t);
    reject(abortError());
  }, { once: true });
});

function readStore() {
  try {
    return JSON.parse(localStorage.getItem(STORE_KEY) ?? '[]');
  } catch {
    return [];
  }
}
function writeStore(entries) {
  localStorage.setItem(STORE_KEY, JSON.stringify(entries));
}
function upsert(entry) {
  writeStore([...readStore().filter((e) => e.url !== entry.url), entry]);
}

export const ModelCache = {
  async list() {
    return readStore();
  },
  async delete(url) {
    const before = readStore();
    writeStore(before.filter((e) => e.url !== url));
    return before.some((e) => e.url === url);
  },
  async clear() {
    writeStore([]);
  },
  async usage() {
    const bytes = readStore().reduce((n, e) => n + e.bytes, 0);
    return { bytes, usage: bytes + 350_000, quota: 10_737_418_240, persisted: false };
  },
  async persist() {
    return true;
  },
};

const REPLIES = {
  france: 'The capital of France is Paris.',
  summary: 'The writer bought a new phone last week and is very pleased with it: the battery lasts two days and the camera takes sharp photos even at night.',
  rewrite: 'Dear team,\n\nI would like to let you know that the new phone has exceeded my expectations. Its battery lasts two full days, and the camera produces clear images even in low light.\n\nKind regards',
  story: 'Once upon a time, in a valley between two quiet mountains, there lived a small dragon named Ember. ' +
    'Ember was not like the other dragons: instead of hoarding gold, she collected stories. Every evening she flew ' +
    'to the village below, perched on the old stone bridge, and listened to the travellers talk about faraway cities, ' +
    'strange markets and seas that glowed at night. One winter the travellers stopped coming, and the village grew ' +
    'silent. Ember decided that if the stories would not come to her, she would go and find them herself. She packed ' +
    'a satchel with a map, a lantern and a jar of honey, and set off towards the northern pass just as the first snow ' +
    'began to fall. The road was long and the wind was cold, but every step brought a new story to collect.',
};

function replyFor(messages) {
  const last = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const system = messages.find((m) => m.role === 'system')?.content ?? '';
  if (/sentiment/i.test(system)) {
    if (/\b(love|great|wonderful|happy|excellent|perfect)/i.test(last)) return 'Positive';
    if (/\b(hate|terrible|awful|broken|bad|worst)/i.test(last)) return 'Negative';
    return 'Neutral';
  }
  if (/summariz/i.test(system)) return REPLIES.summary;
  if (/rewrite/i.test(system)) return REPLIES.rewrite;
  if (/capital of france/i.test(last)) return REPLIES.france;
  return REPLIES.story;
}

// Word-ish pieces with their leading space, like a BPE tokenizer's pieces.
const pieces = (text) => text.match(/\s*\S+/g) ?? [];
const countTokens = (messages) => messages.reduce((n, m) => n + 4 + pieces(m.content).length, 0);

export class PocketLM {
  static async load(url, { onProgress, signal, contextSize = 8192 } = {}) {
    const name = decodeURIComponent(new URL(url, location.href).pathname.split('/').pop() || 'model.gguf');
    const prior = readStore().find((e) => e.url === url);
    const progress = (loaded, total, phase) => onProgress?.({ loaded, total, phase });
    let loaded = prior?.bytes ?? 0;
    if (prior?.complete) {
      for (let i = 0; i <= 10; i++) {
        await sleep(40, signal);
        progress(Math.round((FAKE_BYTES * i) / 10), FAKE_BYTES, 'cache');
      }
    } else {
      const chunk = 2_000_000; // a 2 MB piece every 60 ms: about 33 MB/s
      try {
        while (loaded < FAKE_BYTES) {
          await sleep(60, signal);
          loaded = Math.min(FAKE_BYTES, loaded + chunk);
          progress(loaded, FAKE_BYTES, 'download');
          if (loaded % (chunk * 8) === 0) upsert({ url, bytes: loaded, size: FAKE_BYTES, complete: false, storedAt: Date.now(), sha256: null });
        }
      } catch (err) {
        upsert({ url, bytes: loaded, size: FAKE_BYTES, complete: false, storedAt: Date.now(), sha256: null });
        throw err;
      }
      upsert({ url, bytes: FAKE_BYTES, size: FAKE_BYTES, complete: true, storedAt: Date.now(), sha256: null });
    }
    progress(FAKE_BYTES, FAKE_BYTES, 'init'); // as the package does: every byte in, the model being built
    await sleep(200, signal);
    return new PocketLM({
      architecture: 'llama', name: `${name.replace(/\.gguf$/i, '')} (FAKE engine)`, parameters: 134_515_008,
      quantization: 'Q4_1', fileBytes: FAKE_BYTES, contextSize, vocabSize: 49_152, backend: 'relaxed-simd',
      threads: 1, chatTemplate: true,
    });
  }

  constructor(info) {
    this.info = Object.freeze(info);
    this.lastStats = null;
    this.closed = false;
  }

  async *#generate(text, promptTokens, { maxTokens = 256, signal } = {}) {
    if (this.closed) throw new PocketLMError('closed', 'model was unloaded');
    if (promptTokens + 1 > this.info.contextSize) throw new PocketLMError('context-overflow', 'prompt does not fit');
    const t0 = performance.now();
    await sleep(150, signal); // "prefill"
    const t1 = performance.now();
    let n = 0;
    let finishReason = 'aborted';
    const all = pieces(text);
    try {
      for (const piece of all.slice(0, maxTokens)) {
        await sleep(45, signal);
        n++;
        yield piece;
      }
      finishReason = all.length > maxTokens ? 'length' : 'eos';
    } finally {
      const t2 = performance.now();
      this.lastStats = {
        promptTokens, generatedTokens: n,
        prefillTokensPerSecond: (promptTokens * 1000) / (t1 - t0),
        decodeTokensPerSecond: n ? (n * 1000) / (t2 - t1) : 0,
        finishReason,
      };
    }
  }

  chatStream(messages, opts) {
    return this.#generate(replyFor(messages), countTokens(messages), opts);
  }

  async chat(messages, opts) {
    let out = '';
    for await (const p of this.chatStream(messages, opts)) out += p;
    return out;
  }

  stream(prompt, opts) {
    return this.#generate(REPLIES.story, pieces(prompt).length, opts);
  }

  async complete(prompt, opts) {
    let out = '';
    for await (const p of this.stream(prompt, opts)) out += p;
    return out;
  }

  async tokenize(text) {
    return pieces(text).map((_, i) => i + 1);
  }

  async detokenize(ids) {
    return ids.map(() => ' tok').join('');
  }

  async unload() {
    this.closed = true;
  }
}
