// The message protocol between the page (rpc.js) and the engine worker (worker.js). Types only.
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
 * @property {object} options engine options (maxTokens, temperature, topK, topP, minP, repeatPenalty,
 *   repeatLastN, seed, stop), already validated
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
 * Reply values: load -> ModelInfo (Engine.info()); download -> CacheEntry; generate -> {stats} or {text, stats};
 * tokenize -> Uint32Array (transferred); detokenize, applyChatTemplate -> string; unload -> null;
 * saveSession -> Uint8Array (transferred); restoreSession -> the saved metadata (Uint8Array);
 * sessions -> [{id, tokens, kvBytes, evicted, current}]; the other session verbs -> null.
 * An 'aborted' generate error carries details.stats.
 */

export const VERBS = Object.freeze(['load', 'download', 'generate', 'tokenize', 'detokenize', 'applyChatTemplate',
  'createSession', 'cloneSession', 'dropSession', 'saveSession', 'restoreSession', 'sessions', 'unload', 'cancel']);
