#!/usr/bin/env node
// A small OpenAI-compatible HTTP server running the real engine in Node (the package's wasm build, the same engine
// the browser runs): POST /v1/chat/completions and /v1/completions (JSON, or server-sent events with
// `stream: true`), GET /v1/models. The remote end of the hybrid-fallback tests, and usable by hand:
//
//   node tests/e2e/openai_server.mjs --model PATH.gguf [--port 8081] [--api-key KEY] [--ctx N]
//
// One model, one request at a time (requests queue). CORS is open (pages on other origins call it). It writes the
// OpenAI shapes itself (not through pkg/src/openai.js), so the package's client side is tested against
// independent server code; the official `openai` client checks this server in fallback.test.mjs.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { REPO } from './server.mjs';

/** Where the wasm-bindgen output of the SIMD128 build is: pkg/dist (make pkg) or target/wasm-out. */
export function wasmBuildDir() {
  for (const d of [path.join(REPO, 'pkg', 'dist', 'wasm', 'simd128'), path.join(REPO, 'target', 'wasm-out', 'simd128')]) {
    if (fs.existsSync(path.join(d, 'pocketlm_bg.wasm'))) return d;
  }
  return null;
}

/** Loads the engine over `modelPath` in this process. */
async function loadEngine(modelPath, contextSize) {
  const dir = wasmBuildDir();
  if (!dir) throw new Error('no wasm build: run make pkg');
  const wasm = await import(pathToFileURL(path.join(dir, 'pocketlm.js')).href);
  wasm.initSync({ module: fs.readFileSync(path.join(dir, 'pocketlm_bg.wasm')) });
  const bytes = fs.readFileSync(modelPath);
  const loader = new wasm.WeightLoader(bytes.length);
  const step = 8 << 20;
  for (let at = 0; at < bytes.length; at += step) loader.push(bytes.subarray(at, at + step));
  loader.checkHeader();
  return loader.finish(contextSize);
}

const plainObject = (v) => (v instanceof Map ? Object.fromEntries(v) : v);

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function fail(res, status, message, extra = {}) {
  send(res, status, { error: { message, type: status === 401 ? 'authentication_error' : 'invalid_request_error',
    param: extra.param ?? null, code: extra.code ?? null } });
}

class BadRequest extends Error {
  constructor(message, param) {
    super(message);
    this.param = param;
  }
}

function textOf(content, i) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => {
      if (p?.type === 'text' && typeof p.text === 'string') return p.text;
      throw new BadRequest(`messages[${i}]: only text content parts are served`, `messages[${i}].content`);
    }).join('');
  }
  throw new BadRequest(`messages[${i}].content must be a string or text parts`, `messages[${i}].content`);
}

/** The request's sampling fields as the engine's begin() options. */
function samplerOptions(body) {
  const o = {};
  const num = (k, v) => {
    if (v === undefined || v === null) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new BadRequest(`${k} must be a non-negative number`, k);
    return v;
  };
  const maxTokens = num('max_tokens', body.max_completion_tokens ?? body.max_tokens);
  if (maxTokens !== undefined) o.maxTokens = Math.floor(maxTokens);
  for (const [k, ours] of [['temperature', 'temperature'], ['top_p', 'topP'], ['top_k', 'topK'], ['min_p', 'minP'],
    ['repeat_penalty', 'repeatPenalty'], ['seed', 'seed']]) {
    const v = num(k, body[k]);
    if (v !== undefined) o[ours] = ours === 'topK' || ours === 'seed' ? Math.floor(v) : v;
  }
  if (body.stop !== undefined && body.stop !== null) o.stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  for (const k of ['response_format', 'tools']) {
    if (body[k] !== undefined && body[k] !== null && !(k === 'response_format' && body[k]?.type === 'text')
      && !(k === 'tools' && Array.isArray(body[k]) && body[k].length === 0)) {
      throw new BadRequest(`${k} is not supported by this server`, k);
    }
  }
  if ((body.n ?? 1) !== 1) throw new BadRequest('n must be 1', 'n');
  return o;
}

const FINISH = { eos: 'stop', stop: 'stop', length: 'length', context: 'length' };

/**
 * Starts the server. Resolves {origin, port, close(), requests} (`requests`: a log of {path, stream} per request).
 * @param {{modelPath: string, port?: number, apiKey?: string, contextSize?: number, modelId?: string}} opts
 */
