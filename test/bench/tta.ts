// `npm run bench:tta [-- --epochs 4 --batch 64 --size 32 --evals-per-epoch 2 --target 0.9 --engines onnx,torch --together --extra='--lr 3e-3']`
// Time to accuracy, as a user meets it: convnextv2_atto from scratch on Fashion-MNIST (imported from
// /usr/share/datasets with `cnx dataset import` into a cached workspace) with the default recipe the
// resolver picks (the short-run recipe for a few epochs), one `cnx finetune` per engine in this run. Wall
// time counts everything the user waits for: process start, graph build, loader, training and the test-split
// evaluations. Reported per engine: seconds until test top-1 >= the target (90% unless --target says
// otherwise; null if never), final top-1 after the fixed budget, total wall time, and the loss curve: the mean
// of the logged training losses between evaluations. Last line: JSON with both and ratio = ONNX time to
// target / PyTorch time to target.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseEventLine } from '../../common/protocol.ts';
import { torchPython } from '../helpers/python.ts';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '4' },
    batch: { type: 'string', default: '64' },
    size: { type: 'string', default: '32' },
    'evals-per-epoch': { type: 'string', default: '2' },
    engines: { type: 'string', default: 'onnx,torch' },
    target: { type: 'string', default: '0.9' },
    source: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    cache: { type: 'string', default: process.env.CNX_BENCH_CACHE ?? join(tmpdir(), 'cnx-bench-tta') },
    extra: { type: 'string', default: '' },
    // Both engines at once: on a machine others share, each then sees the same load (the ratio is fair,
    // the absolute times are those of two runs sharing the CPU).
    together: { type: 'boolean', default: false },
  },
});
const CNX = join(import.meta.dirname, '..', '..', 'bin', 'cnx.mjs');
const workspace = join(a.cache!, 'workspace');
const TRAIN_IMAGES = 60_000;
const target = Number(a.target);

/** Imports Fashion-MNIST once into the cached workspace (its idx files become PNGs in the catalog) and
 * freezes its manifest, which every run then reads. */
function ensureDataset(): string {
  const manifest = join(a.cache!, 'fmnist.manifest.json');
  const marker = join(a.cache!, 'fmnist.imported');
  if (existsSync(manifest)) return manifest;
  if (existsSync(marker)) return exportManifest(manifest);
  if (!existsSync(a.source!)) throw new Error(`${a.source}: no Fashion-MNIST idx files (Debian package dataset-fashion-mnist)`);
  mkdirSync(workspace, { recursive: true });
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CNX, 'dataset', 'import', a.source!, '--name', 'fmnist', '--workspace', workspace], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cnx dataset import failed (${r.status})`);
  console.log(`imported Fashion-MNIST in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  writeFileSync(marker, new Date().toISOString());
  return exportManifest(manifest);
}

