#!/usr/bin/env node
// Static test server for the end-to-end tests and the demo (node:http only).
//
// Serves the repository (pkg/dist, www, test pages), the models directory under /models/, and in-memory files
// that tests register. Everything a download test needs to provoke: Range requests (RFC 9110 §14), ETag and
// Last-Modified, per-path request/byte counters, dropping the connection after N body bytes, forcing a status
// (404), ignoring Range, replacing a file (new ETag), stopping and restarting on the same port, and
// COOP/COEP headers on or off (cross-origin isolation, needed by threaded wasm).
//
//   node tests/e2e/server.mjs --serve [--port 8080] [--no-isolation]     (make demo)

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MODELS_DIR = process.env.POCKETLM_MODELS
  ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'pocketlm', 'models');

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

/**
 * @typedef {object} Behavior per URL path; set with server.configure(path, {...})
 * @property {number} [status]        answer every request with this status and a short body (e.g. 404)
 * @property {number} [dropAfter]     destroy the connection after this many body bytes of a response
 * @property {boolean} [dropOnce]     clear dropAfter after it fired once
 * @property {boolean} [ignoreRange]  answer Range requests with 200 and the whole file
 * @property {boolean} [etag]         send ETag (default true)
 * @property {boolean} [lastModified] send Last-Modified (default true)
 * @property {number} [bytesPerSecond] pace the body (so a test can act in the middle of a download)
 */

/**
 * @typedef {object} Source
 * @property {number} size
 * @property {string} etag
 * @property {string} lastModified
 * @property {string} type
 * @property {(start: number, end: number) => Readable} read  bytes [start, end)
 */

export class TestServer {
  /** @type {Map<string, {data: Buffer, version: number, mtime: Date}>} */
  #files = new Map();
  /** @type {Map<string, Behavior>} */
  #behavior = new Map();
  /** @type {Map<string, {requests: number, bytes: number, log: object[]}>} */
  #stats = new Map();
  #sockets = new Set();
  /** @type {http.Server | null} */
  #server = null;

  /**
   * @param {{root?: string, mounts?: Record<string, string>, isolation?: boolean, cors?: boolean, port?: number}} [opts]
   *   mounts: URL prefix -> directory (default '/models/' -> the models directory)
   */
  constructor(opts = {}) {
    this.root = opts.root ?? REPO;
    this.mounts = opts.mounts ?? { '/models/': MODELS_DIR };
    /** Send COOP: same-origin + COEP: require-corp (crossOriginIsolated pages). */
    this.isolation = opts.isolation ?? false;
    this.cors = opts.cors ?? true;
    this.port = opts.port ?? 0;
  }

