// The Prompt API's input side (prompt_api.js): the spec's errors as DOMExceptions, its input and option checks
// (expected inputs/outputs, the long form of a prompt, responseConstraint, samplingMode), and an abortable wait.
// No state: what depends on configure() stays in prompt_api.js.

// --- errors

export function domError(name, message) {
  return new DOMException(message, name);
}

export function quotaError(message, requested, quota) {
  const Q = /** @type {any} */ (globalThis).QuotaExceededError;
  if (typeof Q === 'function') {
    try {
      return new Q(message, { requested, quota });
    } catch { /* an older shape of the constructor */ }
  }
  const e = domError('QuotaExceededError', message);
  Object.defineProperties(e, { requested: { value: requested, enumerable: true }, quota: { value: quota, enumerable: true } });
  return e;
}

/** A PocketLMError (or anything thrown below) as the Prompt API's errors. */
export function toPromptError(e, signal, when = 'prompt') {
  const err = /** @type {any} */ (e);
  if (err instanceof DOMException || err instanceof TypeError || err instanceof RangeError) return err;
  if (err?.name === 'AbortError' || err?.code === 'aborted') {
    return signal?.aborted ? signal.reason : domError('AbortError', err?.message ?? 'aborted');
  }
  switch (err?.code) {
    case 'context-overflow': return quotaError(err.message, err.details?.needed ?? NaN, err.details?.context ?? NaN);
    case 'quota': return quotaError(err.message, err.details?.needed ?? NaN, err.details?.available ?? NaN);
    case 'unsupported': return domError('NotSupportedError', err.message);
    case 'invalid-argument': return domError('NotSupportedError', err.message);
    case 'network': case 'http': return domError('NetworkError', err.message);
    default: return domError(when === 'create' ? 'OperationError' : 'UnknownError', String(err?.message ?? err));
  }
}

// --- options and input

export const TYPES = ['text', 'image', 'audio', 'tool-call', 'tool-response'];
const ROLES = ['system', 'user', 'assistant'];
export const MODES = ['most-predictable', 'predictable', 'balanced', 'creative', 'most-creative'];
/** samplingMode -> the engine's sampler (temperature 0 is greedy). 'balanced' is the engine's default sampler. */
const MODE_PARAMS = {
  'most-predictable': { temperature: 0, topK: 1 },
  predictable: { temperature: 0.3, topK: 20 },
  balanced: { temperature: 0.8, topK: 40 },
  creative: { temperature: 1.0, topK: 64 },
  'most-creative': { temperature: 1.3, topK: 128 },
};
export const PARAMS = Object.freeze({ defaultTopK: 40, maxTopK: 256, defaultTemperature: 0.8, maxTemperature: 2 });

/** Checks expectedInputs/expectedOutputs; canonicalizes their language tags (RangeError on a bad tag). */
export function checkExpected(list, name) {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new TypeError(`${name} must be an array`);
  return list.map((x, i) => {
    if (!x || !TYPES.includes(x.type)) throw new TypeError(`${name}[${i}].type must be one of ${TYPES.join(', ')}`);
    return { type: x.type, ...(x.languages === undefined ? {} : { languages: Intl.getCanonicalLocales(x.languages) }) };
  });
}

/**
 * The prompt in its long form, as the spec's "validate and canonicalize a prompt": a list of {role, content,
 * prefix} with the text parts joined. Throws the spec's errors.
 * @returns {{role: string, content: string, prefix: boolean}[]}
 */
