// The OpenAI chat-completions shape over a loaded model: `lm.chat.completions.create(params)` returns what
// OpenAI's API returns (a `chat.completion`, or with `stream: true` an AsyncIterable of `chat.completion.chunk`s),
// and `createFetch(lm)` is a fetch-compatible function answering `POST …/v1/chat/completions` (JSON and
// server-sent events) and `GET …/v1/models`, so the official `openai` client (its `fetch` option) runs on the
// local model. Field meanings follow OpenAI's API reference; nothing here talks to a network.

import { PocketLMError } from './errors.js';

/**
 * What the OpenAI mapping needs from a model: PocketLM, or anything with the same methods.
 * @typedef {{info: Record<string, any>, lastStats: Record<string, any> | null,
 *   chat: (messages: any[], options?: any) => Promise<any>,
 *   chatStream: (messages: any[], options?: any) => AsyncIterable<string> & {return(): any}}} ChatModel
 */

/** OpenAI's request fields we accept but cannot honour exactly when they ask for something other than the default. */
const NEUTRAL = { frequency_penalty: 0, presence_penalty: 0, n: 1, logprobs: false };

/** The model id of `lm` in OpenAI objects: the file's name without `.gguf`, else the model's metadata name. */
export function modelId(lm) {
  const url = lm.info?.url;
  if (typeof url === 'string' && url) {
    const base = url.split(/[?#]/)[0].split('/').pop() ?? '';
    if (base) return base.replace(/\.gguf$/i, '');
  }
  return lm.info?.name || 'pocketlm';
}

function invalid(message, param) {
  return new PocketLMError('invalid-argument', message, param ? { details: { param } } : {});
}

/** An OpenAI message's content (a string, or an array of `{type: 'text', text}` parts) as one string. */
function textContent(content, i) {
  if (content === null || content === undefined) return null;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part) => {
      if (part && (part.type === 'text' || part.type === 'input_text') && typeof part.text === 'string') return part.text;
      throw invalid(`messages[${i}].content: only text parts are supported (got type '${part?.type}')`, `messages[${i}].content`);
    }).join('');
  }
  throw invalid(`messages[${i}].content must be a string or an array of text parts`, `messages[${i}].content`);
}

/** OpenAI messages -> pocketlm chat messages (tool calls and tool results in the core package's shape). */
function toMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) throw invalid('messages must be a non-empty array', 'messages');
  return messages.map((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') {
      throw invalid(`messages[${i}] must be an object with a role`, `messages[${i}]`);
    }
    const role = m.role === 'developer' ? 'system' : m.role;
    const content = textContent(m.content, i);
    if (role === 'tool') {
      if (typeof m.tool_call_id !== 'string') throw invalid(`messages[${i}]: a tool message needs tool_call_id`, `messages[${i}].tool_call_id`);
      return { role, toolCallId: m.tool_call_id, content: content ?? '' };
    }
    if (role === 'assistant' && Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
      return {
        role,
        content,
        toolCalls: m.tool_calls.map((c) => ({
          id: c.id, type: 'function', function: { name: c.function?.name, arguments: c.function?.arguments ?? '{}' },
        })),
      };
    }
    if (!['system', 'user', 'assistant'].includes(role)) {
      throw invalid(`messages[${i}].role '${m.role}' is not one of system, developer, user, assistant, tool`, `messages[${i}].role`);
    }
    if (content === null) throw invalid(`messages[${i}].content is required`, `messages[${i}].content`);
    return { role, content };
  });
}

/** OpenAI's response_format -> the core package's `responseFormat` (undefined for plain text). */
export function toResponseFormat(rf) {
  if (rf === undefined || rf === null) return undefined;
  if (typeof rf !== 'object') throw invalid('response_format must be an object', 'response_format');
  switch (rf.type) {
    case 'text': return undefined;
    case 'json_object': return { type: 'json_object' };
    case 'json_schema': {
      const schema = rf.json_schema?.schema;
      if (!schema || typeof schema !== 'object') {
        throw invalid('response_format.json_schema.schema must be a JSON Schema object', 'response_format');
      }
      return { type: 'json_schema', schema };
    }
    default: throw invalid(`response_format.type '${rf.type}' is not one of text, json_object, json_schema`, 'response_format');
  }
}

