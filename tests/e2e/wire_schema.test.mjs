// The option lists the package declares once (pkg/src/protocol.js) against what the engine takes: the fields of
// src/wasm.rs's BeginOptions (which rejects unknown fields, so a name the package sends and the engine lacks
// would fail every call) and the KV types simd/src/kv.rs parses. Read from the sources, no browser needed.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATE_OPTIONS, KV_TYPES, NUMBER_OPTIONS } from '../../pkg/src/protocol.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (f) => fs.readFileSync(path.join(REPO, f), 'utf8');

/** The fields of `struct name { ... }` in Rust source, with their types. */
function structFields(src, name) {
  const m = new RegExp(`struct ${name} \\{([^}]*)\\}`).exec(src);
  assert.ok(m, `struct ${name} not found`);
  const body = m[1].split('\n').filter((l) => !l.trim().startsWith('//'));
  return Object.fromEntries(body.map((l) => /^\s*(\w+):\s*(.+?),?\s*$/.exec(l)).filter(Boolean).map((f) => [f[1], f[2]]));
}

const camel = (s) => s.replace(/_(\w)/g, (_, c) => c.toUpperCase());

describe('wire schema: the package\'s option lists match the engine', () => {
  it('GENERATE_OPTIONS are exactly the fields of BeginOptions, integers where the engine takes integers', () => {
    const src = read('src/wasm.rs');
    assert.match(src, /deny_unknown_fields\)\]\s*struct BeginOptions/);
    const fields = structFields(src, 'BeginOptions');
    const names = Object.keys(fields).map(camel);
    assert.deepEqual([...names].sort(), [...GENERATE_OPTIONS].sort());
    for (const [rust, type] of Object.entries(fields)) {
      const kind = NUMBER_OPTIONS[camel(rust)];
      if (!kind) continue;
      // usize fields must be integers on the JS side; seed arrives as f64 and is checked to be an integer there too.
      if (type.includes('usize')) assert.equal(kind, 'integer', `${rust}: ${type}`);
      if (type.includes('f32')) assert.equal(kind, 'number', `${rust}: ${type}`);
    }
  });

  it('KV_TYPES are the names KvType::parse accepts', () => {
    const src = read('simd/src/kv.rs');
    const parse = /pub fn parse\(s: &str\)[^{]*\{([\s\S]*?)\n {4}\}/.exec(src);
    assert.ok(parse, 'KvType::parse not found');
    const names = [...parse[1].matchAll(/"([^"]+)" => Some/g)].map((m) => m[1]);
    assert.deepEqual([...names].sort(), [...KV_TYPES].sort());
  });
});
