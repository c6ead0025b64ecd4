// The checks of a call's options and messages (PocketLM in pocketlm.js): a mistake fails at the call, with the
// option's name, before anything reaches the worker; what passes is the worker's GenerateArgs (protocol.js).

import { PocketLMError } from './errors.js';
import { resolveUrl } from './rpc.js';
import { CONTEXT_OVERFLOW, NUMBER_OPTIONS } from './protocol.js';

/**
 * The engine's share of the options: checked here, so a mistake fails at the call, with its name.
 * @param {GenerateOptions} [opts]
 */
export function engineOptions(opts = {}) {
  if (typeof opts !== 'object' || opts === null) {
    throw new PocketLMError('invalid-argument', 'options must be an object');
  }
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [k, kind] of Object.entries(NUMBER_OPTIONS)) {
    const v = /** @type {any} */ (opts)[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (kind === 'integer' && !Number.isInteger(v))) {
      throw new PocketLMError('invalid-argument', `${k} must be a non-negative ${kind}, got ${String(v)}`);
    }
    out[k] = v;
  }
  if (opts.stop !== undefined) {
    const stop = typeof opts.stop === 'string' ? [opts.stop] : opts.stop;
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string' && s.length > 0)) {
      throw new PocketLMError('invalid-argument', 'stop must be an array of non-empty strings');
    }
    out.stop = [...stop];
  }
  if (opts.profile !== undefined) {
    if (typeof opts.profile !== 'boolean') throw new PocketLMError('invalid-argument', 'profile must be a boolean');
    out.profile = opts.profile;
  }
  const format = responseFormatJson(opts.responseFormat);
  if (format !== undefined) out.responseFormat = format;
  return out;
}

/** JS RegExp flags that have an inline equivalent in the engine's regex syntax. */
const REGEX_FLAGS = { i: 'i', s: 's', m: 'm', u: '', g: '', y: '', d: '', v: '' };

/**
 * The engine's JSON form of a responseFormat (checked here; the engine checks the schema, regex or grammar itself
 * and rejects what it cannot honour with 'invalid-argument' before any token).
 * @param {ResponseFormat | undefined} rf @returns {string | undefined}
 */
function responseFormatJson(rf) {
  if (rf === undefined || rf === null) return undefined;
  const bad = (msg) => new PocketLMError('invalid-argument', `responseFormat: ${msg}`);
  if (typeof rf !== 'object') throw bad('must be an object like {type: \'json_schema\', schema}');
  switch (rf.type) {
    case 'text':
      return undefined;
    case 'json_object':
      return JSON.stringify({ type: 'json_object' });
    case 'json_schema': {
      // Also OpenAI's shape: {type: 'json_schema', json_schema: {name, schema, strict}}.
      const schema = rf.schema ?? rf.json_schema?.schema;
      if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
        throw bad('json_schema needs a schema object');
      }
      let text;
      try {
        text = JSON.stringify({ type: 'json_schema', schema });
      } catch (e) {
        throw bad(`the schema cannot be written as JSON (${/** @type {Error} */ (e).message})`);
      }
      return text;
    }
    case 'regex': {
      let pattern = rf.pattern;
      if (pattern instanceof RegExp) {
        let inline = '';
        for (const f of pattern.flags) {
          if (!(f in REGEX_FLAGS)) throw bad(`regex flag '${f}' is not supported`);
          inline += REGEX_FLAGS[/** @type {keyof typeof REGEX_FLAGS} */ (f)];
        }
        pattern = (inline ? `(?${inline})` : '') + pattern.source;
      }
      if (typeof pattern !== 'string' || pattern === '') throw bad('regex needs a pattern (a RegExp or a string)');
      return JSON.stringify({ type: 'regex', pattern });
    }
    case 'grammar':
      if (typeof rf.lark !== 'string' || rf.lark.trim() === '') throw bad('grammar needs a Lark grammar string (lark)');
      return JSON.stringify({ type: 'grammar', lark: rf.lark });
    default:
      throw bad(`unknown type ${JSON.stringify(rf.type)} (json_schema, json_object, regex, grammar or text)`);
  }
}

/**
 * A conversation with tools: plain messages, the assistant's earlier calls and the tools' results.
 * @param {unknown} messages
 */
