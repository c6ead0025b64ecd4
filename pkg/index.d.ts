// Types for the npm package `pocketlm` (hand-written; the sources are plain JS with JSDoc).

export type LoadPhase = 'download' | 'cache' | 'file' | 'init';

export interface LoadProgress {
  /** Bytes passed to the engine so far; never decreases. */
  loaded: number;
  /** Size of the model file in bytes. */
  total: number;
  /** 'download': from the network; 'cache': from IndexedDB; 'file': from a local File/Blob; 'init': building the
   * model (loaded === total). */
  phase: LoadPhase;
}

export interface LoadOptions {
  onProgress?: (progress: LoadProgress) => void;
  /** Aborting rejects with an AbortError and keeps what was downloaded, so the next load resumes. */
  signal?: AbortSignal;
  /**
   * Positions (prompt + reply) a session can hold. 'auto' (the default): the model's trained context, lowered in
   * steps of 256 until a full KV cache fits max(256 MiB, a quarter of the model file); a number: that many, up to
   * the trained context. The KV cache grows with use; this bounds it. `info.contextSize` says what was chosen.
   */
  contextSize?: number | 'auto';
  /** How the KV cache stores keys and values: 'f16' (default; 2 bytes a value, perplexity within 0.1 % of f32),
   * 'q8_0' (1.06 bytes a value, within 1 %) or 'f32' (4 bytes). Saved sessions restore only with the same type. */
  kvType?: 'f16' | 'q8_0' | 'f32';
  /** Expected SHA-256 of the whole file (64 hex digits); a mismatch deletes the cached copy and throws 'integrity'. */
  sha256?: string;
  /**
   * Threads to run on (default 'auto': all cores up to 4, half of a larger machine, at most 8). More than 1 uses the
   * multi-threaded build, which needs a cross-origin isolated page (COOP: same-origin + COEP: require-corp) and
   * relaxed SIMD; elsewhere, or when its thread pool cannot start, the single-thread build runs with no error.
   * `info.threads` says what runs. Any count gives the same output.
   */
  threads?: number | 'auto';
  /** Size of the cached chunks for a new download (default 8 MiB; 64 KiB to 256 MiB). */
  chunkSize?: number;
  /**
   * Loading a File/Blob only: also store it in the ModelCache, under this key or (true) one made from the file's
   * name, size and modification time; `info.cacheKey` gives it, and `PocketLM.load(info.cacheKey)` loads it again
   * from the cache. Default false.
   */
  cache?: boolean | string;
  /** Bytes all sessions' KV caches may take together before idle sessions are evicted, least recently used first
   * (default 512 MiB). An evicted session re-prefills its conversation on its next turn. */
  sessionMemory?: number;
}

export interface ModelInfo {
  architecture: string;
  name: string;
  parameters: number;
  quantization: string;
  fileBytes: number;
  contextSize: number;
  /** The context the model was trained with (the largest contextSize allowed). */
  trainContext: number;
  kvType: 'f16' | 'q8_0' | 'f32';
  /** Bytes of a full KV cache at contextSize (what the cache grows to at most). */
  kvBytes: number;
  vocabSize: number;
  backend: 'simd128' | 'relaxed-simd' | 'scalar';
  /** Threads actually running the model (1 unless the threads build started; see LoadOptions.threads). */
  threads: number;
  chatTemplate: boolean;
  /** Bytes the engine holds in wasm memory: weights, KV cache, scratch. */
  memoryBytes: number;
  /** Milliseconds of the load in the worker: wasm module start, weights into wasm memory, engine build. */
  loadTimings: { moduleMs: number; weightsMs: number; initMs: number };
  /** A File/Blob loaded with `cache`: the ModelCache key it was stored under. */
  cacheKey?: string;
  [key: string]: unknown;
}

