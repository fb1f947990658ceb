#!/usr/bin/env node
// `npm run dist`: packages the desktop app with electron-builder (electron.config.ts) for this OS, after
// building the UI and preload. electron-builder rebuilds better-sqlite3 for Electron's ABI in node_modules,
// so afterwards it is rebuilt for Node again (`cnx` and the tests run on Node). Where Electron's binary
// (or its headers) cannot be downloaded, it says so in one line.
//   npm run dist -- --list    what goes into the package, packed with a stand-in for Electron (no download)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ensureBuilt } from './build.mjs';
import { REPO, electronBinary } from './electron.mjs';

const list = process.argv.includes('--list');
try {
  await Promise.all([ensureBuilt('production'), ensureBuilt('preload')]);
} catch (e) {
  fail(`building the UI failed: ${firstLine(e)}`);
}
(await import('tsx/esm/api')).register();
const { default: config } = await import('../electron.config.ts');
const { build, Platform } = await import('electron-builder');
const platform = Platform.current();

if (list) {
  const out = mkdtempSync(join(tmpdir(), 'cnx-dist-list-'));
  try {
    const files = await packFileList(out);
    console.log(files.join('\n'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
} else {
  // An installed Electron binary is packaged as it is; otherwise electron-builder downloads its zip.
  const installed = electronBinary();
  const electronDist = installed && !process.env.ELECTRON_OVERRIDE_DIST_PATH ? join(REPO, 'node_modules', 'electron', 'dist') : undefined;
  try {
    await build({ projectDir: REPO, targets: platform.createTarget(), publish: 'never', config: { ...config, ...(electronDist ? { electronDist } : {}) } });
  } catch (e) {
    restoreNodeModules();
    const download = /download|getaddrinfo|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|socket hang up|status code 40\d/i.test(String(e?.message ?? e));
    fail(download
      ? `Electron's binary or headers for ${platform.name} could not be downloaded (${firstLine(e)}); install Electron where its download works (npm install without ELECTRON_SKIP_BINARY_DOWNLOAD) or set ELECTRON_MIRROR`
      : `packaging failed: ${firstLine(e)}`);
  }
  restoreNodeModules();
  console.log(`npm run dist: packages in ${join(REPO, config.directories.output)}`);
}

/**
 * Packs the unpacked `dir` target with a stand-in Electron (an empty executable: nothing is downloaded and
 * nothing rebuilt) into `out`, and lists the app's files: inside app.asar, and unpacked beside it.
 */
async function packFileList(out) {
  // electron-builder logs to stdout, which here carries the list.
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = process.stderr.write.bind(process.stderr);
  const standIn = join(out, 'electron-stand-in');
  mkdirSync(standIn);
  writeFileSync(join(standIn, process.platform === 'win32' ? 'electron.exe' : 'electron'), '', { mode: 0o755 });
  await build({
    projectDir: REPO,
    targets: platform.createTarget('dir'),
    publish: 'never',
    config: { ...config, electronDist: standIn, npmRebuild: false, directories: { ...config.directories, output: join(out, 'packages') } },
  }).finally(() => (process.stdout.write = write));
  const { listPackage, statFile } = await import('@electron/asar');
  const resources = join(out, 'packages', `${platform.buildConfigurationKey}-unpacked`, 'resources');
  const archive = join(resources, 'app.asar');
  // The archive's index names unpacked files too: list those once, under app.asar.unpacked/.
  const packed = listPackage(archive, { isPack: false }).filter((f) => {
    const entry = statFile(archive, f.slice(1), false);
    return !('files' in entry) && !entry.unpacked;
  });
  const unpackedDir = join(resources, 'app.asar.unpacked');
  const unpacked = existsSync(unpackedDir) ? walk(unpackedDir).map((f) => `app.asar.unpacked/${relative(unpackedDir, f)}`) : [];
  return [...packed.map((f) => `app.asar${f}`), ...unpacked].map((f) => f.replaceAll('\\', '/')).sort();
}

function walk(dir) {
  return readdirSync(dir, { recursive: true }).map((f) => join(dir, f)).filter((f) => statSync(f).isFile());
}

/** electron-builder rebuilt better-sqlite3 for Electron in node_modules: rebuild it for Node again. */
function restoreNodeModules() {
  const loads = () => spawnSync(process.execPath, ['-e', "new (require('better-sqlite3'))(':memory:').close()"], { cwd: REPO, stdio: 'ignore' }).status === 0;
  if (loads()) return;
  const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['rebuild', 'better-sqlite3'], { cwd: REPO, stdio: 'ignore', shell: process.platform === 'win32' });
  if (r.status !== 0 || !loads()) console.error('npm run dist: warning: rebuilding better-sqlite3 for Node failed; run `npm rebuild better-sqlite3` before using cnx');
}

function firstLine(e) {
  return String(e instanceof Error ? e.message : e).trim().split('\n')[0];
}

function fail(message) {
  console.error(`npm run dist: ${message}`);
  process.exit(1);
}