export function toolMessages(messages) {
  const bad = () => new PocketLMError('invalid-argument', 'messages must be a non-empty array of {role, content}, '
    + '{role: \'assistant\', content, toolCalls} or {role: \'tool\', toolCallId, content}');
  if (!Array.isArray(messages) || messages.length === 0) throw bad();
  return messages.map((m) => {
    if (!m || typeof m.role !== 'string') throw bad();
    const content = m.content ?? null;
    if (content !== null && typeof content !== 'string') throw bad();
    const calls = m.toolCalls ?? m.tool_calls;
    if (m.role === 'assistant' && Array.isArray(calls)) {
      return {
        role: 'assistant',
        content,
        toolCalls: calls.map((c) => {
          const fn = c?.function ?? c;
          const args = typeof fn?.arguments === 'string' ? fn.arguments : JSON.stringify(fn?.arguments ?? {});
          if (typeof fn?.name !== 'string') throw bad();
          return { id: String(c.id ?? ''), name: fn.name, arguments: args };
        }),
      };
    }
    if (m.role === 'tool') {
      const id = m.toolCallId ?? m.tool_call_id;
      return { role: 'tool', toolCallId: id === undefined ? null : String(id), content: content ?? '' };
    }
    if (content === null) throw bad();
    return { role: m.role, content };
  });
}

/** @param {unknown} tools */
export function toolList(tools) {
  if (!Array.isArray(tools) || tools.length === 0) {
    throw new PocketLMError('invalid-argument', 'tools must be a non-empty array of {type: \'function\', function: {name, description, parameters}}');
  }
  return tools.map((t) => {
    const fn = t?.function;
    if (!fn || typeof fn.name !== 'string') {
      throw new PocketLMError('invalid-argument', 'each tool must be {type: \'function\', function: {name, description, parameters}}');
    }
    return { type: t.type ?? 'function', function: { name: fn.name, description: fn.description, parameters: fn.parameters } };
  });
}

/** The reply from the worker's {content, toolCalls} in the package's (OpenAI-like) shape. @returns {AssistantMessage} */
export function assistantMessage(reply) {
  return {
    role: 'assistant',
    content: reply.content,
    toolCalls: reply.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
  };
}

/** @param {unknown} messages @returns {ChatMessage[]} */
export function chatMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0
    || !messages.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string')) {
    throw new PocketLMError('invalid-argument', 'messages must be a non-empty array of {role, content} strings');
  }
  return messages.map((m) => ({ role: m.role, content: m.content }));
}

/** `v` when it is one of `allowed`, undefined when absent. */
export function oneOf(name, v, allowed) {
  if (v === undefined || allowed.includes(v)) return v;
  throw new PocketLMError('invalid-argument', `${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(v)}`);
}

export function positiveInteger(name, v) {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new PocketLMError('invalid-argument', `${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

/**
 * The ModelCache key a local file is stored under: the given string, or with `true` one made from the file's name,
 * size and modification time (what identifies a chosen file across visits); null: not stored.
 * @param {Blob} blob @param {unknown} cache
 */
export function fileCacheKey(blob, cache) {
  if (cache === undefined || cache === false) return null;
  if (typeof cache === 'string' && cache !== '') return resolveUrl(cache);
  if (cache !== true) throw new PocketLMError('invalid-argument', 'cache must be a boolean or a non-empty key string');
  const f = /** @type {any} */ (blob);
  const name = typeof f.name === 'string' && f.name ? f.name : 'blob.gguf';
  return `pocketlm-file:${encodeURIComponent(name)}?size=${blob.size}&lastModified=${Number(f.lastModified) || 0}`;
}

/** A chat's contextOverflow option ('drop-oldest', the default, or 'error'), checked here. */
export function overflowArg(options) {
  const v = options?.contextOverflow;
  if (v === undefined) return {};
  return { contextOverflow: oneOf('contextOverflow', v, CONTEXT_OVERFLOW) };
}

/** Whether the call asked for prefill progress (checked here, so a mistake fails at the call). */
export function wantsPrefill(options) {
  const cb = options?.onPrefillProgress;
  if (cb !== undefined && typeof cb !== 'function') {
    throw new PocketLMError('invalid-argument', 'onPrefillProgress must be a function');
  }
  return cb !== undefined;
}

/** A session's generate input: its conversation (checked), or raw text (the Prompt API's sessions). */
export function sessionInput(input, options) {
  return input.messages ? { ...input, messages: chatMessages(input.messages), ...overflowArg(options) } : input;
}
