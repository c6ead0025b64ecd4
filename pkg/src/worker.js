// The engine's dedicated worker: owns the wasm instance and the model, and does the download, so the page's
// thread never waits on any of it. Speaks the protocol in protocol.js.

import { ensureWeights, loadBlob } from './fetcher.js';
import * as store from './weight_store.js';
import { startEngineModule } from './backend.js';
import { PocketLMError, abortError, throwIfAborted, toWire } from './errors.js';
import { CONTEXT_OVERFLOW } from './protocol.js';

/** WeightLoader.checkHeader() runs from this much on (and again per chunk until the whole header is in), to reject a
 * wrong file before a long download. */
const HEADER_CHECK_BYTES = 1 << 20;

/** Prompt tokens prefilled between two looks at the message queue (whole batches of the engine's 32): ~1-3 s of
 * work on a slow machine at one thread, a few percent above one whole-prompt call. */
const PREFILL_CHUNK = 128;

/** @type {any} the wasm Engine, once loaded */
let engine = null;
/** Numbers tool calls' ids (call_SEQ_I) across this worker's generations. */
let toolCallSeq = 0;
/** The page's session ids (per connection, chosen by the page) -> the engine's. Absent: the default session 0. */
const sessionIds = new Map();
/** Set when the engine failed in a way that may have left its state broken (a wasm trap). */
let crashed = null;

/** @typedef {{controller: AbortController, started: boolean, settled: boolean}} Task */
/** @type {Map<number, Task>} */
const tasks = new Map();
let queue = Promise.resolve();

self.onmessage = (ev) => {
  const msg = ev.data;
  if (!msg || typeof msg.id !== 'number' || typeof msg.verb !== 'string') return;
  if (msg.verb === 'cancel') {
    cancel(msg.args?.target);
    return;
  }
  const task = { controller: new AbortController(), started: false, settled: false };
  tasks.set(msg.id, task);
  queue = queue.then(() => run(msg, task));
};

function cancel(target) {
  const task = tasks.get(target);
  if (!task) return;
  task.controller.abort();
  if (!task.started) reply(target, task, { ok: false, error: toWire(abortError(undefined, 'the request')) });
}

function reply(id, task, body, transfer = []) {
  if (task.settled) return;
  task.settled = true;
  tasks.delete(id);
  self.postMessage({ id, ...body }, transfer);
}

async function run(msg, task) {
  if (task.settled) return; // cancelled while queued
  task.started = true;
  const handler = HANDLERS[msg.verb];
  try {
    if (!handler) throw new PocketLMError('invalid-argument', `unknown request '${msg.verb}'`);
    const value = await handler(msg.args ?? {}, task.controller.signal, (event) => {
      if (!task.settled) self.postMessage({ id: msg.id, ...event });
    });
    reply(msg.id, task, { ok: true, value }, ArrayBuffer.isView(value) ? [value.buffer] : []);
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      crashed = e;
      try { engine?.free(); } catch { /* already broken */ }
      engine = null;
    }
    reply(msg.id, task, { ok: false, error: toWire(e) });
  }
}

function requireEngine() {
  if (engine) return engine;
  if (crashed) throw new PocketLMError('internal', `the engine crashed earlier (${crashed.message}); load the model again`);
  throw new PocketLMError('invalid-argument', 'no model is loaded in this worker');
}

