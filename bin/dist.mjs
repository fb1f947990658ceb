#!/usr/bin/env node
// `npm run dist`: packages the desktop app with electron-builder (electron.config.ts) for this OS, after
// building the UI and preload. electron-builder rebuilds better-sqlite3 for Electron's ABI in node_modules,
// so afterwards it is rebuilt for Node again (`cnx` and the tests run on Node). Where Electron's binary
// (or its headers) cannot be downloaded, it says so in one line.
//   npm run dist -- --list    what goes into the package, packed with a stand-in for Electron (no download)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
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
  const missing = await unreachableDownload(electronDist === undefined);
  if (missing) fail(missing);
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
 * What electron-builder will download (Electron's zip unless installed; the headers to rebuild
 * better-sqlite3) asked for with a short HEAD request first, so an offline machine hears it at once instead
 * of after minutes of retries: null when reachable, else the one-line reason.
 */
async function unreachableDownload(needZip) {
  const version = JSON.parse(readFileSync(join(REPO, 'node_modules', 'electron', 'package.json'), 'utf8')).version;
  const zip = `electron-v${version}-${process.platform}-${process.arch}.zip`;
  const mirror = process.env.ELECTRON_MIRROR ?? 'https://github.com/electron/electron/releases/download/';
  const urls = [
    ...(needZip && !cachedZip(zip) ? [[`Electron's binary (${zip})`, `${mirror}v${version}/${zip}`, ', or set ELECTRON_MIRROR to a mirror of its releases']] : []),
    ["Electron's headers (to rebuild better-sqlite3)", `https://www.electronjs.org/headers/v${version}/node-v${version}-headers.tar.gz`, ''],
  ];
  for (const [what, url, hint] of urls) {
    const why = await fetch(url, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(15_000) }).then(
      (r) => (r.ok ? null : `HTTP ${r.status}`),
      (e) => e?.cause?.code ?? e?.cause?.errors?.[0]?.code ?? e?.cause?.message ?? String(e?.message ?? e),
    );
    if (why) return `${what} cannot be downloaded from ${new URL(url).host} (${why}): run it where that site is reachable${hint}`;
  }
  return null;
}

/** Whether @electron/get's cache already holds `zip` (then nothing is downloaded). */
function cachedZip(zip) {
  const home = homedir();
  const dir = process.env.ELECTRON_CACHE
    ?? (process.platform === 'win32' ? join(process.env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'electron', 'Cache')
      : process.platform === 'darwin' ? join(home, 'Library', 'Caches', 'electron') : join(process.env.XDG_CACHE_HOME ?? join(home, '.cache'), 'electron'));
  return existsSync(dir) && readdirSync(dir, { recursive: true }).some((f) => String(f).endsWith(zip));
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