function exportManifest(file: string): string {
  const r = spawnSync(process.execPath, [CNX, 'dataset', 'export-manifest', 'fmnist', file, '--workspace', workspace], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cnx dataset export-manifest failed (${r.status})`);
  return file;
}

interface EngineResult {
  timeToTargetSec: number | null;
  finalTop1: number | null;
  bestTop1: number | null;
  wallSec: number;
  /** [step, test top-1, seconds since start] per evaluation. */
  evals: [number, number, number][];
  /** [first step, last step, mean logged training loss] per stretch between evaluations. */
  loss: [number, number, number][];
  recipe: string;
}

/** One `cnx finetune` on an engine, timed from the spawn to the process exit. */
function finetune(engine: 'onnx' | 'torch', manifest: string, python: string | null): Promise<EngineResult> {
  const batch = Number(a.batch);
  // Rounded up, so that the last periodic evaluation is not a step before the final one.
  const evalEvery = Math.max(1, Math.ceil(Math.floor(TRAIN_IMAGES / batch) / Number(a['evals-per-epoch'])));
  const runDir = join(a.cache!, 'runs', `${engine}-${Date.now()}`);
  const args = [CNX, 'finetune', '--manifest', manifest, '--run-dir', runDir, '--arch', 'convnextv2_atto', '--size', a.size!, '--batch', a.batch!,
    '--epochs', a.epochs!, '--eval-every', String(evalEvery), '--eval-split', 'test', '--engine', engine, '--device', 'cpu', '--json', ...(python ? ['--python', python] : []),
    ...a.extra!.split(' ').filter(Boolean)];
  const res: EngineResult = { timeToTargetSec: null, finalTop1: null, bestTop1: null, wallSec: 0, evals: [], loss: [], recipe: '' };
  const window = { first: 0, last: 0, sum: 0, n: 0 };
  const closeWindow = () => {
    if (window.n) res.loss.push([window.first, window.last, Number((window.sum / window.n).toFixed(4))]);
    Object.assign(window, { first: 0, last: 0, sum: 0, n: 0 });
  };
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let buffer = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    const m = /recipe: (.*)/.exec(s);
    if (m) res.recipe = m[1]!;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const l of lines) {
      const e = parseEventLine(l);
      if (e?.type === 'error') console.log(`${engine}: error: ${e.message}`);
      if (e?.type === 'metrics' && typeof e.values.loss === 'number') {
        if (!window.n) window.first = e.step;
        Object.assign(window, { last: e.step, sum: window.sum + e.values.loss, n: window.n + 1 });
      }
      if (e?.type === 'progress' && e.step % 200 === 0) console.log(`${engine}: step ${e.step}/${e.totalSteps}  ${(e.imagesPerSec ?? 0).toFixed(0)} img/s  at ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      if (e?.type !== 'eval' || e.weights !== 'model' || e.top1 === null) continue;
      closeWindow();
      const sec = (performance.now() - t0) / 1000;
      res.evals.push([e.step, e.top1, Number(sec.toFixed(1))]);
      res.finalTop1 = e.top1;
      res.bestTop1 = Math.max(res.bestTop1 ?? 0, e.top1);
      if (res.timeToTargetSec === null && e.top1 >= target) res.timeToTargetSec = Number(sec.toFixed(1));
      console.log(`${engine}: step ${e.step}  test top-1 ${(e.top1 * 100).toFixed(2)}%  at ${sec.toFixed(0)} s`);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      res.wallSec = Number(((performance.now() - t0) / 1000).toFixed(1));
      closeWindow();
      if (code !== 0) console.log(`${engine}: cnx finetune exited with ${code}:\n${stderr.slice(-2000)}`);
      resolve(res);
    });
  });
}

const manifest = ensureDataset();
const engines = a.engines!.split(',') as ('onnx' | 'torch')[];
const found = torchPython();
const python = engines.includes('torch') && 'python' in found ? found.python : null;
const results: Partial<Record<'onnx' | 'torch', EngineResult>> = {};
const runnable = engines.filter((e) => e !== 'torch' || python || (console.log('torch: skipped (no Python with torch found)'), false));
const one = async (engine: 'onnx' | 'torch') => {
  results[engine] = await finetune(engine, manifest, python);
  console.log(`${engine}: ${results[engine]!.recipe}`);
};
if (a.together) await Promise.all(runnable.map(one));
else for (const engine of runnable) await one(engine);
const o = results.onnx?.timeToTargetSec ?? null;
const t = results.torch?.timeToTargetSec ?? null;
const strip = (r: EngineResult | undefined) => (r ? { timeToTargetSec: r.timeToTargetSec, finalTop1: r.finalTop1, bestTop1: r.bestTop1, wallSec: r.wallSec, evals: r.evals, loss: r.loss } : null);
console.log(JSON.stringify({
  bench: 'tta', arch: 'convnextv2_atto', dataset: 'fashion-mnist', size: Number(a.size), batch: Number(a.batch), epochs: Number(a.epochs), target, together: a.together,
  onnx: strip(results.onnx), torch: strip(results.torch), ratio: o !== null && t !== null ? Number((o / t).toFixed(3)) : null,
}));
