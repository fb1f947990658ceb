// Whole runs agree between engines: the same short fine-tuning job (convnextv2_atto at 32 px on a
// Fashion-MNIST slice, the paper's augmentation: RandomResizedCrop, flip, rand-m9-mstd0.5-inc1, erasing
// 0.25, label smoothing 0.1) on the ONNX engine and on the PyTorch engine, same seed. Random streams differ
// between engines (loader draws, init, drop path), so the runs are two draws from what should be one
// distribution, and the check is statistical.
//
// Tolerance, from the seed-to-seed spread of this job on one engine (SPREAD below; measured with seeds 0-3
// on the PyTorch engine, one thread each, see the numbers): two independent runs from one distribution
// differ by sd sqrt(2) * sigma; we allow 4 * sqrt(2) * sigma (a false failure has odds ~5e-5 per check
// for a normal difference; sigma from 4 seeds is itself uncertain, which the 4 absorbs). Before the loaders
// shared one augmentation definition the PyTorch engine's windowed loss was 0.25-0.30 lower (issue 11),
// several times these bounds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { JobConfigInput } from '../../common/job.ts';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';
import { EventSink } from '../../native-worker/jobs/events.ts';
import { runJob } from '../../native-worker/jobs/run-job.ts';
import { fashionManifest, haveFashion, FASHION } from '../helpers/fashion.ts';
import { removeDir, tempDir } from '../helpers/images.ts';
import { needTorch } from '../helpers/python.ts';

const STEPS = 120;
const WINDOW = 40;
/**
 * Seed-to-seed standard deviation on the PyTorch engine (sample sd over data.seed 0-3, which seeds init,
 * batch order, augmentation and drop path), per 40-step loss window and of the final test top-1. Measured:
 * windows 2.438/2.339/2.276, 2.444/2.341/2.255, 2.373/2.266/2.188, 2.436/2.279/2.187; top-1 0.297, 0.160,
 * 0.347, 0.383. Bounds 4 * sqrt(2) * sd: 0.19, 0.22, 0.26 on the windows, 0.55 on top-1 (after 120 steps
 * the accuracy is still early in its climb and varies most; the loss windows carry the check).
 */
const SPREAD = { window: [0.0331, 0.0391, 0.0460], top1: 0.0978 };

let dir = '';
let manifest = '';

before(async () => {
  dir = tempDir('agreement');
  if (haveFashion()) manifest = await fashionManifest(join(dir, 'data'), 100, 30);
});
after(() => removeDir(dir));

const job = (runDir: string): JobConfigInput => ({
  version: 1, kind: 'finetune', runDir,
  model: { arch: 'convnextv2_atto', numClasses: 10, inputSize: 32, dropPathRate: 0.1 },
  data: { manifest, batchSize: 16, workers: 0, seed: 0, evalSplit: 'test' },
  optim: { lr: 2e-3, totalSteps: STEPS, warmupSteps: Math.round(STEPS / 10), weightDecay: 0.05, labelSmoothing: 0.1 },
  checkpointEverySteps: STEPS, evalEverySteps: STEPS, device: 'cpu',
});

interface Curve {
  windows: number[];
  top1: number;
}

function curve(events: JobEvent[]): Curve {
  assert.deepEqual(events.at(-1), { v: 1, type: 'done', status: 'completed' }, JSON.stringify(events.filter((e) => e.type === 'error')));
  const losses = events.flatMap((e) => (e.type === 'metrics' ? [e.values.loss!] : []));
  assert.equal(losses.length, STEPS);
  const windows = Array.from({ length: STEPS / WINDOW }, (_, i) => losses.slice(i * WINDOW, (i + 1) * WINDOW).reduce((a, b) => a + b, 0) / WINDOW);
  const top1 = events.flatMap((e) => (e.type === 'eval' && e.top1 !== null ? [e.top1] : [])).at(-1);
  assert.ok(top1 !== undefined, 'the run evaluated on the test split');
  return { windows, top1 };
}

const parse = (text: string): JobEvent[] => text.split('\n').filter(Boolean).map((l) => parseEventLine(l) ?? assert.fail(`not an event: ${l}`));

test('the same short fine-tuning job gives the same loss curve and accuracy on both engines', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  if (!haveFashion()) {
    if (process.env.CI === 'true') throw new Error(`CI=true and ${FASHION} is missing`);
    return t.skip(`${FASHION} not found; apt-get install dataset-fashion-mnist`);
  }
  let text = '';
  await runJob(job(join(dir, 'onnx')), { sink: new EventSink({ write: (s: string) => ((text += s), true) }), signal: new AbortController().signal, threads: 1 });
  const onnx = curve(parse(text));
  // One thread: on a shared CPU, torch's OpenMP threads spin against each other and a step takes 10x longer.
  const r = spawnSync(python, ['native-worker/torch/run_job.py', '-'], { input: JSON.stringify(job(join(dir, 'torch'))), encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const torch = curve(parse(r.stdout));
  t.diagnostic(`windowed mean loss onnx ${onnx.windows.map((x) => x.toFixed(3)).join(' ')} | torch ${torch.windows.map((x) => x.toFixed(3)).join(' ')}; test top-1 onnx ${onnx.top1.toFixed(3)} torch ${torch.top1.toFixed(3)}`);
  const bound = (sigma: number) => 4 * Math.SQRT2 * sigma;
  onnx.windows.forEach((w, i) => assert.ok(Math.abs(w - torch.windows[i]!) <= bound(SPREAD.window[i]!), `loss window ${i + 1} (steps ${i * WINDOW + 1}-${(i + 1) * WINDOW}): onnx ${w.toFixed(3)} vs torch ${torch.windows[i]!.toFixed(3)}, bound ${bound(SPREAD.window[i]!).toFixed(3)}`));
  assert.ok(Math.abs(onnx.top1 - torch.top1) <= bound(SPREAD.top1), `test top-1: onnx ${onnx.top1} vs torch ${torch.top1}, bound ${bound(SPREAD.top1).toFixed(3)}`);
});