export async function startOpenAIServer(opts) {
  const engine = await loadEngine(opts.modelPath, opts.contextSize ?? 0);
  const modelId = opts.modelId ?? path.basename(opts.modelPath).replace(/\.gguf$/i, '');
  const requests = [];
  let queue = Promise.resolve();

  /** Runs one generation; `onPiece` per text piece; stops early when `isClosed()`. */
  async function generate(prompt, options, onPiece, isClosed) {
    engine.begin(prompt, options);
    let text = '';
    for (;;) {
      if (isClosed()) break;
      const piece = engine.next();
      if (piece === undefined) break;
      if (piece) {
        text += piece;
        onPiece?.(piece);
      }
      await new Promise((r) => setImmediate(r)); // lets a closed connection be noticed
    }
    const s = plainObject(engine.stats());
    return { text, promptTokens: s.promptTokens, cached: s.promptTokens - s.prefilledTokens,
      completionTokens: s.generatedTokens, finish: FINISH[s.finishReason] ?? 'stop' };
  }

  const usage = (r) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens, prompt_tokens_details: { cached_tokens: r.cached } });

  async function handle(req, res, body, isClosed) {
    const chat = req.url.endsWith('/chat/completions');
    let prompt;
    if (chat) {
      if (!Array.isArray(body.messages) || body.messages.length === 0) throw new BadRequest('messages must be a non-empty array', 'messages');
      const messages = body.messages.map((m, i) => {
        const role = m?.role === 'developer' ? 'system' : m?.role;
        if (!['system', 'user', 'assistant'].includes(role)) throw new BadRequest(`messages[${i}].role '${m?.role}' is not served`, `messages[${i}].role`);
        return { role, content: textOf(m.content, i) };
      });
      prompt = engine.applyChatTemplate(messages);
    } else {
      if (typeof body.prompt !== 'string') throw new BadRequest('prompt must be a string', 'prompt');
      prompt = body.prompt;
    }
    const options = samplerOptions(body);
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${crypto.randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: modelId };
    requests.push({ path: req.url, stream: !!body.stream });
    if (!body.stream) {
      const r = await generate(prompt, options, null, isClosed);
      if (chat) {
        send(res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: r.text,
          refusal: null }, logprobs: null, finish_reason: r.finish }], usage: usage(r) });
      } else {
        send(res, 200, { ...base, object: 'text_completion', choices: [{ index: 0, text: r.text, logprobs: null,
          finish_reason: r.finish }], usage: usage(r) });
      }
      return;
    }
    const includeUsage = !!body.stream_options?.include_usage;
    const event = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const choice = (piece, finish) => (chat
      ? { index: 0, delta: piece === null ? {} : { content: piece }, logprobs: null, finish_reason: finish }
      : { index: 0, text: piece ?? '', logprobs: null, finish_reason: finish });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (chat) event({ ...base, object, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    const r = await generate(prompt, options, (p) => event({ ...base, object, choices: [choice(p, null)] }), isClosed);
    if (isClosed()) return;
    event({ ...base, object, choices: [choice(null, r.finish)] });
    if (includeUsage) event({ ...base, object, choices: [], usage: usage(r) });
    res.end('data: [DONE]\n\n');
  }

  const server = http.createServer(async (req, res) => {
    let closed = false;
    res.on('close', () => { closed = true; });
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', '*');
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (opts.apiKey && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      fail(res, 401, 'missing or wrong API key', { code: 'invalid_api_key' });
      return;
    }
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && /\/v1\/models\/?$/.test(url.pathname)) {
      send(res, 200, { object: 'list', data: [{ id: modelId, object: 'model', created: 0, owned_by: 'pocketlm' }] });
      return;
    }
    if (req.method !== 'POST' || !/\/v1\/(chat\/)?completions$/.test(url.pathname)) {
      fail(res, 404, `${req.method} ${url.pathname} is not served`);
      return;
    }
    const chunks = [];
    for await (const c of req) chunks.push(c);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      fail(res, 400, 'the body is not JSON');
      return;
    }
    const job = queue.then(() => handle(req, res, body, () => closed));
    queue = job.catch(() => {});
    try {
      await job;
    } catch (e) {
      if (res.headersSent) {
        res.end();
      } else if (e instanceof BadRequest) {
        fail(res, 400, e.message, { param: e.param });
      } else {
        const code = e?.code;
        fail(res, code === 'context-overflow' || code === 'invalid-argument' ? 400 : 500, String(e?.message ?? e),
          { code: code === 'context-overflow' ? 'context_length_exceeded' : code });
      }
    }
  });
  server.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    modelId,
    requests,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
      engine.free();
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const get = (name) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const modelPath = get('model');
  if (!modelPath) {
    console.error('usage: node tests/e2e/openai_server.mjs --model PATH.gguf [--port 8081] [--api-key KEY] [--ctx N]');
    process.exit(2);
  }
  const s = await startOpenAIServer({ modelPath, port: Number(get('port') ?? 8081), apiKey: get('api-key'),
    contextSize: Number(get('ctx') ?? 0) });
  console.log(`OpenAI-compatible server for ${s.modelId} at ${s.origin}/v1`);
}
