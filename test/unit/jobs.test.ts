// Jobs on the ONNX engine through the worker protocol, on a small PNG dataset: FCMAE pretraining with
// checkpoints, resume, fine-tuning from the pretrained encoder with evaluation, an eval job, config errors;
// and checkpoints moving between the ONNX and PyTorch engines in both directions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { JobConfigInput } from '../../common/job.ts';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';
import { EventSink } from '../../native-worker/jobs/events.ts';
import { runJob } from '../../native-worker/jobs/run-job.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { needTorch } from '../helpers/python.ts';

let dir = '';
let manifest = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cnx-jobs-'));
  manifest = await textureDataset(join(dir, 'data'), 32, 8, 3);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function onnx(config: JobConfigInput, signal = new AbortController().signal): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  const sink = new EventSink({ write: (s: string) => (s.split('\n').filter(Boolean).forEach((l) => events.push(parseEventLine(l) ?? assert.fail(`not an event: ${l}`))), true) });
  await runJob(config, { sink, signal, threads: 2 });
  return events;
}

const base = (kind: 'pretrain' | 'finetune' | 'eval', runDir: string, extra: Partial<JobConfigInput> = {}): JobConfigInput => ({
  version: 1, kind, runDir,
  model: { arch: 'convnextv2_atto', numClasses: kind === 'pretrain' ? 0 : 4, inputSize: kind === 'pretrain' ? 64 : 32 },
  data: { manifest, batchSize: 8, workers: 0, seed: 3 },
  ...(kind === 'eval' ? {} : { optim: { lr: 1e-3, totalSteps: 4, warmupSteps: 1 }, checkpointEverySteps: 2 }),
  ...extra,
});

const of = <T extends JobEvent['type']>(events: JobEvent[], type: T) => events.filter((e): e is Extract<JobEvent, { type: T }> => e.type === type);

test('FCMAE pretraining: events in order, checkpoints every 2 steps, last.json; resume continues at step 4', async () => {
  const runDir = join(dir, 'pre');
  const events = await onnx(base('pretrain', runDir));
  assert.equal(events[0]!.type, 'started', JSON.stringify(events.slice(0, 3)));
  assert.deepEqual(of(events, 'metrics').map((e) => e.step), [1, 2, 3, 4]);
  assert.deepEqual(of(events, 'checkpoint').map((e) => e.step), [2, 4]);
  assert.deepEqual(events.at(-1), { v: 1, type: 'done', status: 'completed' });
  const last = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8'));
  assert.deepEqual(last, { step: 4, weights: 'step-4.safetensors', state: 'step-4.state.safetensors' });
  assert.ok(of(events, 'metrics').every((e) => Number.isFinite(e.values.loss)));
  // Reconstructions of the same images at every checkpoint: 4 rows x (original|masked|reconstruction|pasted).
  const samples = of(events, 'sample');
  assert.deepEqual(samples.map((e) => [e.step, e.kind]), [[2, 'reconstruction'], [4, 'reconstruction']]);
  const meta = await sharp(samples[1]!.path).metadata();
  assert.deepEqual([meta.width, meta.height], [4 * 64, 4 * 64]);

  const resumed = await onnx(base('pretrain', runDir, { optim: { lr: 1e-3, totalSteps: 6, warmupSteps: 1 }, resume: join(runDir, 'checkpoints', 'last.json') }));
  assert.deepEqual(of(resumed, 'metrics').map((e) => e.step), [5, 6], JSON.stringify(of(resumed, 'error')));
  assert.match(of(resumed, 'log').map((e) => e.message).join('\n'), /resumed from .*step-4\.state\.safetensors at step 4/);
});

test('fine-tuning from the FCMAE encoder evaluates on val (top-1, confusion), keeps best.json; an eval job agrees', async () => {
  const runDir = join(dir, 'ft');
  const events = await onnx(base('finetune', runDir, { init: { weights: join(dir, 'pre', 'checkpoints', 'step-4.safetensors') }, evalEverySteps: 2, optim: { lr: 1e-3, totalSteps: 4, warmupSteps: 1, emaDecay: 0.9 } }));
  assert.deepEqual(of(events, 'error'), []);
  assert.match(of(events, 'log').map((e) => e.message).join('\n'), /initialized \d+ of \d+ tensors from .*step-4\.safetensors/);
  const evals = of(events, 'eval');
  assert.deepEqual(evals.map((e) => [e.step, e.weights]), [[2, 'model'], [2, 'ema'], [4, 'model'], [4, 'ema']]);
  for (const e of evals) {
    assert.equal(e.images, 12);
    assert.equal(e.confusion.length, 4);
    assert.equal(e.confusion.flat().reduce((a, b) => a + b, 0), 12);
    assert.ok(e.top1! >= 0 && e.top1! <= 1 && e.top5 === 1);
  }
  const best = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'best.json'), 'utf8'));
  assert.ok(existsSync(join(runDir, 'checkpoints', best.weights)));
  const bestEval = evals.filter((e) => e.weights === 'model' && e.step === best.step)[0]!;

  // Each model evaluation names its misclassified images: exactly the off-diagonal counts of its matrix.
  const samples = of(events, 'sample').filter((e) => e.kind === 'mistakes');
  assert.deepEqual(samples.map((e) => e.step), [2, 4]);
  for (const e of evals.filter((x) => x.weights === 'model')) {
    const file = JSON.parse(readFileSync(join(runDir, 'evals', `step-${e.step}.json`), 'utf8'));
    assert.equal(file.split, 'val');
    const counted = e.confusion.map((row) => row.map(() => 0));
    for (const m of file.mistakes) {
      assert.notEqual(m.label, m.pred);
      assert.ok(existsSync(join(dir, 'data', m.path)), `${m.path} is a dataset-relative path`);
      counted[m.label]![m.pred]!++;
    }
    assert.deepEqual(counted, e.confusion.map((row, t) => row.map((v, p) => (t === p ? 0 : v))));
  }

  const ev = await onnx(base('eval', join(dir, 'ev'), { init: { weights: join(runDir, 'checkpoints', 'best.json') } }));
  const [only] = of(ev, 'eval');
  assert.deepEqual(only!.confusion, bestEval.confusion);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ev', 'evals', 'step-0.json'), 'utf8')).mistakes, JSON.parse(readFileSync(join(runDir, 'evals', `step-${best.step}.json`), 'utf8')).mistakes);
});

