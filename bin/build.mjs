// The vite builds the app loads from dist/ (vite.config.ts's modes), run only when their sources are newer
// than what dist/ holds: `npm start` a second time, and the browser tests, reuse the last build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './electron.mjs';

const BUILDS = {
  production: { out: 'dist/renderer', file: 'index.html', sources: ['renderer'] },
  bench: { out: 'dist/bench', file: 'index.html', sources: ['renderer'] },
  preload: { out: 'dist/electron', file: 'preload.cjs', sources: ['main/electron'] },
};

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Whether dist/ holds a build of `mode` at least as new as its sources, common/ and vite.config.ts. */
export function isBuilt(mode) {
  const b = BUILDS[mode];
  const built = join(REPO, b.out, b.file);
  if (!existsSync(built)) return false;
  const sources = Math.max(...b.sources.map((s) => newestMtime(join(REPO, s))), newestMtime(join(REPO, 'common')), statSync(join(REPO, 'vite.config.ts')).mtimeMs);
  return statSync(built).mtimeMs >= sources;
}

/** Builds `mode` unless dist/ is up to date; returns its output folder. */
export async function ensureBuilt(mode = 'production') {
  const out = join(REPO, BUILDS[mode].out);
  if (isBuilt(mode)) return out;
  const { build } = await import('vite');
  await build({ configFile: join(REPO, 'vite.config.ts'), mode, logLevel: 'warn' });
  return out;
}
