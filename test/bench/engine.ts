// `npm run bench:engine [-- --job finetune|fcmae|all --arch convnextv2_atto --batch 32 --size 224 --steps 5]`
// Times one training step (forward + backward + AdamW) on the ONNX engine's CPU EP and the same step in
// eager PyTorch on the CPU with the same thread count, in the same run. Last line: JSON with the ratio.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { torchPython } from '../helpers/python.ts';
import { createTrainer } from '../../native-worker/jobs/trainer.ts';
import { randomMask } from '../../native-worker/nn/fcmae.ts';
import { Rng } from '../../native-worker/nn/random.ts';

const { values: a } = parseArgs({
  options: {
    job: { type: 'string', default: 'all' },
    arch: { type: 'string', default: 'convnextv2_atto' },
    batch: { type: 'string', default: '32' },
    size: { type: 'string', default: '224' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string', default: String(Math.min(availableParallelism(), 16)) },
    profile: { type: 'string' },
  },
});
const batch = Number(a.batch);
const size = Number(a.size);
const threads = Number(a.threads);
const steps = Number(a.steps);
const warmup = Number(a.warmup);
const jobs = a.job === 'all' ? (['finetune', 'fcmae'] as const) : [a.job as 'finetune' | 'fcmae'];

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;

async function ours(kind: 'finetune' | 'fcmae') {
  const t0 = performance.now();
  const trainer = await createTrainer({ kind, arch: a.arch!, batch, size, numClasses: 1000, threads, seed: 0, ...(a.profile ? { profile: a.profile } : {}) });
  const buildMs = performance.now() - t0;
  const rng = new Rng(1);
  const image = Float32Array.from({ length: batch * 3 * size * size }, () => rng.normal());
  const target = new Float32Array(batch * 1000);
  for (let i = 0; i < batch; i++) target[i * 1000 + rng.int(1000)] = 1;
  const l = (size / 32) ** 2;
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const r = await trainer.step(1e-4, kind === 'fcmae' ? { image, mask: randomMask(rng, batch, l, 0.6) } : { image, target });
    if (!Number.isFinite(r.loss)) throw new Error(`non-finite loss at step ${i}`);
    if (i >= warmup) times.push(r.ms);
  }
  const ms = median(times);
  return { impl: 'onnx engine (onnxruntime-node cpu)', build_ms: Math.round(buildMs), ms_per_step: Math.round(ms * 10) / 10, img_per_s: Math.round((batch / ms) * 1e5) / 100 };
}

function reference(kind: 'finetune' | 'fcmae') {
  const py = torchPython();
  if (!('python' in py)) throw new Error(py.reason);
  const r = spawnSync(py.python, ['test/bench/torch_step.py', '--job', kind, '--arch', a.arch!, '--batch', String(batch), '--size', String(size), '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`torch_step.py failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { img_per_s: number; ms_per_step: number; peak_rss_mb: number; impl: string };
}

const results = [];
for (const kind of jobs) {
  const o = await ours(kind);
  const rss = process.resourceUsage().maxRSS / 1024;
  const t = reference(kind);
  const line = {
    job: kind, arch: a.arch, batch, size, threads,
    ours_img_s: o.img_per_s, torch_img_s: t.img_per_s, ratio: Math.round((o.img_per_s / t.img_per_s) * 1000) / 1000,
    ours_ms_per_step: o.ms_per_step, torch_ms_per_step: t.ms_per_step, ours_build_ms: o.build_ms,
    ours_peak_rss_mb: Math.round(rss), torch_peak_rss_mb: t.peak_rss_mb, torch_impl: t.impl,
  };
  console.log(JSON.stringify(line));
  results.push(line);
}
if (results.length > 1) {
  const first = results[0]!;
  console.log(JSON.stringify({ ours_img_s: first.ours_img_s, torch_img_s: first.torch_img_s, ratio: first.ratio, jobs: results.map(({ job, ours_img_s, torch_img_s, ratio }) => ({ job, ours_img_s, torch_img_s, ratio })) }));
}