const HANDLERS = {
  /** @param {import('./protocol.js').LoadArgs} args */
  async load(args, signal, emit) {
    if (engine) throw new PocketLMError('invalid-argument', 'this worker already holds a model');
    const t0 = performance.now();
    const { wasm } = await startEngineModule({ threads: args.threads });
    const tModule = performance.now();
    throwIfAborted(signal, `loading ${args.file ? 'the file' : args.url}`);
    /** @type {any} */
    let loader = null;
    const open = (total) => {
      loader?.free(); // a restarted load (the file changed on the server) begins again with an empty loader
      loader = null;
      loader = new wasm.WeightLoader(total);
      let pushed = 0;
      let checked = false;
      return {
        push(bytes) {
          loader.push(bytes);
          pushed += bytes.length;
          if (!checked && (pushed >= HEADER_CHECK_BYTES || pushed === total)) {
            // false: the metadata runs past what has arrived; look again on the next chunk.
            checked = loader.checkHeader();
          }
        },
      };
    };
    let size;
    let cacheKey = null;
    let tWeights = 0;
    const what = args.file ? 'the file' : args.url;
    try {
      const weightOpts = {
        open,
        signal,
        sha256: args.sha256,
        chunkSize: args.chunkSize,
        storageEstimate: args.storageEstimate,
        onProgress: (progress) => emit({ progress }),
      };
      if (args.file) {
        // A local File/Blob (cloned into this worker without copying its bytes), read slice by slice.
        ({ size, cacheKey } = await loadBlob(args.file, { ...weightOpts, cacheKey: args.cacheKey }));
      } else {
        ({ size } = await ensureWeights(args.url, weightOpts));
      }
      throwIfAborted(signal, `loading ${what}`);
      tWeights = performance.now();
      emit({ progress: { loaded: size, total: size, phase: 'init' } });
      const l = loader;
      loader = null; // finish() consumes the loader, whether it succeeds or throws
      engine = l.finish(args.contextSize ?? 0, args.kvType);
      if (args.sessionMemory !== undefined) engine.setKvBudget(args.sessionMemory);
    } catch (e) {
      try { loader?.free(); } catch { /* consumed */ }
      const code = /** @type {any} */ (e)?.code;
      // A file the engine cannot use would only be rejected again: do not keep it.
      const key = args.file ? cacheKey ?? args.cacheKey : args.url;
      if (key && (code === 'format' || code === 'unsupported')) await store.deleteEntry(key).catch(() => {});
      throw e;
    }
    const tInit = performance.now();
    // Where the load went, in the worker: starting the wasm module (fetch + compile + instantiate), the weights
    // (from IndexedDB or the network, copied into wasm memory), building the engine (model views, tokenizer,
    // KV cache). The wasm memory figure is what the engine holds (weights + KV cache + scratch).
    return { ...engine.info(), memoryBytes: engine.memoryBytes(), ...(cacheKey ? { cacheKey } : {}),
      loadTimings: { moduleMs: tModule - t0, weightsMs: tWeights - tModule, initMs: tInit - tWeights } };
  },

  /** Cache only, no engine (ModelCache.download). */
  async download(args, signal, emit) {
    const m = await ensureWeights(args.url, {
      signal,
      sha256: args.sha256,
      chunkSize: args.chunkSize,
      storageEstimate: args.storageEstimate,
      onProgress: (progress) => emit({ progress }),
    });
    return { url: m.url, bytes: m.bytes, size: m.size, complete: true, storedAt: m.storedAt,
      sha256: m.verified ? m.sha256 : null };
  },

  /** @param {import('./protocol.js').GenerateArgs} args */
  async generate(args, signal, emit) {
    const e = requireEngine();
    let prompt;
    /** Messages left out of a chat that did not fit the context ('drop-oldest'); undefined: none were dropped. */
    let dropped;
    let options = args.options ?? {};
    if (args.tools) {
      // The engine renders the tools into the prompt and returns the grammar the reply must follow.
      const r = e.applyChatTemplateWithTools(JSON.stringify(args.messages), JSON.stringify(args.tools),
        JSON.stringify(args.toolChoice ?? 'auto'));
      prompt = r.prompt;
      if (r.responseFormat !== undefined) {
        if (options.responseFormat !== undefined) {
          throw new PocketLMError('invalid-argument', 'responseFormat cannot be combined with tools');
        }
        options = { ...options, responseFormat: r.responseFormat };
      }
    } else if (args.messages) {
      ({ prompt, dropped } = fitConversation(e, args.messages, args.contextOverflow ?? 'drop-oldest', options));
    } else {
      prompt = args.prompt;
    }
    if (typeof prompt !== 'string') throw new PocketLMError('invalid-argument', 'prompt must be a string');
    throwIfAborted(signal, 'generation');
    // Each session keeps its own KV cache; calls without one run in the default session.
    e.selectSession(args.session === undefined ? 0 : engineSession(args.session));
    // No reset: the engine keeps the tokens whose keys/values are in its cache (whatever the previous call left,
    // finished, aborted or failed) and `begin` prefills only what follows the longest cached prefix of this prompt,
    // so a follow-up chat turn (the conversation re-sent plus one message) costs only the new tokens.
    e.begin(prompt, options);
    // The prefill, PREFILL_CHUNK tokens at a time: between chunks a 'cancel' gets in, and progress goes out.
    const [, total, promptTokens] = e.prefillProgress();
    for (let done = false; !done;) {
      if (signal.aborted) {
        const [ran] = e.prefillProgress();
        const err = abortError(signal.reason, 'generation');
        err.details = { stats: { promptTokens, prefilledTokens: ran, generatedTokens: 0, prefillTokensPerSecond: 0,
          decodeTokensPerSecond: 0, finishReason: 'aborted' } };
        throw err;
      }
      done = e.prefill(PREFILL_CHUNK);
      if (args.prefillProgress) emit({ prefill: { done: done ? total : e.prefillProgress()[0], total } });
      if (!done) await nextTask();
    }
    const keepText = args.collect || !!args.tools;
    let text = '';
    for (;;) {
      if (signal.aborted) {
        const err = abortError(signal.reason, 'generation');
        err.details = { stats: { ...e.stats(), finishReason: 'aborted' } };
        throw err;
      }
      const piece = e.next();
      if (piece === undefined) break;
      if (piece !== '') {
        if (keepText) text += piece;
        if (!args.collect) emit({ piece });
      }
      // Let a 'cancel' message in: the engine computes synchronously, so without this the message would wait
      // for the whole generation.
      await nextTask();
    }
    // The stats as wasm.rs shapes them for the page (Engine.stats()), passed through.
    const stats = e.stats();
    if (dropped) stats.droppedMessages = dropped;
    // Under tools, the reply split into text and calls ({content, toolCalls}).
    const reply = args.tools ? JSON.parse(e.parseToolReply(text, ++toolCallSeq)) : undefined;
    return args.collect ? { text, stats, reply } : { stats, reply };
  },

  async tokenize(args) {
    return Uint32Array.from(requireEngine().tokenize(String(args.text), !!args.addSpecial));
  },

  async detokenize(args) {
    return requireEngine().detokenize(Uint32Array.from(args.ids));
  },

  async applyChatTemplate(args) {
    return requireEngine().applyChatTemplate(args.messages);
  },

  /** Sessions: the page names them (`session`, a number unique per connection); see session.js. */
  async createSession(args) {
    sessionIds.set(args.session, requireEngine().createSession());
    return null;
  },

  async cloneSession(args) {
    sessionIds.set(args.session, requireEngine().cloneSession(engineSession(args.source)));
    return null;
  },

  async dropSession(args) {
    const id = sessionIds.get(args.session);
    if (id !== undefined && engine) engine.dropSession(id);
    sessionIds.delete(args.session);
    return null;
  },

  async saveSession(args) {
    return requireEngine().saveSession(engineSession(args.session), args.meta);
  },

  /** A saved session under the page's new id; returns its metadata bytes (transferred). */
  async restoreSession(args) {
    if (!(args.blob instanceof Uint8Array)) throw new PocketLMError('invalid-argument', 'a saved session is a Uint8Array');
    const [id, meta] = requireEngine().restoreSession(args.blob);
    sessionIds.set(args.session, id);
    return meta;
  },

  async sessions() {
    return requireEngine().sessions();
  },

  async unload() {
    engine?.free();
    engine = null;
    return null;
  },
};

