// The packaging config: electron-builder's own schema accepts it, it ships what the app runs (the worker,
// the Python engine's sources, native modules unpacked), and `npm start` looks for the same main entry.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
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
