// pocketlm: run a quantized GGUF language model in a web page, in a worker, with the weights cached in IndexedDB.
export { PocketLM, TextStream } from './pocketlm.js';
export { Session } from './session.js';
export { ModelCache } from './model_cache.js';
export { PocketLMError } from './errors.js';
export { createFetch, chatCompletions } from './openai.js';
export { RemoteLM, preflight } from './remote.js';