export interface GenerateOptions {
  maxTokens?: number;
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
  /** Generation ends before any of these strings; they are not part of the output. */
  stop?: string[];
  /** Time each stage of the prefill and decode steps: `lastStats.prefillProfile` and `lastStats.profile`. */
  profile?: boolean;
  /** Constrain the output: a JSON Schema, any JSON object, a regex (whole output) or a Lark grammar. */
  responseFormat?: ResponseFormat;
  /** Aborting stops generation within one token, or the prompt's prefill within one chunk (128 tokens), and
   * rejects with an AbortError; prompt chunks already run stay in the KV cache for the next call. */
  signal?: AbortSignal;
  /** Called after each prefilled chunk of the prompt; `total` excludes tokens reused from the KV cache, and the
   * last call has `done === total`. */
  onPrefillProgress?: (progress: { done: number; total: number }) => void;
  /**
   * Chat only: when the conversation plus room for the reply (maxTokens, default 256, at most half the context)
   * does not fit the context. 'drop-oldest' (default): drop the oldest whole turns (a user message and what followed
   * it), keeping system messages and the newest turn; `lastStats.droppedMessages` counts them. 'error': reject with
   * 'context-overflow' when the prompt itself does not fit. Raw completion always rejects with 'context-overflow'.
   */
  contextOverflow?: 'error' | 'drop-oldest';
}

export type ResponseFormat =
  | { type: 'json_schema'; schema: object }
  | { type: 'json_schema'; json_schema: { name?: string; schema: object; strict?: boolean } }
  | { type: 'json_object' }
  | { type: 'regex'; pattern: string | RegExp }
  | { type: 'grammar'; lark: string }
  | { type: 'text' };

export interface Tool {
  type: 'function';
  function: { name: string; description?: string; parameters?: object };
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; /** JSON text, valid for the tool's parameters. */ arguments: string };
}

export interface AssistantMessage {
  role: 'assistant';
  content: string | null;
  toolCalls: ToolCall[];
}

