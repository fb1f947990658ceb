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
  const python = process.env.CNX_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const py = spawnSync(python, ['-m', 'unittest', 'discover', '-s', pyDir, '-t', '.', '-p', 'test_*.py', '-v'], { stdio: 'inherit' });
  status ||= py.status ?? 1;
}
process.exit(status);
