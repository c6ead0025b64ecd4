// `npm pack` in pkg/ gives a tarball that installs and resolves: the files and exports fields are right.
// Packs a copy of pkg/ whose dist/ is built by the real build script with a stand-in wasm build (the fake engine),
// so the test needs neither the engine nor the network.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { REPO } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = path.join(REPO, 'pkg');
const quiet = { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] };

test('npm pack -> npm install -> import "pocketlm"', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-pack-'));
  try {
    const copy = path.join(tmp, 'pkg');
    fs.mkdirSync(copy);
    for (const f of ['package.json', 'README.md', 'index.d.ts', 'prompt_api.d.ts']) fs.copyFileSync(path.join(PKG, f), path.join(copy, f));
    for (const d of ['src', 'scripts']) fs.cpSync(path.join(PKG, d), path.join(copy, d), { recursive: true });
    const wasm = path.join(tmp, 'wasm');
    fs.mkdirSync(wasm);
    fs.copyFileSync(path.join(HERE, 'fake_engine', 'pocketlm.js'), path.join(wasm, 'pocketlm.js'));
    fs.writeFileSync(path.join(wasm, 'pocketlm_bg.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));

    // Without a wasm build, prepack refuses to pack.
    execFileSync(process.execPath, ['scripts/build.mjs'], { ...quiet, cwd: copy, env: { ...process.env, POCKETLM_WASM_OUT: '' } });
    const refused = spawnSync('npm', ['pack', '--pack-destination', tmp], { ...quiet, cwd: copy });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /make pkg/);

    execFileSync(process.execPath, ['scripts/build.mjs', '--simd128', wasm], { ...quiet, cwd: copy, env: { ...process.env, POCKETLM_WASM_OUT: '' } });
    const packed = execFileSync('npm', ['pack', '--pack-destination', tmp], { ...quiet, cwd: copy }).trim().split('\n').pop();
    const tarball = path.join(tmp, packed);
    const files = execFileSync('tar', ['-tzf', tarball], quiet).trim().split('\n').sort();
    for (const f of ['package/package.json', 'package/README.md', 'package/dist/index.js', 'package/dist/index.d.ts',
      'package/dist/worker.js', 'package/dist/builds.js', 'package/dist/weight_store.js', 'package/dist/prompt_api.js',
      'package/dist/prompt_api.d.ts', 'package/dist/openai.js', 'package/dist/remote.js',
      'package/dist/wasm/simd128/pocketlm.js', 'package/dist/wasm/simd128/pocketlm_bg.wasm']) {
      assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(' ')}`);
    }
    assert.ok(!files.some((f) => f.startsWith('package/src/') || f.startsWith('package/scripts/')), files.join(' '));

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { ...quiet, cwd: app });
    const probe = `
      import * as m from 'pocketlm';
      const pa = await import('pocketlm/prompt-api');
      const out = { exports: Object.keys(m).sort(), worker: import.meta.resolve('pocketlm/worker.js'),
        promptApi: Object.keys(pa).sort() };
      try { await m.PocketLM.load('https://example.org/m.gguf'); } catch (e) { out.error = e.code; }
      console.log(JSON.stringify(out));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { ...quiet, cwd: app }));
    assert.deepEqual(out.exports, ['ModelCache', 'PocketLM', 'PocketLMError', 'RemoteLM', 'Session', 'TextStream', 'chatCompletions',
      'createFetch', 'preflight']);
    assert.deepEqual(out.promptApi, ['DEFAULT_MODEL_URL', 'LanguageModel', 'configure', 'install', 'sharedModel']);
    assert.ok(out.worker.endsWith('/node_modules/pocketlm/dist/worker.js'), out.worker);
    assert.equal(out.error, 'unsupported'); // node has no Web Worker: a clear error, not a crash
    const exportsField = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'pocketlm', 'package.json'), 'utf8')).exports;
    for (const sub of ['.', './prompt-api']) {
      assert.ok(fs.existsSync(path.join(app, 'node_modules', 'pocketlm', exportsField[sub].types)), sub);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
