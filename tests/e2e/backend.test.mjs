// Wasm build selection: the hand-assembled probe modules really test what they claim, and the choice logic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SIMD128_PROBE, RELAXED_SIMD_PROBE, pickBuild, resolveThreads } from '../../pkg/src/backend.js';

test('the SIMD128 probe is valid where SIMD is (node 20 has it)', () => {
  assert.equal(WebAssembly.validate(SIMD128_PROBE), true);
});

test('the relaxed-SIMD probe is rejected without relaxed SIMD and accepted with it', () => {
  // Node 20 accepts relaxed SIMD only behind a flag: the same bytes must flip with it, which shows the probe
  // depends on exactly that feature (and is otherwise a well-formed module).
  const code = `process.stdout.write(String(WebAssembly.validate(new Uint8Array(${JSON.stringify([...RELAXED_SIMD_PROBE])}))))`;
  const plain = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  const flagged = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '-e', code], { encoding: 'utf8' });
  assert.equal(plain.stdout, 'false');
  assert.equal(flagged.stdout, 'true');
});

test('wabt disassembles the probes to the intended instructions', (t) => {
  const has = spawnSync('wasm-objdump', ['--version']).status === 0;
  if (!has) return t.skip('wasm-objdump (wabt) is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-probe-'));
  try {
    fs.writeFileSync(path.join(dir, 'simd.wasm'), SIMD128_PROBE);
    fs.writeFileSync(path.join(dir, 'relaxed.wasm'), RELAXED_SIMD_PROBE);
    const simd = execFileSync('wasm-objdump', ['-d', path.join(dir, 'simd.wasm')], { encoding: 'utf8' });
    const relaxed = execFileSync('wasm-objdump', ['-d', path.join(dir, 'relaxed.wasm')], { encoding: 'utf8' });
    assert.match(simd, /i32x4\.add/);
    // wabt's name for i32x4.relaxed_dot_i8x16_i7x16_add_s
    assert.match(relaxed, /i32x4\.dot_i8x16_i7x16_add_s/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("resolveThreads: numbers as given, 'auto' a share of the cores", () => {
  assert.equal(resolveThreads(3, 16), 3);
  assert.equal(resolveThreads(1, 16), 1);
  assert.equal(resolveThreads('auto', 1), 1);
  assert.equal(resolveThreads('auto', 2), 2);
  assert.equal(resolveThreads('auto', 4), 4);
  assert.equal(resolveThreads('auto', 12), 6);
  assert.equal(resolveThreads('auto', 64), 8);
  assert.equal(resolveThreads(undefined, 0), 1);
});

test('pickBuild prefers relaxed when valid, falls back to simd128, and reports what is missing', () => {
  const yes = () => true;
  const noRelaxed = (b) => b !== RELAXED_SIMD_PROBE;
  assert.equal(pickBuild({ available: ['simd128', 'relaxed'], validate: yes }), 'relaxed');
  assert.equal(pickBuild({ available: ['simd128', 'relaxed'], validate: noRelaxed }), 'simd128');
  assert.equal(pickBuild({ available: ['simd128'], validate: yes }), 'simd128');
  // threads only with more than one thread, a cross-origin isolated page, and the build present
  const all = ['simd128', 'relaxed', 'threads'];
  assert.equal(pickBuild({ available: all, validate: yes, threads: 4, isolated: true }), 'threads');
  assert.equal(pickBuild({ available: all, validate: yes, threads: 4, isolated: false }), 'relaxed');
  assert.equal(pickBuild({ available: all, validate: yes, threads: 1, isolated: true }), 'relaxed');
  // the threads build is also a relaxed-SIMD build
  assert.equal(pickBuild({ available: all, validate: noRelaxed, threads: 4, isolated: true }), 'simd128');
  assert.throws(() => pickBuild({ available: [], validate: yes }), { code: 'worker' });
  assert.throws(() => pickBuild({ available: ['simd128'], validate: () => false }), { code: 'unsupported' });
});
