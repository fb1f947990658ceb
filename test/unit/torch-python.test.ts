// The one rule that picks the PyTorch engine's Python: --python, else CNX_PYTHON, else the Settings value,
// else the first candidate that imports torch (cached with its versions); and a command run where only the
// second candidate has torch, as on Debian with a `python3` on the PATH that lacks it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseArch } from '../../common/variants.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { readNpy, writeNpy } from '../../native-worker/data/npy.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { type Probe, PythonNotFound, findPython, namedPython, probeTorch, pythonCandidates, pythonOption } from '../../native-worker/torch-python.ts';
import { tempDir } from '../helpers/services.ts';

const REPO = join(import.meta.dirname, '..', '..');
// A file that exists stands in for torch/__init__.py.
const found = (executable: string): Probe => ({ executable, python: '3.11.2', torch: '2.1.0', torchFile: join(import.meta.dirname, 'torch-python.test.ts') });

test('a named interpreter wins in the stated order: --python, CNX_PYTHON, Settings', () => {
  const never = (): Probe => assert.fail('a named interpreter is not probed');
  const env = { CNX_PYTHON: '/env/python' };
  assert.deepEqual(findPython({ option: '/opt/py', settings: '/set/py', env, probe: never }), { python: '/opt/py', source: 'option', how: 'given with --python' });
  assert.equal(findPython({ settings: '/set/py', env, probe: never }).source, 'env');
  assert.equal(findPython({ settings: '/set/py', env: {}, probe: never }).python, '/set/py');
  assert.equal(namedPython({ settings: '', env: {} }), null, 'an empty Settings value means: search');
  assert.deepEqual(pythonOption('/set/py', {}), ['--python', '/set/py']);
  assert.deepEqual(pythonOption('/set/py', env), ['--python', '/env/python']);
  assert.deepEqual(pythonOption('', {}), []);
});

test('the search takes the first candidate that imports torch, caches it with its versions, and looks again on refresh', () => {
  const cacheFile = join(tempDir('pycache'), 'python.json');
  const order = pythonCandidates('linux');
  assert.deepEqual(order.slice(0, 2), ['python3', '/usr/bin/python3']);
  const asked: string[] = [];
  const probe = (p: string): Probe => (asked.push(p), p === '/usr/bin/python3' ? found('/usr/bin/python3.11') : { error: "No module named 'torch'" });
  const first = findPython({ env: {}, platform: 'linux', cacheFile, probe });
  assert.deepEqual(asked, ['python3', '/usr/bin/python3']);
  assert.deepEqual([first.python, first.source, first.torchVersion, first.pythonVersion], ['/usr/bin/python3.11', 'found', '2.1.0', '3.11.2']);
  assert.match(first.how, /first of python3, \/usr\/bin\/python3, .* that imports torch/);
  assert.equal(JSON.parse(readFileSync(cacheFile, 'utf8')).torch, '2.1.0');

  const cached = findPython({ env: {}, platform: 'linux', cacheFile, probe: () => assert.fail('answered from the cache') });
  assert.equal(cached.python, '/usr/bin/python3.11');
  asked.length = 0;
  findPython({ env: {}, platform: 'linux', cacheFile, probe, refresh: true });
  assert.deepEqual(asked, ['python3', '/usr/bin/python3'], 'refresh probes again');

  // A cache whose torch has gone is ignored.
  writeFileSync(cacheFile, JSON.stringify({ ...JSON.parse(readFileSync(cacheFile, 'utf8')), torchFile: '/gone/torch/__init__.py' }));
  asked.length = 0;
  findPython({ env: {}, platform: 'linux', cacheFile, probe });
  assert.equal(asked.length, 2);
});

test('when no candidate has torch the error lists what was tried and how to fix it', () => {
  const probe = (p: string): Probe => ({ error: p === 'python' ? 'not found' : "ModuleNotFoundError: No module named 'torch'" });
  assert.throws(() => findPython({ env: {}, platform: 'linux', cacheFile: null, probe }), (e: Error) => {
    assert.ok(e instanceof PythonNotFound);
    for (const c of pythonCandidates('linux')) assert.ok(e.message.includes(`${c} (`), c);
    assert.match(e.message, /python \(not found\)/);
    assert.match(e.message, /apt-get install python3-torch.*pip install torch.*--python PATH, CNX_PYTHON=PATH or the workbench's Settings/);
    return true;
  });
  assert.deepEqual(probeTorch('/nonexistent/python3'), { error: 'not found' });
});

test('cnx infer --engine torch and cnx doctor work where only the second candidate (/usr/bin/python3) has torch', async (t) => {
  const second = probeTorch('/usr/bin/python3');
  if ('error' in second) {
    if (process.env.CI === 'true') throw new Error(`CI=true and /usr/bin/python3 cannot import torch: ${second.error}`);
    return t.skip(`/usr/bin/python3 cannot import torch (${second.error})`);
  }
  const dir = tempDir('py-second');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // The first candidate, `python3` on the PATH, is a Python without torch.
  writeFileSync(join(bin, 'python3'), `#!/bin/sh\necho "ModuleNotFoundError: No module named 'torch'" >&2\nexit 1\n`);
  chmodSync(join(bin, 'python3'), 0o755);
  const specs = convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 3 });
  const values = initParams(specs, 5);
  await saveCheckpoint(join(dir, 'w.safetensors'), new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])), {});
  writeNpy(join(dir, 'x.npy'), { dtype: 'float32', shape: [1, 3, 64, 64], data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i)) });
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, XDG_CACHE_HOME: join(dir, 'cache'), OMP_NUM_THREADS: '1' };
  delete env.CNX_PYTHON;
  const cnx = (args: string[]) => spawnSync(process.execPath, [join(REPO, 'bin', 'cnx.mjs'), ...args], { encoding: 'utf8', env, cwd: dir });
  const common = ['infer', '--arch', 'convnextv2_atto', '--weights', 'w.safetensors', '--input', 'x.npy'];
  const torch = cnx([...common, '--engine', 'torch', '--output', 'torch.npy']);
  assert.equal(torch.status, 0, torch.stderr);
  assert.ok(existsSync(join(dir, 'cache', 'convnext-workbench', 'python.json')), 'the found interpreter is cached');
  assert.equal(cnx([...common, '--output', 'onnx.npy']).status, 0);
  const [a, b] = [readNpy(join(dir, 'torch.npy')), readNpy(join(dir, 'onnx.npy'))];
  assert.deepEqual(a.shape, [1, 3]);
  // Both engines in float32: logits of order 1 agree to well under 1e-3.
  (a.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - (b.data as Float32Array)[i]!) < 1e-3, `logit ${i}: ${v} vs ${(b.data as Float32Array)[i]}`));

  const doctor = cnx(['doctor', '--json']);
  assert.equal(doctor.status, 0, doctor.stderr);
  const info = JSON.parse(doctor.stdout);
  assert.equal(info.torch.interpreter, second.executable);
  assert.equal(info.torchEngineUsable, true);
  assert.match(info.torch.how, /first of python3, \/usr\/bin\/python3/);
});