function toToolChoice(tc) {
  if (tc === undefined || tc === null) return undefined;
  if (tc === 'auto' || tc === 'none' || tc === 'required') return tc;
  if (typeof tc === 'object' && tc.type === 'function' && typeof tc.function?.name === 'string') {
    return { type: 'function', function: { name: tc.function.name } };
  }
  throw invalid("tool_choice must be 'auto', 'none', 'required' or {type: 'function', function: {name}}", 'tool_choice');
}

/**
 * OpenAI request parameters -> [pocketlm messages, generation options].
 * @param {Record<string, any>} p
 */
export function toGenerateArgs(p) {
  if (!p || typeof p !== 'object') throw invalid('the request must be an object');
  for (const [k, neutral] of Object.entries(NEUTRAL)) {
    if (p[k] !== undefined && p[k] !== null && p[k] !== neutral) {
      throw invalid(`${k} = ${JSON.stringify(p[k])} is not supported (only ${JSON.stringify(neutral)})`, k);
    }
  }
  const messages = toMessages(p.messages);
  /** @type {Record<string, any>} */
  const options = {};
  const maxTokens = p.max_completion_tokens ?? p.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null) options.maxTokens = maxTokens;
  if (p.temperature !== undefined && p.temperature !== null) options.temperature = p.temperature;
  if (p.top_p !== undefined && p.top_p !== null) options.topP = p.top_p;
  if (p.seed !== undefined && p.seed !== null) options.seed = p.seed;
  if (p.stop !== undefined && p.stop !== null) options.stop = typeof p.stop === 'string' ? [p.stop] : p.stop;
  const responseFormat = toResponseFormat(p.response_format);
  if (responseFormat) options.responseFormat = responseFormat;
  if (Array.isArray(p.tools) && p.tools.length > 0) {
    options.tools = p.tools.map((t, i) => {
      if (t?.type !== 'function' || typeof t.function?.name !== 'string') {
        throw invalid(`tools[${i}] must be {type: 'function', function: {name, description?, parameters?}}`, `tools[${i}]`);
      }
      const f = { name: t.function.name };
      if (t.function.description !== undefined) f.description = t.function.description;
      if (t.function.parameters !== undefined) f.parameters = t.function.parameters;
      return { type: 'function', function: f };
    });
    const choice = toToolChoice(p.tool_choice);
    if (choice !== undefined) options.toolChoice = choice;
  } else if (p.tools !== undefined && p.tools !== null && !Array.isArray(p.tools)) {
    throw invalid('tools must be an array', 'tools');
  } else {
    // A conversation with earlier calls and results but no tools offered now (OpenAI allows it): the calls' tools,
    // by name, with choice 'none', so the history is rendered as such and the reply is plain text.
    const names = new Set(messages.flatMap((m) => (m.toolCalls ?? []).map((c) => c.function.name)));
    if (names.size > 0 || messages.some((m) => m.role === 'tool')) {
      if (names.size === 0) throw invalid('a tool message needs the assistant message with its tool_calls before it', 'messages');
      options.tools = [...names].map((name) => ({ type: 'function', function: { name } }));
      options.toolChoice = 'none';
      options.toolsForHistoryOnly = true;
    }
  }
  return { messages, options };
}

const FINISH = { eos: 'stop', stop: 'stop', length: 'length', context: 'length' };

/** @param {Record<string, any> | null} stats */
function finishReason(stats, toolCalls) {
  if (toolCalls && toolCalls.length > 0) return 'tool_calls';
  return FINISH[stats?.finishReason] ?? 'stop';
}

/** @param {Record<string, any> | null} stats */
function usageOf(stats) {
  const prompt = stats?.promptTokens ?? 0;
  const completion = stats?.generatedTokens ?? 0;
  const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  // OpenAI reports the prompt tokens served from its cache here; ours are the ones the KV cache already held.
  if (typeof stats?.prefilledTokens === 'number') usage.prompt_tokens_details = { cached_tokens: prompt - stats.prefilledTokens };
  return usage;
}

function completionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `chatcmpl-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** OpenAI tool calls from the core package's assistant message. */
function toolCallsOf(reply) {
  const calls = reply?.toolCalls;
  if (!Array.isArray(calls) || calls.length === 0) return undefined;
  return calls.map((c, i) => ({
    id: c.id ?? `call_${i}`,
    type: 'function',
    function: { name: c.function.name, arguments: c.function.arguments },
  }));
}

/**
 * `chat.completions.create` over `lm`.
 * @param {ChatModel} lm
 * @param {Record<string, any>} params OpenAI's request body (plus `signal`)
 * @param {{signal?: AbortSignal}} [requestOptions] as the openai client's second argument
 */
export async function createChatCompletion(lm, params, requestOptions = {}) {
  const { messages, options } = toGenerateArgs(params);
  const historyOnly = !!options.toolsForHistoryOnly;
  delete options.toolsForHistoryOnly;
  const signal = requestOptions.signal ?? params.signal;
  if (signal) options.signal = signal;
  const base = { id: completionId(), created: Math.floor(Date.now() / 1000), model: modelId(lm), system_fingerprint: null };
  if (params.stream) return streamCompletion(lm, messages, options, base, !!params.stream_options?.include_usage);
  const reply = await lm.chat(messages, options);
  const stats = lm.lastStats;
  // With tools the core package answers an assistant message object; without, a string.
  const toolCalls = typeof reply === 'string' || historyOnly ? undefined : toolCallsOf(reply);
  const content = typeof reply === 'string' ? reply : (reply?.content ?? null);
  /** @type {Record<string, any>} */
  const message = { role: 'assistant', content, refusal: null };
  if (toolCalls) message.tool_calls = toolCalls;
  return {
    ...base,
    object: 'chat.completion',
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(stats, toolCalls) }],
    usage: usageOf(stats),
  };
}

/**
 * The streaming form: a `chat.completion.chunk` with the role, one per text piece, one with the finish reason (and
 * the usage), and with `stream_options.include_usage`, as OpenAI does, the usage instead in a last chunk with
 * `choices: []`. Leaving the
 * loop early stops generation. With tools the reply is generated whole (the tool calls must be complete JSON
 * before they can be reported) and then sent as chunks.
 * @returns {AsyncIterable<Record<string, any>> & {controller: AbortController}}
 */
function streamCompletion(lm, messages, options, base, includeUsage) {
  const chunk = (delta, finish = null, stats = null) => ({
    ...base, object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    // OpenAI's include_usage: null here, the usage in a last chunk of its own. Without it, the chunk with the finish
    // reason carries the usage (as llama.cpp's server does), so the usage always arrives at the end.
    ...(includeUsage ? { usage: null } : stats ? { usage: usageOf(stats) } : {}),
  });
  const usageChunk = (stats) => ({ ...base, object: 'chat.completion.chunk', choices: [], usage: usageOf(stats) });
  const controller = new AbortController();
  const outer = options.signal;
  const signal = outer ? AbortSignal.any([outer, controller.signal]) : controller.signal;
  async function* run() {
    yield chunk({ role: 'assistant', content: '', refusal: null });
    if (options.tools) {
      const reply = await lm.chat(messages, { ...options, signal });
      const stats = lm.lastStats;
      const toolCalls = typeof reply === 'string' ? undefined : toolCallsOf(reply);
      const content = typeof reply === 'string' ? reply : reply?.content;
      if (content) yield chunk({ content });
      if (toolCalls) {
        yield chunk({ tool_calls: toolCalls.map((c, index) => ({ index, ...c })) });
      }
      yield chunk({}, finishReason(stats, toolCalls), stats);
      if (includeUsage) yield usageChunk(stats);
      return;
    }
    const pieces = lm.chatStream(messages, { ...options, signal });
    try {
      for await (const piece of pieces) yield chunk({ content: piece });
    } finally {
      // The consumer left early (break / return()): stop the generation.
      await pieces.return?.();
    }
    const stats = lm.lastStats;
    yield chunk({}, finishReason(stats), stats);
    if (includeUsage) yield usageChunk(stats);
  }
  const it = run();
  return Object.assign(it, { controller });
}

/** `{create}` bound to `lm`: what `lm.chat.completions` is. */
export function chatCompletions(lm) {
  return { create: (params, requestOptions) => createChatCompletion(lm, params, requestOptions) };
}

/**
 * Makes `lm.chat` callable as before (`lm.chat(messages, options)`) and also an object with `.completions.create`
 * (OpenAI's shape), and adds `lm.fetch` (createFetch(lm)). `lm.chat` becomes an own property of the instance
 * wrapping the class's method.
 * @param {ChatModel & object} lm
 */
export function attachOpenAI(lm) {
  const method = Object.getPrototypeOf(lm).chat;
  const chat = (...args) => method.apply(lm, args);
  Object.defineProperty(chat, 'completions', { value: chatCompletions(lm), enumerable: true });
  Object.defineProperty(lm, 'chat', { value: chat, configurable: true, writable: false, enumerable: false });
  let fetchFn = null;
  Object.defineProperty(lm, 'fetch', {
    get: () => (fetchFn ??= createFetch(lm)),
    configurable: true,
    enumerable: false,
  });
}

const encoder = new TextEncoder();

/** OpenAI's error body and HTTP status for an error. */
function errorResponse(e) {
  const code = e?.code;
  const status = code === 'invalid-argument' || code === 'context-overflow' || code === 'template' ? 400
    : code === 'unloaded' ? 503 : 500;
  const body = {
    error: {
      message: String(e?.message ?? e),
      type: status === 400 ? 'invalid_request_error' : 'server_error',
      param: e?.details?.param ?? null,
      code: code === 'context-overflow' ? 'context_length_exceeded' : (code ?? null),
    },
  };
  return json(body, status);
}

function json(body, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/**
 * A `fetch`-compatible function serving OpenAI's chat-completions API from `lm`, for clients that take a fetch
 * (the `openai` package: `new OpenAI({baseURL: 'http://localhost/v1', apiKey: 'unused', fetch: createFetch(lm),
 * dangerouslyAllowBrowser: true})`). The host of the URL does not matter; the path must end in
 * `/chat/completions` (POST) or `/models` (GET, or GET `/models/<id>`). Aborting the request's signal stops
 * generation; a streamed body that its reader cancels does too.
 * @param {ChatModel} lm
 * @returns {(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>}
 */
export function createFetch(lm) {
  return async function pocketlmFetch(input, init) {
    const request = new Request(input, init);
    const path = new URL(request.url).pathname.replace(/\/+$/, '');
    if (path.endsWith('/chat/completions')) {
      if (request.method !== 'POST') return json({ error: { message: 'use POST', type: 'invalid_request_error', param: null, code: null } }, 405);
      let params;
      try {
        params = await request.json();
      } catch {
        return json({ error: { message: 'the body is not JSON', type: 'invalid_request_error', param: null, code: null } }, 400);
      }
      const signal = init?.signal ?? request.signal;
      let result;
      try {
        result = await createChatCompletion(lm, params, { signal });
      } catch (e) {
        if (/** @type {any} */ (e)?.name === 'AbortError') throw abortReason(signal, e);
        return errorResponse(e);
      }
      if (!params.stream) return json(result);
      return sse(/** @type {any} */ (result), signal);
    }
    const models = /\/models(?:\/([^/]+))?$/.exec(path);
    if (models && request.method === 'GET') {
      const id = modelId(lm);
      const model = { id, object: 'model', created: 0, owned_by: 'pocketlm' };
      if (models[1] === undefined) return json({ object: 'list', data: [model] });
      if (decodeURIComponent(models[1]) === id) return json(model);
      return json({ error: { message: `no model '${models[1]}' (this one is '${id}')`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } }, 404);
    }
    return json({ error: { message: `${request.method} ${path} is not served here (only POST /v1/chat/completions, GET /v1/models)`, type: 'invalid_request_error', param: null, code: 'unknown_url' } }, 404);
  };
}

/** fetch rejects with the signal's reason when it is aborted (a DOMException AbortError by default). */
function abortReason(signal, e) {
  if (signal?.aborted) return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
  return e;
}

/** Server-sent events: one `data: <chunk JSON>` event per chunk, then `data: [DONE]`; an error mid-stream is sent
 * as `data: {"error": …}` (the openai client raises it). */
function sse(chunks, signal) {
  const it = chunks[Symbol.asyncIterator]();
  const body = new ReadableStream({
    async pull(controller) {
      try {
        const r = await it.next();
        if (r.done) {
          controller.enqueue(encoder.encode('data: [DONE]\n\n'));
          controller.close();
        } else {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(r.value)}\n\n`));
        }
      } catch (e) {
        if (/** @type {any} */ (e)?.name === 'AbortError') {
          controller.error(abortReason(signal, e));
          return;
        }
        const { error } = await errorResponse(e).json();
        controller.enqueue(encoder.encode(`data: ${JSON.stringify({ error })}\n\n`));
        controller.close();
      }
    },
    async cancel() {
      await it.return?.();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
  });
}