export function canonicalize(input, hasAppendedInput) {
  if (typeof input === 'string') return [{ role: 'user', content: input, prefix: false }];
  if (!Array.isArray(input)) throw new TypeError('the input must be a string or an array of {role, content} messages');
  if (input.length === 0) return [{ role: 'user', content: '', prefix: false }];
  const out = [];
  input.forEach((m, i) => {
    if (!m || typeof m !== 'object') throw new TypeError(`message ${i} must be an object`);
    if (!ROLES.includes(m.role)) throw new TypeError(`message ${i}: role must be one of ${ROLES.join(', ')}`);
    if (m.prefix === true) {
      if (m.role !== 'assistant') throw domError('SyntaxError', `message ${i}: only an assistant message can be a prefix`);
      if (i !== input.length - 1) throw domError('SyntaxError', `message ${i}: only the last message can be a prefix`);
    }
    if (m.role === 'system' && (hasAppendedInput || i > 0)) {
      throw new TypeError('a system message can only be the first message of a session');
    }
    let content;
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content.map((c, j) => {
        if (!c || !TYPES.includes(c.type)) throw new TypeError(`message ${i} content ${j}: type must be one of ${TYPES.join(', ')}`);
        if (c.type !== 'text') {
          throw domError('NotSupportedError', `message ${i} content ${j}: '${c.type}' input is not supported by this model`);
        }
        if (typeof c.value !== 'string') throw new TypeError(`message ${i} content ${j}: a text value must be a string`);
        return c.value;
      }).join('');
    } else throw new TypeError(`message ${i}: content must be a string or an array of {type, value}`);
    out.push({ role: m.role, content, prefix: m.prefix === true });
  });
  return out;
}

/** responseConstraint -> [the core package's responseFormat, guidance appended to the prompt]. */
export function constraintOf(options) {
  const rc = options.responseConstraint;
  if (rc === undefined || rc === null) {
    if (options.omitResponseConstraintInput) throw new TypeError('omitResponseConstraintInput needs a responseConstraint');
    return null;
  }
  if (rc instanceof RegExp) {
    // The constraint is on the whole answer, so a leading ^ and a trailing $ add nothing; the flags go to the core
    // package, which honours i, s and m and rejects the others (NotSupportedError here).
    const source = rc.source.replace(/^\^/, '').replace(/(^|[^\\])\$$/, '$1');
    return { format: { type: 'regex', pattern: new RegExp(source, rc.flags.replace(/[gyd]/g, '')) },
      guidance: `Answer with text that matches the regular expression /${rc.source}/.` };
  }
  if (typeof rc === 'object' && !Array.isArray(rc)) {
    return { format: { type: 'json_schema', schema: rc },
      guidance: `Answer with JSON that follows this JSON Schema: ${JSON.stringify(rc)}` };
  }
  throw new TypeError('responseConstraint must be a RegExp or a JSON Schema object');
}

/** The conversation as the template takes it (prefix flags dropped). */
export function plain(messages) {
  return messages.map((m) => ({ role: m.role, content: m.content }));
}

/** `promise`, rejected with the signal's reason as soon as it aborts. */
export function abortable(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then((v) => {
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    }, (e) => {
      signal.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

/** The session's sampler from samplingMode, or from the (deprecated, still honoured) temperature and topK. */
export function samplingOf(options) {
  const raw = options.temperature !== undefined || options.topK !== undefined;
  if (options.samplingMode !== undefined && options.samplingMode !== 'default') {
    if (!MODES.includes(options.samplingMode)) throw new TypeError(`samplingMode must be one of ${MODES.join(', ')}`);
    if (raw) throw new TypeError('samplingMode cannot be combined with temperature or topK');
    return { ...MODE_PARAMS[options.samplingMode], samplingMode: options.samplingMode };
  }
  let temperature = PARAMS.defaultTemperature;
  let topK = PARAMS.defaultTopK;
  if (options.temperature !== undefined) {
    const t = Number(options.temperature);
    if (Number.isNaN(t) || t < 0) throw new RangeError('temperature must be a number >= 0');
    temperature = Math.min(t, PARAMS.maxTemperature);
  }
  if (options.topK !== undefined) {
    const k = Number(options.topK);
    if (Number.isNaN(k) || k < 1) throw new RangeError('topK must be a number >= 1');
    topK = Math.min(Math.floor(k), PARAMS.maxTopK);
  }
  return { temperature, topK, samplingMode: 'balanced' };
}