export type ToolChatMessage =
  | ChatMessage
  | { role: 'assistant'; content: string | null; toolCalls: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

export interface ChatToolOptions extends GenerateOptions {
  tools: Tool[];
  toolChoice?: ToolChoice;
}

export interface ConstraintStats {
  /** Building the vocabulary's trie and tables (first constrained call on a model; 0 after). */
  vocabMs: number;
  compileMs: number;
  masks: number;
  maskMeanMs: number;
  maskP99Ms: number;
  /** Output tokens the format forced (fed without sampling). */
  forcedTokens: number;
  /** The output is complete in the format (false when maxTokens or the context ran out inside it). */
  complete: boolean;
}

export interface GenerationStats {
  promptTokens: number;
  /** Prompt tokens run through the model; the others (promptTokens - prefilledTokens) came from the KV cache, which
   * keeps the previous call's tokens: a follow-up chat turn prefills only what is new. */
  prefilledTokens: number;
  generatedTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Wall time of the prefill (prompt tokens through the model) and of the decode (generated tokens), ms; absent
   * when the call was aborted during the prefill. */
  prefillMs?: number;
  decodeMs?: number;
  /** 'length': maxTokens were generated, or (with contextFull) the context window filled up. */
  finishReason: 'eos' | 'stop' | 'length' | 'aborted' | null;
  /** true when generation stopped because the context window was full (finishReason 'length'). */
  contextFull?: boolean;
  /** Chat with contextOverflow 'drop-oldest': messages left out so that the prompt fit. */
  droppedMessages?: number;
  /**
   * With `profile: true`: milliseconds per generated token in each stage of the decode step, in order (embed, norm,
   * qkv, rope, attention, attnOut, gateUp, activation, down, residual, head, constraint, sample, text).
   */
  profile?: { stage: string; ms: number }[];
  /** With `profile: true`: milliseconds per prefilled prompt token in each stage of the prefill (same stages). */
  prefillProfile?: { stage: string; ms: number }[];
  /** With `responseFormat` or `tools`. */
  constraint?: ConstraintStats;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

/** Text pieces of one generation. Leaving a for-await loop early (break/return/throw) stops the generation. */
export declare class TextStream implements AsyncIterableIterator<string> {
  private constructor();
  next(): Promise<IteratorResult<string, undefined>>;
  return(): Promise<IteratorResult<string, undefined>>;
  [Symbol.asyncIterator](): TextStream;
}

export declare class PocketLM {
  private constructor();
  /** Loads a GGUF model from the cache (no network) or downloads it into the cache, in a dedicated worker. */
  static load(url: string | URL, options?: LoadOptions): Promise<PocketLM>;
  /** A local GGUF file (from `<input type=file>` or a drop), read in slices inside the worker; see LoadOptions.cache. */
  static load(file: Blob, options?: LoadOptions): Promise<PocketLM>;
  /** With `fallback`: on this device when the preflight (memory budget, storage) allows and the load succeeds, else a
   * RemoteLM over the OpenAI-compatible server (`info.backend === 'remote'`), with the same methods. */
  static load(url: string | URL, options: LoadOptions & FallbackLoadOptions): Promise<PocketLM | RemoteLM>;
  readonly info: Readonly<ModelInfo>;
  /** Statistics of the last finished or aborted generation; null before the first. */
  readonly lastStats: GenerationStats | null;
  /** Continuation of raw text. Calls on one instance run one after another, in call order. */
  complete(prompt: string, options?: GenerateOptions): Promise<string>;
  stream(prompt: string, options?: GenerateOptions): TextStream;
  readable(prompt: string, options?: GenerateOptions): ReadableStream<string>;
  /** Reply to a conversation, using the model's own chat template (a method; also `lm.chat.completions.create`). */
  readonly chat: ChatMethod;
  /** A fetch serving OpenAI's API from this model (createFetch(lm)). */
  readonly fetch: typeof fetch;
  chatStream(messages: ChatMessage[], options?: GenerateOptions): TextStream;
  chatStream(messages: ToolChatMessage[], options: ChatToolOptions): TextStream;
  /** The assistant message of the last chat with tools, or null. */
  readonly lastReply: AssistantMessage | null;
  /**
   * The reply parsed as JSON valid for `schema` (null: any JSON object). Rejects with code 'length' when maxTokens
   * ran out inside the JSON.
   */
  json<T = any>(input: string | ChatMessage[], schema?: object | null, options?: GenerateOptions): Promise<T>;
  chatReadable(messages: ChatMessage[], options?: GenerateOptions): ReadableStream<string>;
  /** The prompt text chat(messages) feeds the model. */
  applyChatTemplate(messages: ChatMessage[]): Promise<string>;
  /** addSpecial: add the BOS/EOS tokens the model's metadata asks for (default false). */
  tokenize(text: string, options?: { addSpecial?: boolean }): Promise<Uint32Array>;
  detokenize(ids: ArrayLike<number>): Promise<string>;
  /** Terminates the worker and frees the model; later calls reject with code 'unloaded'. */
  unload(): Promise<void>;
  /** A conversation with its own KV cache: each turn prefills only what the cache does not hold. */
  session(options?: { system?: string }): Session;
  /** Continues a saved session (this model file, same kvType) without prefilling its history again. Rejects with
   * 'format' (damaged bytes) or 'session-mismatch' (another model), changing nothing. */
  restoreSession(bytes: Uint8Array): Promise<Session>;
  /** The session `session.persist(key)` stored; rejects with 'not-found' when there is none. */
  loadSession(key: string): Promise<Session>;
  /** The engine's sessions (engine ids; 0 is the default session that lm.chat/complete use). */
  sessionInfo(): Promise<{ id: number; tokens: number; kvBytes: number; evicted: boolean; current: boolean }[]>;
}

/** One conversation in the engine (lm.session()); calls run in order with the model's other calls. */
export declare class Session {
  private constructor();
  /** Same as lm.restoreSession(bytes). */
  static restore(lm: PocketLM, bytes: Uint8Array): Promise<Session>;
  /** The conversation so far (a copy): the system message, then the turns. */
  readonly messages: ChatMessage[];
  /** This session's last turn's statistics (prefilledTokens: what its cache did not hold), or null. */
  readonly lastStats: GenerationStats | null;
  /** Adds `input` (the user's text, or messages) and the reply to the conversation; resolves to the reply. */
  chat(input: string | ChatMessage[], options?: GenerateOptions & { contextOverflow?: 'error' | 'drop-oldest' }): Promise<string>;
  /** `chat` as text pieces; the reply joins the conversation when the stream ends unaborted. */
  chatStream(input: string | ChatMessage[], options?: GenerateOptions): AsyncIterableIterator<string>;
  /** A copy (conversation and KV cache); the two then go separate ways. */
  clone(): Session;
  /** The session as bytes: header (format version, model hash, KV type and shape), tokens, KV rows, CRC-32. */
  save(): Promise<Uint8Array>;
  /** save() into IndexedDB under `key` (replacing it); 'quota' when storage cannot take it. */
  persist(key: string): Promise<void>;
  /** Frees the session's KV cache; later calls reject with 'invalid-argument'. */
  destroy(): Promise<void>;
}

export interface CacheEntry {
  /** Absolute URL, the cache key. */
  url: string;
  /** Bytes stored so far. */
  bytes: number;
  /** Size of the whole file. */
  size: number;
  /** Usable without the network. */
  complete: boolean;
  /** Milliseconds since the epoch: when the download started, or completed once complete. */
  storedAt: number;
  /** The verified SHA-256, when one was given. */
  sha256: string | null;
}

export interface CacheUsage {
  /** Bytes stored by pocketlm. */
  bytes: number;
  /** navigator.storage.estimate() for the whole origin, or null where the browser does not tell. */
  quota: number | null;
  usage: number | null;
  /** Whether the browser promised not to evict this origin's storage. */
  persisted: boolean;
}

export declare class ModelCache {
  /** Sessions stored with session.persist(key). */
  static sessions(): Promise<{ key: string; size: number; savedAt: number }[]>;
  /** Deletes a stored session; whether it was there. */
  static deleteSession(key: string): Promise<boolean>;
  static list(): Promise<CacheEntry[]>;
  /** Resolves true if there was an entry (complete or partial) for the URL. */
  static delete(url: string | URL): Promise<boolean>;
  static clear(): Promise<void>;
  static usage(): Promise<CacheUsage>;
  /** Asks the browser not to evict stored models; resolves whether it agreed. */
  static persist(): Promise<boolean>;
  /** Downloads (or resumes) a model into the cache without loading it; no request if it is already complete. */
  static download(
    url: string | URL,
    options?: Pick<LoadOptions, 'onProgress' | 'signal' | 'sha256' | 'chunkSize'>,
  ): Promise<CacheEntry>;
}

export type PocketLMErrorCode =
  | 'network' | 'http' | 'quota' | 'storage' | 'integrity' | 'format' | 'unsupported' | 'context-overflow'
  | 'memory' | 'tokenizer' | 'template' | 'invalid-argument' | 'aborted' | 'worker' | 'unloaded' | 'internal'
  | 'length' | 'session-mismatch' | 'not-found';

/** Every error the package reports. Aborts have name 'AbortError' and code 'aborted'. */
export declare class PocketLMError extends Error {
  constructor(code: PocketLMErrorCode | (string & {}), message: string,
    extra?: { status?: number; details?: object; cause?: unknown });
  readonly name: 'PocketLMError' | 'AbortError';
  readonly code: PocketLMErrorCode | (string & {});
  /** HTTP status, for code 'http'. */
  readonly status?: number;
  /** 'quota': {needed, available, quota, usage}; 'integrity': {expected, actual}; aborted generation: {stats}. */
  readonly details?: Record<string, unknown>;
}

// --- OpenAI-compatible API (openai.js)

/** `lm.chat`: callable as before, and OpenAI's `chat.completions.create`. */
export interface ChatMethod {
  (messages: ChatMessage[], options?: GenerateOptions): Promise<string>;
  /** With tools: the assistant's message, text and/or calls whose arguments are valid for the tool's parameters. */
  (messages: ToolChatMessage[], options: ChatToolOptions): Promise<AssistantMessage>;
  readonly completions: ChatCompletions;
}

export interface ChatCompletions {
  create(params: ChatCompletionCreateParams & { stream?: false | null }, requestOptions?: { signal?: AbortSignal }):
    Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParams & { stream: true }, requestOptions?: { signal?: AbortSignal }):
    Promise<AsyncIterable<ChatCompletionChunk> & { controller: AbortController }>;
}

export interface OpenAIMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: string | { type: 'text'; text: string }[] | null;
  tool_calls?: OpenAIToolCall[];
  tool_call_id?: string;
}

