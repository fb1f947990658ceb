// The one rule that picks the PyTorch engine's Python, for doctor, every command and the services:
// --python, else CNX_PYTHON, else the app's Settings value, else the first candidate that imports torch.
// The found interpreter is cached (with its Python and torch versions) until it or its torch disappears;
// `cnx doctor` looks again.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { APP_DIR_NAME } from './workspace.ts';

export type PythonSource = 'option' | 'env' | 'settings' | 'found';

export interface PythonChoice {
  python: string;
  source: PythonSource;
  /** How it was chosen, in words (for doctor and the Settings view). */
  how: string;
  /** Known when found by probing: the interpreter's and torch's versions. */
  pythonVersion?: string;
  torchVersion?: string;
}

export interface PythonRequest {
  option?: string | undefined;
  settings?: string | undefined;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  /** The cache file; null keeps nothing. */
  cacheFile?: string | null;
  /** Probe the candidates even when the cache has an answer (`cnx doctor`). */
  refresh?: boolean;
  probe?: (python: string) => Probe;
}

export type Probe = { executable: string; python: string; torch: string; torchFile: string } | { error: string };

export class PythonNotFound extends Error {}

/** The interpreters tried, in order, when none is named. */
export function pythonCandidates(platform: NodeJS.Platform = process.platform): string[] {
  if (platform === 'win32') return ['python', 'py', 'python3'];
  const brew = platform === 'darwin' ? ['/opt/homebrew/bin/python3'] : [];
  return ['python3', '/usr/bin/python3', '/usr/local/bin/python3', ...brew, 'python'];
}

/** The user's explicit choice (option, environment, settings, in that order), or null to search. */
export function namedPython(r: Omit<PythonRequest, 'cacheFile' | 'refresh' | 'probe'>): PythonChoice | null {
  const env = r.env ?? process.env;
  if (r.option) return { python: r.option, source: 'option', how: 'given with --python' };
  if (env.CNX_PYTHON) return { python: env.CNX_PYTHON, source: 'env', how: 'set by CNX_PYTHON' };
  if (r.settings) return { python: r.settings, source: 'settings', how: "set in the workbench's Settings" };
  return null;
}

/** `--python X` for a child `cnx` command when the user named an interpreter (CNX_PYTHON or Settings; the
 * child inherits CNX_PYTHON anyway), else nothing: the child searches (cached). */
export function pythonOption(settings: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const named = namedPython({ settings, env });
  return named ? ['--python', named.python] : [];
}

/** The PyTorch engine's interpreter by the rule above; throws PythonNotFound listing what was tried. */
export function findPython(r: PythonRequest = {}): PythonChoice {
  const named = namedPython(r);
  if (named) return named;
  const candidates = pythonCandidates(r.platform);
  const how = `found: the first of ${candidates.join(', ')} that imports torch`;
  const cacheFile = r.cacheFile === undefined ? defaultCacheFile(r.env) : r.cacheFile;
  const cached = !r.refresh && cacheFile ? readCache(cacheFile, candidates) : null;
  if (cached) return { python: cached.executable, source: 'found', how, pythonVersion: cached.python, torchVersion: cached.torch };
  const probe = r.probe ?? probeTorch;
  const tried: string[] = [];
  for (const candidate of candidates) {
    const p = probe(candidate);
    if ('error' in p) {
      tried.push(`${candidate} (${p.error})`);
      continue;
    }
    if (cacheFile) writeCache(cacheFile, candidates, p);
    return { python: p.executable, source: 'found', how, pythonVersion: p.python, torchVersion: p.torch };
  }
  throw new PythonNotFound(
    `no Python with torch found for the PyTorch engine; tried ${tried.join(', ')}. Install PyTorch (Debian/Ubuntu: ` +
      'apt-get install python3-torch; elsewhere: pip install torch), or name the interpreter with --python PATH, ' +
      "CNX_PYTHON=PATH or the workbench's Settings.",
  );
}

const PROBE = 'import json, sys, torch; print(json.dumps({"executable": sys.executable, "python": sys.version.split()[0], "torch": torch.__version__, "torchFile": torch.__file__}))';

/** Whether `python` runs and imports torch: its real path and versions, or the reason it does not. */
export function probeTorch(python: string): Probe {
  const r = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) return { error: (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : r.error.message };
  if (r.status !== 0) return { error: (r.stderr || `exit ${r.status}`).trim().split('\n').pop()! };
  try {
    const p = JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
    return 'executable' in p && p.executable ? p : { ...p, executable: python } as Probe;
  } catch {
    return { error: 'unexpected output' };
  }
}

function defaultCacheFile(env: NodeJS.ProcessEnv = process.env): string {
  const home = homedir();
  const xdg = env.XDG_CACHE_HOME;
  const base = process.platform === 'win32' ? env.LOCALAPPDATA || join(home, 'AppData', 'Local')
    : process.platform === 'darwin' ? join(home, 'Library', 'Caches')
    : xdg && xdg.startsWith('/') ? xdg : join(home, '.cache');
  return join(base, APP_DIR_NAME, 'python.json');
}

type CacheEntry = { candidates: string[] } & Extract<Probe, { executable: string }>;

function readCache(file: string, candidates: string[]): CacheEntry | null {
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as CacheEntry;
    // Valid while the same search would start from the same list and the interpreter and its torch remain.
    const same = JSON.stringify(c.candidates) === JSON.stringify(candidates);
    return same && typeof c.executable === 'string' && existsSync(c.executable) && typeof c.torchFile === 'string' && existsSync(c.torchFile) ? c : null;
  } catch {
    return null;
  }
}

function writeCache(file: string, candidates: string[], p: Extract<Probe, { executable: string }>): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ candidates, ...p }));
  } catch {
    // A cache that cannot be written only costs the next search its time.
  }
}
