// Runs every test: node's test runner over test/**/*.test.ts (TypeScript through tsx), then the Python
// tests of the PyTorch engine when there are any. Extra arguments filter test files by substring.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const filters = process.argv.slice(2);
const walk = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
const files = walk('test').filter((f) => !filters.length || filters.some((s) => f.includes(s))).sort();
const node = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
let status = node.status ?? 1;

const pyDir = 'native-worker/torch';
if (!filters.length && existsSync(pyDir)) {
  // The app's own rule picks the interpreter; without one the failure lists what was tried.
  (await import('tsx/esm/api')).register();
  const { findPython } = await import('../native-worker/torch-python.ts');
  let python = null;
  try {
    python = findPython().python;
  } catch (e) {
    // Skipped with the reason; under CI=true a skip is a failure.
    console.error(`${process.env.CI === 'true' ? 'FAILED (CI=true)' : 'skipped'}: the PyTorch engine's Python tests: ${e.message}`);
    if (process.env.CI === 'true') status ||= 1;
  }
  if (python) {
    const py = spawnSync(python, ['-m', 'unittest', 'discover', '-s', pyDir, '-t', '.', '-p', 'test_*.py', '-v'], { stdio: 'inherit' });
    status ||= py.status ?? 1;
  }
}
process.exit(status);