export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatCompletionCreateParams {
  messages: OpenAIMessage[];
  /** Ignored (this is the one model); echoed as the model file's or metadata's name. */
  model?: string;
  stream?: boolean | null;
  /** With `stream: true`: a last chunk with `choices: []` and the usage (as OpenAI does). */
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  response_format?: { type: 'text' } | { type: 'json_object' }
    | { type: 'json_schema'; json_schema: { name: string; schema: object; strict?: boolean } };
  tools?: { type: 'function'; function: { name: string; description?: string; parameters?: object } }[];
  tool_choice?: 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };
  /** Only the defaults (n 1, penalties 0, logprobs false) are accepted. */
  n?: number; frequency_penalty?: number; presence_penalty?: number; logprobs?: boolean;
  signal?: AbortSignal;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** cached_tokens: prompt tokens the KV cache already held (not prefilled again). */
  prompt_tokens_details?: { cached_tokens: number };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: null;
  choices: {
    index: 0;
    message: { role: 'assistant'; content: string | null; refusal: null; tool_calls?: OpenAIToolCall[] };
    logprobs: null;
    finish_reason: 'stop' | 'length' | 'tool_calls';
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: 0;
    delta: { role?: 'assistant'; content?: string; tool_calls?: (OpenAIToolCall & { index: number })[] };
    logprobs: null;
    finish_reason: 'stop' | 'length' | 'tool_calls' | null;
  }[];
  usage?: CompletionUsage | null;
}

