// The packaging config: electron-builder's own schema accepts it, it ships what the app runs (the worker,
// the Python engine's sources, native modules unpacked), and `npm start` looks for the same main entry;
// `npm run dist -- --list` packs it with a stand-in for Electron (no download) and lists every file.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { validateConfiguration } from 'app-builder-lib/out/util/config/config.js';
import config, { ELECTRON_MAIN } from '../../electron.config.ts';
import { electronBinary } from '../../bin/electron.mjs';

const REPO = join(import.meta.dirname, '..', '..');

test("electron-builder's schema accepts the config", async () => {
  await validateConfiguration(config, { isEnabled: false, add: () => undefined } as never);
});

test('the package carries the worker, the Python engine and the built UI, with native parts unpacked', () => {
  const files = config.files as string[];
  for (const glob of ['native-worker/**/*.{ts,mjs}', 'native-worker/data/pipeline/native/build/Release/cnx_jpeg.node', 'native-worker/torch/**/*.py', 'dist/renderer/**/*', 'dist/electron/preload.cjs', 'common/**/*.ts', 'common/variants.json', 'main/**/*.{ts,mjs,js,html}']) {
    assert.ok(files.includes(glob), glob);
  }
  const unpack = config.asarUnpack as string[];
  for (const glob of ['**/*.node', 'node_modules/onnxruntime-node/**/*', 'native-worker/torch/**/*', 'common/variants.json']) assert.ok(unpack.includes(glob), glob);
  assert.deepEqual(config.linux?.target, ['AppImage', 'deb']);
  assert.deepEqual(config.win?.target, ['nsis']);
  assert.deepEqual(config.mac?.target, ['dmg']);
});

test('npm start and the package agree on the main process entry, which exists; finding Electron never downloads it', () => {
  const start = readFileSync(join(REPO, 'bin', 'start.mjs'), 'utf8');
  assert.match(start, new RegExp(`const ELECTRON_MAIN = '${ELECTRON_MAIN}';`));
  assert.equal((config.extraMetadata as { main: string }).main, ELECTRON_MAIN);
  assert.ok(existsSync(join(REPO, ELECTRON_MAIN)), ELECTRON_MAIN);
  const exe = electronBinary();
  assert.ok(exe === null || exe.includes('electron'), String(exe));
});

test('npm run dist -- --list: the package holds the app, its production dependencies and native parts unpacked, and nothing else', () => {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'dist.mjs'), '--list'], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr.split('\n').slice(-5).join('\n'));
  const files = r.stdout.trim().split('\n');
  const has = (f: string) => assert.ok(files.includes(f), `${f} is packaged`);
  for (const f of ['package.json', 'main/electron/main.mjs', 'main/electron/main.ts', 'bin/cnx.mjs', 'native-worker/cli.ts', 'common/api.ts', 'dist/renderer/index.html', 'dist/electron/preload.cjs', 'node_modules/tsx/package.json', 'node_modules/zod/package.json']) has(`app.asar/${f}`);
  // What must be real files (native libraries, the Python engine) lies beside the archive.
  for (const f of ['native-worker/torch/run_job.py', 'native-worker/torch/cnx_torch/job.py', 'node_modules/onnxruntime-node/package.json', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node']) has(`app.asar.unpacked/${f}`);
  const os = { linux: 'linux', darwin: 'darwin', win32: 'win32' }[process.platform as string];
  if (os) has(`app.asar.unpacked/node_modules/onnxruntime-node/bin/napi-v6/${os}/${process.arch}/onnxruntime_binding.node`);
  assert.deepEqual(files.filter((f) => /onnxruntime-node\/bin\//.test(f) && !f.includes(`/${os}/`)), [], "only this OS's onnxruntime binaries");
  // The JPEG addon (the file: optional dependency) travels where npm install could build it.
  if (existsSync(join(REPO, 'node_modules', 'cnx-jpeg', 'build', 'Release', 'cnx_jpeg.node'))) has('app.asar.unpacked/node_modules/cnx-jpeg/build/Release/cnx_jpeg.node');
  // No tests, dev tools, sources of the UI or Electron itself.
  const unwanted = files.filter((f) => /\.test\.ts$|\/test_[^/]*\.py$|^app\.asar(\.unpacked)?\/(test|renderer|docs|\.ci)\/|node_modules\/(electron|vite|typescript|eslint|playwright-core|electron-builder)\//.test(f));
  assert.deepEqual(unwanted, []);
});

test("npm run dist where Electron's binary cannot be downloaded says so in one line, before building anything", async () => {
  // A mirror that has nothing: every download answers 404.
  const mirror = createServer((_, res) => res.writeHead(404).end());
  await new Promise<void>((r) => mirror.listen(0, '127.0.0.1', r));
  const port = (mirror.address() as AddressInfo).port;
  try {
    const env = { ...process.env, ELECTRON_OVERRIDE_DIST_PATH: join(REPO, 'no-electron-here'), ELECTRON_MIRROR: `http://127.0.0.1:${port}/`, ELECTRON_CACHE: join(REPO, 'no-electron-cache') };
    const child = spawn(process.execPath, [join(REPO, 'bin', 'dist.mjs')], { cwd: REPO, env });
    let [out, err] = ['', ''];
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 1);
    const lines = err.split('\n').filter((l) => l.startsWith('npm run dist:') || /^\s+at /.test(l));
    assert.equal(lines.length, 1, err);
    assert.match(lines[0]!, new RegExp(`^npm run dist: Electron's binary \\(electron-v[\\d.]+-\\w+-\\w+\\.zip\\) cannot be downloaded from 127\\.0\\.0\\.1:${port} \\(HTTP 404\\): run it where that site is reachable, or set ELECTRON_MIRROR`));
    assert.doesNotMatch(out, /packaging/);
  } finally {
    mirror.close();
  }
});
