// The package's incremental SHA-256 against Web Crypto (node's crypto.subtle) and the FIPS 180-2 examples.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sha256 } from '../../pkg/src/sha256.js';
import { seededBytes } from './harness.mjs';

const hex = (buf) => Buffer.from(buf).toString('hex');
const subtle = async (bytes) => hex(await crypto.subtle.digest('SHA-256', bytes));

test('FIPS 180-2 example messages', () => {
  const enc = new TextEncoder();
  assert.equal(new Sha256().update(enc.encode('abc')).hex(),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(new Sha256().update(enc.encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).hex(),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  assert.equal(new Sha256().hex(), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('every length around the padding boundaries equals Web Crypto', async () => {
  const data = seededBytes(300, 42);
  for (let n = 0; n <= 300; n++) {
    const m = data.subarray(0, n);
    assert.equal(new Sha256().update(m).hex(), await subtle(m), `length ${n}`);
  }
});

test('any split into updates gives the same digest as Web Crypto', async () => {
  const data = seededBytes(1 << 20, 7);
  const want = await subtle(data);
  let seed = 12345;
  const rand = (k) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % k; };
  for (let trial = 0; trial < 20; trial++) {
    const h = new Sha256();
    for (let off = 0; off < data.length;) {
      const n = Math.min(data.length - off, rand(trial < 10 ? 130 : 70000));
      h.update(data.subarray(off, off + n));
      off += n;
    }
    assert.equal(h.hex(), want, `trial ${trial}`);
  }
});

test('refuses use after digest', () => {
  const h = new Sha256();
  h.hex();
  assert.throws(() => h.update(new Uint8Array(1)));
  assert.throws(() => h.digest());
});
