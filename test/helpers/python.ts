// The Python with PyTorch for reference tests, found by the app's own rule (native-worker/torch-python.ts),
// which must also import numpy. Without one a test is skipped with the reason, except under CI=true, where a
// missing tool is a failure (CI installs Debian's python3-torch).
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { findPython } from '../../native-worker/torch-python.ts';

let found: { python: string } | { reason: string } | undefined;

export function torchPython(): { python: string } | { reason: string } {
  if (found) return found;
  let python: string;
  try {
    python = findPython().python;
  } catch (e) {
    return (found = { reason: (e as Error).message });
  }
  const r = spawnSync(python, ['-c', 'import numpy'], { encoding: 'utf8' });
  if (r.status !== 0) return (found = { reason: `${python} has torch but not numpy; apt-get install python3-numpy` });
  return (found = { python });
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
