// Finds a Python with PyTorch for reference tests. Without one a test is skipped with the reason, except
// under CI=true, where a missing tool is a failure (CI installs Debian's python3-torch).
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

let found: { python: string } | { reason: string } | undefined;

export function torchPython(): { python: string } | { reason: string } {
  if (found) return found;
  const candidates = [process.env.CNX_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p);
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (r.status === 0) return (found = { python });
  }
  return (found = { reason: `no Python with torch and numpy found (tried ${candidates.join(', ')}); apt-get install python3-torch` });
}

/** The Python to run reference code with, or null after marking the test skipped (failed under CI). */
export function needTorch(t: TestContext): string | null {
  const r = torchPython();
  if ('python' in r) return r.python;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${r.reason}`);
  t.skip(r.reason);
  return null;
}

/** Runs a Python script with arguments; throws with its stderr when it fails. */
export function runPython(python: string, script: string, args: readonly string[] = [], input?: string): string {
  const r = spawnSync(python, [script, ...args], { encoding: 'utf8', input, maxBuffer: 1 << 30, env: { ...process.env, OMP_NUM_THREADS: '2' } });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}