/** A fetch answering POST …/chat/completions (JSON or server-sent events) and GET …/models from `lm`, for the
 * `openai` client's `fetch` option. */
export declare function createFetch(lm: PocketLM | RemoteLM): typeof fetch;
/** `{create}` over any model (what `lm.chat.completions` is). */
export declare function chatCompletions(lm: PocketLM | RemoteLM): ChatCompletions;

// --- hybrid fallback (remote.js)

export interface FallbackLoadOptions {
  /** The OpenAI-compatible server to use when the device cannot run the model. */
  fallback: { baseURL: string; apiKey?: string; model?: string };
  /** Bytes the model may take in memory (default: a quarter of navigator.deviceMemory, at most 4 GiB). */
  memoryBudget?: number;
  /** With this, a device that passed the preflight runs a short speed probe (16 greedy tokens) after loading, and a
   * decode rate below it unloads the model and uses the server. */
  minTokensPerSecond?: number;
}

export interface Preflight {
  device: boolean;
  reason: string | null;
  modelBytes: number | null;
  memoryBudget: number;
  storageAvailable: number | null;
  cached: boolean;
  /** With minTokensPerSecond: the device's decode rate in the speed probe. */
  probeTokensPerSecond?: number;
}

export declare function preflight(url: string, options?: { memoryBudget?: number; signal?: AbortSignal }): Promise<Preflight>;

/** A model on an OpenAI-compatible server with PocketLM's methods (tokenize, detokenize and applyChatTemplate reject
 * with code 'unsupported'). */
export declare class RemoteLM {
  private constructor();
  static connect(fallback: FallbackLoadOptions['fallback'], extra?: { signal?: AbortSignal }): Promise<RemoteLM>;
  readonly info: Readonly<{ backend: 'remote'; name: string; baseURL: string; threads: 0; contextSize: null;
    fallbackReason: string | null; preflight: Preflight | null }>;
  readonly lastStats: GenerationStats | null;
  complete(prompt: string, options?: GenerateOptions): Promise<string>;
  stream(prompt: string, options?: GenerateOptions): TextStream;
  readable(prompt: string, options?: GenerateOptions): ReadableStream<string>;
  readonly chat: ChatMethod;
  readonly fetch: typeof fetch;
  chatStream(messages: ChatMessage[], options?: GenerateOptions): TextStream;
  chatReadable(messages: ChatMessage[], options?: GenerateOptions): ReadableStream<string>;
  /** The assistant message of the last chat with tools, or null. */
  readonly lastReply: AssistantMessage | null;
  /** As PocketLM.json, through the server's response_format (json_schema / json_object). */
  json(input: string | ChatMessage[], schema?: object | null, options?: GenerateOptions): Promise<any>;
  tokenize(text: string): Promise<never>;
  detokenize(ids: ArrayLike<number>): Promise<never>;
  applyChatTemplate(messages: ChatMessage[]): Promise<never>;
  unload(): Promise<void>;
}