  get origin() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on 127.0.0.1 (a free port the first time, the same port after stop()). */
  async start() {
    if (this.#server) return this;
    const server = http.createServer((req, res) => {
      this.#handle(req, res).catch((e) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(String(e?.stack ?? e));
        } else {
          res.destroy();
        }
      });
    });
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
    this.#server = server;
    return this;
  }

  /** Stops listening and cuts every open connection (a server that went away). */
  async stop() {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    const closed = once(server, 'close');
    server.close();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  /** Registers (or replaces) an in-memory file at a URL path; replacing gives it a new ETag and Last-Modified. */
  addFile(urlPath, data) {
    const old = this.#files.get(urlPath);
    const version = (old?.version ?? 0) + 1;
    // Last-Modified has 1 s resolution: move it forward a whole second per version.
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 + version * 1000);
    this.#files.set(urlPath, { data: Buffer.from(data), version, mtime });
  }

  removeFile(urlPath) {
    this.#files.delete(urlPath);
  }

  /** @param {string} urlPath @param {Behavior} behavior merged into the path's current behaviour */
  configure(urlPath, behavior) {
    this.#behavior.set(urlPath, { ...this.#behavior.get(urlPath), ...behavior });
  }

  resetBehavior(urlPath) {
    if (urlPath) this.#behavior.delete(urlPath);
    else this.#behavior.clear();
  }

  /** Requests and body bytes sent for a path since the last reset; log: [{method, range, status, bytes}]. */
  stats(urlPath) {
    const s = this.#stats.get(urlPath);
    return s ? { requests: s.requests, bytes: s.bytes, log: s.log.map((e) => ({ ...e })) }
      : { requests: 0, bytes: 0, log: [] };
  }

  resetStats(urlPath) {
    if (urlPath) this.#stats.delete(urlPath);
    else this.#stats.clear();
  }

  /** Every path requested since the last reset. */
  requestedPaths() {
    return [...this.#stats.keys()];
  }

  async #handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://x');
    let urlPath;
    try {
      urlPath = decodeURIComponent(url.pathname);
    } catch {
      return this.#plain(res, 400, 'bad path');
    }
    const stat = this.#stats.get(urlPath) ?? { requests: 0, bytes: 0, log: [] };
    this.#stats.set(urlPath, stat);
    stat.requests++;
    const entry = { method: req.method, range: req.headers.range ?? null, status: 0, bytes: 0 };
    stat.log.push(entry);
    const b = this.#behavior.get(urlPath) ?? {};

    this.#commonHeaders(res);
    if (req.method === 'OPTIONS') { // CORS preflight
      entry.status = 204;
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, HEAD',
        'Access-Control-Allow-Headers': 'Range, If-Range',
        'Access-Control-Max-Age': '600',
      });
      return res.end();
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      entry.status = 405;
      return this.#plain(res, 405, 'method not allowed');
    }
    if (b.status) {
      entry.status = b.status;
      return this.#plain(res, b.status, `status ${b.status} forced by the test`);
    }
    const src = await this.#source(urlPath);
    if (!src) {
      entry.status = 404;
      return this.#plain(res, 404, `not found: ${urlPath}`);
    }

    const headers = {
      'Content-Type': src.type,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'no-cache',
    };
    if (b.etag !== false) headers.ETag = src.etag;
    if (b.lastModified !== false) headers['Last-Modified'] = src.lastModified;

    let start = 0;
    let end = src.size;
    let status = 200;
    const range = b.ignoreRange ? null : parseRange(req.headers.range, src.size);
    if (range === 'unsatisfiable') {
      entry.status = 416;
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${src.size}`, 'Content-Length': 0 });
      return res.end();
    }
    if (range) {
      [start, end] = range;
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end - 1}/${src.size}`;
    }
    headers['Content-Length'] = String(end - start);
    entry.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return res.end();

    const dropAfter = b.dropAfter ?? null;
    const stream = src.read(start, end);
    let sent = 0;
    try {
      for await (const chunk of stream) {
        let c = chunk;
        const drop = dropAfter !== null && sent + c.length >= dropAfter;
        if (drop) c = c.subarray(0, dropAfter - sent);
        if (c.length > 0) {
          if (b.bytesPerSecond) await new Promise((r) => setTimeout(r, (c.length / b.bytesPerSecond) * 1000));
          const ok = res.write(c);
          sent += c.length;
          stat.bytes += c.length;
          entry.bytes += c.length;
          if (!ok && !drop) await drained(res);
        }
        if (drop) {
          if (b.dropOnce) this.configure(urlPath, { dropAfter: undefined, dropOnce: undefined });
          entry.dropped = true;
          // Let what was written reach the socket, then cut the connection mid-body.
          await new Promise((r) => res.write('', r));
          res.socket?.destroy();
          return;
        }
        if (res.destroyed) return; // the client went away (cancelled the body)
      }
      res.end();
    } finally {
      stream.destroy();
    }
  }

  #commonHeaders(res) {
    if (this.cors) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Expose-Headers', 'ETag, Last-Modified, Content-Range, Content-Length, Accept-Ranges');
    }
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
    if (this.isolation) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
  }

  #plain(res, status, text) {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  /** @returns {Promise<Source | null>} */
  async #source(urlPath) {
    const mem = this.#files.get(urlPath);
    if (mem) {
      return {
        size: mem.data.length,
        etag: `"mem-${crypto.createHash('sha1').update(mem.data).digest('hex').slice(0, 16)}-v${mem.version}"`,
        lastModified: mem.mtime.toUTCString(),
        type: 'application/octet-stream',
        read: (start, end) => Readable.from(slices(mem.data, start, end)),
      };
    }
    let file = null;
    for (const [prefix, dir] of Object.entries(this.mounts)) {
      if (urlPath.startsWith(prefix)) file = inside(dir, urlPath.slice(prefix.length));
    }
    if (file === null) file = inside(this.root, urlPath);
    if (file === null) return null;
    let st;
    try {
      st = await fs.promises.stat(file);
      if (st.isDirectory()) {
        file = path.join(file, 'index.html');
        st = await fs.promises.stat(file);
      }
    } catch {
      return null;
    }
    if (!st.isFile()) return null;
    return {
      size: st.size,
      etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
      lastModified: st.mtime.toUTCString(),
      type: MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      read: (start, end) => (end > start ? fs.createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 16 })
        : Readable.from([])),
    };
  }
}

/** Resolves when `res` can take more data or has closed. */
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve(undefined);
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function* slices(buf, start, end) {
  for (let off = start; off < end; off += 1 << 16) yield buf.subarray(off, Math.min(end, off + (1 << 16)));
}

/** `dir` joined with a URL path, or null if it would leave `dir`. */
function inside(dir, rel) {
  const p = path.resolve(dir, `.${path.posix.normalize(`/${rel}`)}`);
  return p === dir || p.startsWith(dir + path.sep) ? p : null;
}

/**
 * A single byte range (RFC 9110 §14.1.2): 'bytes=a-b', 'bytes=a-', 'bytes=-n' -> [start, end) exclusive.
 * Anything else (several ranges, other units, malformed) is ignored, which the RFC allows: null -> 200.
 */
export function parseRange(header, size) {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start;
  let end;
  if (m[1] === '') { // suffix: the last n bytes
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--serve')) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 8080;
  const server = new TestServer({ port, isolation: !process.argv.includes('--no-isolation') });
  await server.start();
  console.log(`pocketlm: serving ${REPO} and ${MODELS_DIR} at /models/`);
  console.log(`pocketlm: demo at ${server.origin}/www/  (Ctrl-C to stop)`);
}