test('a bad config or bad weights fail with a clear error event and done: failed', async () => {
  const bad = await onnx({ ...base('finetune', join(dir, 'bad')), model: { arch: 'convnextv2_atto', numClasses: 4, inputSize: 48 } });
  assert.deepEqual(bad.map((e) => e.type), ['error', 'done']);
  assert.match((bad[0] as Extract<JobEvent, { type: 'error' }>).message, /^model\.inputSize: must be a multiple of 32/);
  const tiny = await onnx(base('pretrain', join(dir, 'bad3'), { model: { arch: 'convnextv2_atto', numClasses: 0, inputSize: 32 } }));
  assert.match(of(tiny, 'error')[0]!.message, /^model\.inputSize: FCMAE at 32 px has 1 patches and mask ratio 0\.6 keeps 0/);
  const wrong = await onnx(base('finetune', join(dir, 'bad2'), { model: { arch: 'convnextv2_atto', numClasses: 7, inputSize: 32 } }));
  assert.match(of(wrong, 'error')[0]!.message, /manifest\.json: the dataset has 4 classes, the model 7/);
});

test('cancelling mid-run checkpoints the step reached and reports cancelled', async () => {
  const abort = new AbortController();
  const events: JobEvent[] = [];
  const sink = new EventSink({ write: (s: string) => (s.split('\n').filter(Boolean).forEach((l) => {
    const e = parseEventLine(l)!;
    events.push(e);
    if (e.type === 'metrics' && e.step === 2) abort.abort();
  }), true) });
  await runJob(base('pretrain', join(dir, 'cancel'), { optim: { lr: 1e-3, totalSteps: 50 }, checkpointEverySteps: 100 }), { sink, signal: abort.signal, threads: 2 });
  assert.deepEqual(of(events, 'checkpoint').map((e) => e.step), [2]);
  assert.deepEqual(events.at(-1), { v: 1, type: 'done', status: 'cancelled' });
});

test('checkpoints move between engines: PyTorch resumes an ONNX run, the ONNX engine resumes and evaluates a PyTorch run', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const torchRun = (config: JobConfigInput): JobEvent[] => {
    const r = spawnSync(python, ['native-worker/torch/run_job.py', '-'], { input: JSON.stringify(config), encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
    const events = r.stdout.split('\n').filter(Boolean).map((l) => parseEventLine(l)!);
    assert.equal(r.status, 0, `${r.stderr}\n${JSON.stringify(of(events, 'error'))}`);
    return events;
  };
  const onnxDir = join(dir, 'x-onnx');
  await onnx(base('finetune', onnxDir, { optim: { lr: 1e-3, totalSteps: 2 } }));
  const cont = torchRun(base('finetune', onnxDir, { optim: { lr: 1e-3, totalSteps: 4 }, resume: join(onnxDir, 'checkpoints', 'last.json'), device: 'cpu' }));
  assert.deepEqual(of(cont, 'metrics').map((e) => e.step), [3, 4]);

  const torchDir = join(dir, 'x-torch');
  torchRun(base('finetune', torchDir, { optim: { lr: 1e-3, totalSteps: 2 }, device: 'cpu' }));
  const back = await onnx(base('finetune', torchDir, { optim: { lr: 1e-3, totalSteps: 4 }, resume: join(torchDir, 'checkpoints', 'last.json') }));
  assert.deepEqual(of(back, 'metrics').map((e) => e.step), [3, 4], JSON.stringify(of(back, 'error')));
  const [onnxEval] = of(await onnx(base('eval', join(dir, 'x-eval'), { init: { weights: join(torchDir, 'checkpoints', 'step-2.safetensors') } })), 'eval');
  const [torchEval] = of(torchRun(base('eval', join(dir, 'x-eval-t'), { init: { weights: join(torchDir, 'checkpoints', 'step-2.safetensors') }, device: 'cpu' })), 'eval');
  // Same weights and images; the engines' resizers (sharp vs PIL) differ slightly, so a barely trained model
  // may flip borderline predictions: the labels seen must agree exactly (numerics are held to 1e-4 on
  // identical tensors in model-parity.test.ts).
  const rowSums = (m: number[][]) => m.map((r) => r.reduce((a, b) => a + b, 0));
  assert.equal(onnxEval!.images, torchEval!.images);
  assert.deepEqual(rowSums(onnxEval!.confusion), rowSums(torchEval!.confusion));
});

test('evaluating every N steps on a split the dataset lacks fails before training, naming both fixes', async () => {
  const events = await onnx(base('finetune', join(dir, 'nosplit'), { data: { manifest, batchSize: 8, workers: 0, seed: 3, evalSplit: 'test' }, evalEverySteps: 2 }));
  assert.deepEqual(events.map((e) => e.type), ['error', 'done']);
  assert.match(of(events, 'error')[0]!.message, /evalEverySteps is set but the dataset has no test images to evaluate on; split some off \(cnx dataset split NAME --val 0\.1\) or evaluate on the test split/);
});
