// The message protocol between the page (rpc.js) and the engine worker (worker.js): its types, verbs and option lists.
//
// page -> worker   {id, verb, args}            one request; id is unique per connection
// worker -> page   {id, ok: true, value}       the request's result (exactly one reply per request)
//                  {id, ok: false, error}      error: {code, message, status?, details?} (errors.js toWire)
//                  {id, progress}              load/download progress, any number, before the reply
//                  {id, piece}                 generated text, any number, before the reply
//                  {id, prefill: {done, total}} prompt tokens prefilled (only with args.prefillProgress)
//
// Requests run one at a time in arrival order (the engine is single-threaded state), except 'cancel', which
// acts at once: a queued request is answered with an 'aborted' error immediately, a running one stops at its
// next check (between tokens; between network reads). 'cancel' gets no reply of its own.

/**
 * @typedef {object} LoadArgs
 * @property {string} [url] absolute; or:
 * @property {Blob} [file] a local model file, read in slices in the worker
 * @property {string | null} [cacheKey] with file: also store it in the cache under this key
 * @property {number} [contextSize] 0 or absent: 'auto' (the trained context within a KV memory budget)
 * @property {'f16' | 'q8_0' | 'f32'} [kvType] absent: 'f16'
 * @property {string} [sha256]
 * @property {number | 'auto'} [threads] 'auto': see backend.js resolveThreads
 * @property {number} [chunkSize]
 * @property {{quota: number, usage: number}} [storageEstimate] test hook replacing navigator.storage.estimate()
 *
 * @typedef {object} GenerateArgs exactly one of prompt / messages
 * @property {string} [prompt] raw text
 * @property {{role: string, content: string}[]} [messages] rendered with the model's chat template
 * @property {object} options engine options (GENERATE_OPTIONS below), already validated
 * @property {boolean} [collect] return {text, stats} instead of sending pieces
 * @property {boolean} [prefillProgress] send {prefill} events
 * @property {'error' | 'drop-oldest'} [contextOverflow] with messages: default 'drop-oldest'
 * @property {number} [session] run in this session (session.js); absent: the default session
 *
 * @typedef {{verb: 'load', args: LoadArgs}
 *   | {verb: 'download', args: Omit<LoadArgs, 'contextSize' | 'kvType' | 'threads'>}
 *   | {verb: 'generate', args: GenerateArgs}
 *   | {verb: 'tokenize', args: {text: string, addSpecial: boolean}}
 *   | {verb: 'detokenize', args: {ids: Uint32Array}}
 *   | {verb: 'applyChatTemplate', args: {messages: {role: string, content: string}[]}}
 *   | {verb: 'createSession', args: {session: number}}
 *   | {verb: 'cloneSession', args: {session: number, source: number}}
 *   | {verb: 'dropSession', args: {session: number}}
 *   | {verb: 'saveSession', args: {session: number, meta: Uint8Array}}
 *   | {verb: 'restoreSession', args: {session: number, blob: Uint8Array}}
 *   | {verb: 'sessions', args: {}}
 *   | {verb: 'unload', args: {}}
 *   | {verb: 'cancel', args: {target: number}}} Request
 *
 * Reply values: load -> ModelInfo (Engine.info()); download -> CacheEntry; generate -> {stats} or {text, stats}
 * (stats: Engine.stats() as wasm.rs shapes it, plus droppedMessages when a chat was fitted to the context);
 * tokenize -> Uint32Array (transferred); detokenize, applyChatTemplate -> string; unload -> null;
 * saveSession -> Uint8Array (transferred); restoreSession -> the saved metadata (Uint8Array);
 * sessions -> [{id, tokens, kvBytes, evicted, current}]; the other session verbs -> null.
 * An 'aborted' generate error carries details.stats.
 */

// The option lists, declared once: pocketlm.js checks a call's options against them (so a mistake fails at the
// call, with its name), the worker relies on them, and src/wasm.rs's BeginOptions takes exactly the generate
// options (it rejects an unknown field; tests/e2e/wire_schema.test.mjs compares the two lists).

/** The generate options that are numbers, each 'integer' or 'number' (all non-negative). */
export const NUMBER_OPTIONS = Object.freeze({
  maxTokens: 'integer', temperature: 'number', topK: 'integer', topP: 'number', minP: 'number',
  repeatPenalty: 'number', repeatLastN: 'integer', seed: 'integer',
});

/** Every field of GenerateArgs.options: the numbers, then stop (string[]), profile (boolean) and responseFormat
 * (JSON text). */
export const GENERATE_OPTIONS = Object.freeze([...Object.keys(NUMBER_OPTIONS), 'stop', 'profile', 'responseFormat']);

/** How the KV cache can be stored (LoadArgs.kvType; the engine's default: 'f16'). */
export const KV_TYPES = Object.freeze(['f16', 'q8_0', 'f32']);

/** What a chat does when its conversation does not fit the context (GenerateArgs.contextOverflow; the default:
 * 'drop-oldest'). */
export const CONTEXT_OVERFLOW = Object.freeze(['drop-oldest', 'error']);

export const VERBS = Object.freeze(['load', 'download', 'generate', 'tokenize', 'detokenize', 'applyChatTemplate',
  'createSession', 'cloneSession', 'dropSession', 'saveSession', 'restoreSession', 'sessions', 'unload', 'cancel']);