function engineSession(pageId) {
  const id = sessionIds.get(pageId);
  if (id === undefined) throw new PocketLMError('invalid-argument', 'this session was destroyed');
  return id;
}

/** Room kept for the reply when a chat is fitted to the context: maxTokens (default 256), at most half the context. */
const DEFAULT_REPLY_TOKENS = 256;

/**
 * The prompt for `messages` under `policy`: 'error' renders them all (a prompt longer than the context is then
 * refused by the engine with 'context-overflow'); 'drop-oldest' drops the oldest whole turns (a user message and
 * what followed it up to the next user message), keeping the system messages and the newest turn, until the
 * prompt plus the reply's reserve fits the context.
 * @returns {{prompt: string, dropped: number}}
 */
function fitConversation(e, messages, policy, options) {
  if (!CONTEXT_OVERFLOW.includes(policy)) {
    throw new PocketLMError('invalid-argument', `contextOverflow must be one of ${CONTEXT_OVERFLOW.join(', ')}, got ${JSON.stringify(policy)}`);
  }
  let msgs = messages;
  let prompt = e.applyChatTemplate(msgs);
  if (policy === 'error') return { prompt, dropped: 0 };
  const context = e.info().contextSize;
  const reserve = Math.min(options.maxTokens ?? DEFAULT_REPLY_TOKENS, Math.floor(context / 2));
  let dropped = 0;
  while (e.tokenize(prompt, true).length + reserve > context) {
    const first = msgs.findIndex((m) => m.role !== 'system');
    const next = msgs.findIndex((m, i) => i > first && m.role === 'user');
    if (first < 0 || next < 0) break; // only the newest turn is left: the engine says whether it fits
    msgs = [...msgs.slice(0, first), ...msgs.slice(next)];
    dropped += next - first;
    prompt = e.applyChatTemplate(msgs);
  }
  return { prompt, dropped };
}

// A macrotask boundary without setTimeout's 4 ms clamp: a message to ourselves queues behind messages already
// posted to this worker (both are posted-message tasks), so a pending 'cancel' is handled first.
const channel = new MessageChannel();
/** @type {((value?: unknown) => void)[]} */
const wakeups = [];
channel.port1.onmessage = () => wakeups.shift()?.();
function nextTask() {
  return new Promise((resolve) => {
    wakeups.push(resolve);
    channel.port2.postMessage(null);
  });
}
