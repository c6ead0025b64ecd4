// A test double for the wasm-bindgen module (same exports and contract as src/wasm.rs), used by
// protocol.test.mjs to exercise the worker, the protocol and the client without the real engine.
//
// "Model file" format it accepts: 'GGUF' magic, then the declared total length as u64 little-endian, then
// anything. Generation: piece i of a call is `${first word of the prompt}${i} `, except that token 2 yields ''
// (as the engine does while a UTF-8 character is incomplete); each token takes ~10 ms of busy CPU, like real
// decoding, so that cancellation between tokens can be observed.

import { Sha256 } from '../../sha256.js';

const MS_PER_TOKEN = 10;

function coded(code, message) {
  const e = new Error(message);
  e.name = 'PocketLMError';
  e.code = code;
  return e;
}

export default async function init() {}

export function backend() {
  return 'simd128';
}

export class WeightLoader {
  constructor(totalBytes) {
    if (totalBytes > 2 ** 31) throw coded('memory', `cannot reserve ${totalBytes} bytes`);
    this.buf = new Uint8Array(totalBytes);
    this.n = 0;
  }

  push(chunk) {
    if (this.n + chunk.length > this.buf.length) throw coded('format', 'more data than announced');
    this.buf.set(chunk, this.n);
    this.n += chunk.length;
  }

  get loaded() {
    return this.n;
  }

  checkHeader() {
    const b = this.buf;
    if (this.n < 12 || b[0] !== 0x47 || b[1] !== 0x47 || b[2] !== 0x55 || b[3] !== 0x46) {
      throw coded('format', 'not a GGUF file (bad magic)');
    }
    return true;
  }

  finish(contextSize) {
    if (!this.buf) throw new Error('loader already consumed');
    this.checkHeader();
    const declared = Number(new DataView(this.buf.buffer).getBigUint64(4, true));
    if (declared !== this.n) throw coded('format', `the model is truncated: ${this.n} of ${declared} bytes`);
    const engine = new Engine(this.buf, contextSize || 64);
    this.buf = null;
    return engine;
  }

  free() {
    this.buf = null;
  }
}

export class Engine {
  constructor(bytes, contextSize) {
    this.sha256 = new Sha256().update(bytes).hex();
    this.fileBytes = bytes.length;
    this.contextSize = contextSize;
    this.reset();
  }

  info() {
    return {
      architecture: 'fake', name: 'fake engine', parameters: 0, quantization: 'none', fileBytes: this.fileBytes,
      contextSize: this.contextSize, vocabSize: 256, backend: 'simd128', threads: 1, chatTemplate: true,
      sha256: this.sha256, // of the bytes the engine received: lets tests check what arrived
    };
  }

  tokenize(text, addSpecial) {
    const ids = [...new TextEncoder().encode(text)];
    return Uint32Array.from(addSpecial ? [1, ...ids] : ids);
  }

  detokenize(ids) {
    return new TextDecoder().decode(Uint8Array.from([...ids].filter((id) => id !== 1)));
  }

  applyChatTemplate(messages) {
    if (messages.some((m) => m.role === 'bad')) throw coded('template', 'role "bad" is not in the template');
    return `${messages.map((m) => `<${m.role}>${m.content}`).join('\n')}\n<assistant>`;
  }

  /** The stand-in has one conversation: the default session (0), which every call without a session selects. */
  selectSession(id) {
    if (id !== 0) throw coded('invalid-argument', `the fake engine has no session ${id}`);
  }

  begin(prompt, opts) {
    this.reset();
    const n = new TextEncoder().encode(prompt).length;
    if (n > this.contextSize) {
      throw coded('context-overflow', `the prompt has ${n} tokens, the context holds ${this.contextSize}`);
    }
    this.tag = prompt.split(/\s+/)[0];
    this.maxTokens = opts.maxTokens ?? 16;
    this.promptTokens = n;
    this.prefilled = 0;
    this.active = true;
  }

  /** Prefills up to `maxTokens` more prompt tokens; true when the whole prompt is in. */
  prefill(maxTokens) {
    this.prefilled = Math.min(this.promptTokens, this.prefilled + maxTokens);
    return this.prefilled >= this.promptTokens;
  }

  /** `[done, total, promptTokens]`, as the real engine's (this one never reuses a cached prefix). */
  prefillProgress() {
    return this.active ? [this.prefilled, this.promptTokens, this.promptTokens] : [0, 0, 0];
  }

  next() {
    if (!this.active) return undefined;
    if (this.generated >= this.maxTokens) {
      this.active = false;
      this.finishReason = 'length';
      return undefined;
    }
    const until = performance.now() + MS_PER_TOKEN;
    while (performance.now() < until) { /* decode */ }
    const i = this.generated++;
    return i === 2 ? '' : `${this.tag}${i} `;
  }

  stats() {
    return {
      promptTokens: this.promptTokens, generatedTokens: this.generated, prefillTokensPerSecond: 1000,
      decodeTokensPerSecond: 1000 / MS_PER_TOKEN, finishReason: this.finishReason,
    };
  }

  reset() {
    this.active = false;
    this.generated = 0;
    this.promptTokens = 0;
    this.finishReason = null;
  }

  memoryBytes() {
    return this.fileBytes;
  }

  free() {}
}
