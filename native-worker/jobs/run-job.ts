// Runs a job config (common/job.ts) on the ONNX engine: FCMAE pretraining, fine-tuning or evaluation on a
// dataset manifest, speaking the event protocol (common/protocol.ts) and writing the run files that the
// PyTorch engine writes too (run-files.ts), so either engine can resume or evaluate the other's checkpoints.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError } from '../../common/errors.ts';
import { type JobConfig, JobConfigError, parseJobConfig, processesPerNode } from '../../common/job.ts';
import type { Manifest } from '../../common/manifest.ts';
import { type Arch, parseArch } from '../../common/variants.ts';
import { loadCheckpoint } from '../checkpoint/load.ts';
import { type Tensor, makeTensor } from '../checkpoint/tensor.ts';
import { readManifest } from '../data/manifest.ts';
import { type Loader, createLoader } from '../data/pipeline/loader.ts';
import { chooseProvider, type ProviderChoice } from '../engine/runtime.ts';
import { blockCount, convnextParams } from '../nn/convnext.ts';
import { FCMAE_DEFAULTS, type FcmaeConfig, fcmaeParams, randomMask } from '../nn/fcmae.ts';
import { type ParamSpec, type ParamValues, initParams } from '../nn/params.ts';
import { Rng } from '../nn/random.ts';
import { lrAt } from '../optim/recipes.ts';
import { EvalAccumulator, type EvalMetrics, Evaluator, type Mistake } from './evaluate.ts';
import type { EventSink } from './events.ts';
import { Reconstructor } from './inference.ts';
import { dropPathFactors, mixBatch } from './mixup.ts';
import { reconstructionGrid } from './reconstruction-images.ts';
import { readRunState, readWeights, resolveResume, rngTensor, saveRunCheckpoint, writeJsonAtomic } from './run-files.ts';
import { type Batch, createTrainer, dropPathRates } from './trainer.ts';

export type JobStatus = 'completed' | 'cancelled' | 'failed';

export interface RunOptions {
  readonly sink: EventSink;
  readonly signal: AbortSignal;
  /** CPU threads for onnxruntime (0: one per core). */
  readonly threads?: number;
}

/** A failure the user can act on (bad weights, mismatched manifest): reported without a stack trace. */
export class JobError extends UserError {
  override name = 'JobError';
}

/** Runs the job to its end; never throws: failures become an `error` event and `done` failed. */
export async function runJob(raw: unknown, o: RunOptions): Promise<JobStatus> {
  const { sink } = o;
  let status: JobStatus = 'failed';
  try {
    const cfg = parseJobConfig(raw);
    if (processesPerNode(cfg) > 1) throw new JobError(`a data-parallel run (${processesPerNode(cfg)} processes) needs the PyTorch engine; this is the ONNX engine`);
    status = await (cfg.kind === 'eval' ? evaluateJob(cfg, o) : train(cfg, o));
  } catch (e) {
    sink.emit('error', { message: (e as Error).message, detail: e instanceof UserError ? '' : ((e as Error).stack ?? ''), ...(e instanceof JobConfigError ? { field: e.field } : {}) });
    status = 'failed';
  }
  sink.emit('done', { status });
  return status;
}

/** A weights file, or the one a run's last.json / best.json points at. */
const weightsFile = (path: string): string => (path.endsWith('.json') ? resolveResume(path).weights : path);

const provider = (cfg: JobConfig): ProviderChoice => (cfg.device === 'cuda' ? 'cuda' : cfg.device === 'cpu' ? 'cpu' : 'auto');

async function loadManifest(cfg: JobConfig): Promise<Manifest> {
  const m = await readManifest(cfg.data.manifest);
  if (cfg.kind !== 'pretrain' && m.classes.length !== cfg.model.numClasses) {
    throw new JobError(`${cfg.data.manifest}: the dataset has ${m.classes.length} classes, the model ${cfg.model.numClasses}`);
  }
  return m;
}

/** Starting weights: resumed, imported (`init.weights`: a fine-tune from an FCMAE checkpoint takes its encoder), or fresh. */
async function startWeights(cfg: JobConfig, specs: readonly ParamSpec[], sink: EventSink): Promise<ParamValues> {
  const fresh = initParams(specs, cfg.data.seed);
  if (!cfg.init.weights) return fresh;
  const loaded = await loadCheckpoint(weightsFile(cfg.init.weights));
  const wanted = new Set(specs.map((s) => s.name));
  const pretrain = cfg.kind === 'pretrain';
  let taken = 0;
  for (const [name, t] of loaded.tensors) {
    // FCMAE files name the encoder `encoder.*`: fine-tuning takes it without the prefix, and pretraining
    // from a classifier or encoder-only file puts its weights under it.
    const target = pretrain ? (loaded.arch.decoder ? name : `encoder.${name}`) : name.replace(/^encoder\./, '');
    if (!wanted.has(target) || t.dtype !== 'float32') continue;
    const spec = specs.find((s) => s.name === target)!;
    if (t.data.length !== fresh.get(target)!.length) {
      sink.log(`${cfg.init.weights}: ${name} has shape [${t.shape.join(', ')}], the model [${spec.shape.join(', ')}]; kept freshly initialized`, 'warning');
      continue;
    }
    fresh.set(target, t.data);
    taken++;
  }
  if (!taken) throw new JobError(`${cfg.init.weights}: holds no weights of ${cfg.model.arch}`);
  sink.log(`initialized ${taken} of ${specs.length} tensors from ${cfg.init.weights}`);
  return fresh;
}

async function train(cfg: JobConfig, o: RunOptions): Promise<JobStatus> {
  const { sink } = o;
  const optim = cfg.optim!;
  if (cfg.precision !== 'fp32') sink.log(`precision ${cfg.precision} is a PyTorch-engine setting; the ONNX engine trains in fp32`, 'warning');
  mkdirSync(join(cfg.runDir, 'checkpoints'), { recursive: true });
  writeJsonAtomic(join(cfg.runDir, 'config.json'), cfg);
  const manifest = await loadManifest(cfg);
  const arch = parseArch(cfg.model.arch);
  const pretrain = cfg.kind === 'pretrain';
  const n = cfg.data.batchSize;
  const size = cfg.model.inputSize;
  const fcmae = { ...FCMAE_DEFAULTS, ...cfg.fcmae, arch, inputSize: size };
  const specs = pretrain ? fcmaeParams(fcmae) : convnextParams({ arch, numClasses: cfg.model.numClasses, headInitScale: cfg.model.headInitScale });

  let resume: { state: ParamValues; step: number } | undefined;
  let rng = new Rng(cfg.data.seed + 1);
  let microBatches = 0;
  let bestTop1: number | null = null;
  let initial: ParamValues;
  if (cfg.resume) {
    const paths = resolveResume(cfg.resume);
    const s = await readRunState(paths.state);
    for (const [k, want] of [['kind', cfg.kind], ['arch', cfg.model.arch], ['batchSize', n], ['seed', cfg.data.seed]] as const) {
      if (s.meta[k] !== want) throw new JobError(`${paths.state}: saved with ${k}=${JSON.stringify(s.meta[k])}, this config has ${JSON.stringify(want)}`);
    }
    initial = await readWeights(paths.weights);
    const state: ParamValues = new Map();
    for (const [k, v] of s.tensors) {
      const m = /^(optim)\.(.+)\.(exp_avg|exp_avg_sq)$/.exec(k) ?? /^(ema)\.(.+)()$/.exec(k);
      if (m) state.set(m[1] === 'ema' ? `${m[2]}.ema` : `${m[2]}.${m[3]}`, v);
    }
    if (optim.emaDecay !== null && !specs.every((p) => state.has(`${p.name}.ema`))) {
      sink.log('the resumed state has no EMA weights; EMA restarts from the current weights', 'warning');
      for (const p of specs) state.set(`${p.name}.ema`, initial.get(p.name)!);
    }
    resume = { state, step: s.meta.step };
    microBatches = s.meta.microBatches;
    bestTop1 = s.meta.bestTop1 ?? null;
    if (s.rng) rng = new Rng(s.rng);
    sink.log(`resumed from ${paths.state} at step ${s.meta.step}`);
  } else {
    initial = await startWeights(cfg, specs, sink);
  }

  const trainer = await createTrainer({
    kind: pretrain ? 'fcmae' : 'finetune',
    arch: cfg.model.arch,
    batch: n,
    size,
    numClasses: cfg.model.numClasses,
    seed: cfg.data.seed,
    provider: provider(cfg),
    ...(o.threads ? { threads: o.threads } : {}),
    dropPathRate: cfg.model.dropPathRate,
    headInitScale: cfg.model.headInitScale,
    weightDecay: optim.weightDecay,
    optim: { beta1: optim.betas[0], beta2: optim.betas[1], eps: optim.eps, clipGrad: optim.clipGrad },
    layerDecay: optim.layerDecay,
    ...(optim.layerDecayType ? { layerDecayType: optim.layerDecayType } : {}),
    emaDecay: optim.emaDecay,
    fcmae: { maskRatio: fcmae.maskRatio, decoderDim: fcmae.decoderDim, decoderDepth: fcmae.decoderDepth, normPixLoss: fcmae.normPixLoss },
    initial,
    accumSteps: optim.accumSteps,
    ...(resume ? { resume } : {}),
  });
  const params = specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  sink.emit('started', { engine: 'onnx', device: chooseProvider(provider(cfg)).chosen, params, kind: cfg.kind, arch: cfg.model.arch, onnxruntime: ort.env.versions.common });

  const trainCount = manifest.items.filter((i) => i.split === 'train').length;
  const perEpoch = Math.floor(trainCount / n);
  if (perEpoch < 1) throw new JobError(`${cfg.data.manifest}: ${trainCount} training images, fewer than one batch of ${n}`);
  const loader = createLoader({
    manifest, split: 'train', batchSize: n, size, train: true, mode: pretrain ? 'pretrain' : 'finetune', seed: cfg.data.seed, transform: cfg.data.augment,
    workers: cfg.data.workers, epochs: Math.ceil(((optim.totalSteps - (resume?.step ?? 0)) * optim.accumSteps) / perEpoch) + 1,
    resume: { epoch: Math.floor(microBatches / perEpoch), batch: microBatches % perEpoch },
  });
  const rates = dropPathRates(blockCount(arch), cfg.model.dropPathRate);
  const patches = (size / 32) ** 2;
  const shapes = new Map(specs.map((s) => [s.name, s.shape] as const));
  const evaluator = !pretrain && manifest.items.some((i) => i.split === cfg.data.evalSplit) ? lazyEvaluator(cfg, arch, manifest, o) : null;
  let savedStep = trainer.stepCount;
  // Pretraining shows its progress as reconstructions of the same images and masks at every checkpoint.
  const sampler = pretrain ? reconstructionSampler(fcmae, cfg, o, new Rng(cfg.data.seed + 7)) : null;

  const save = async (): Promise<void> => {
    if (savedStep === trainer.stepCount) return;
    const weights = await trainer.weights();
    const state = await trainer.state();
    const stateTensors = new Map<string, Tensor>();
    for (const [k, v] of state) {
      const m = /^(.+)\.(exp_avg|exp_avg_sq|ema)$/.exec(k)!;
      stateTensors.set(m[2] === 'ema' ? `ema.${m[1]}` : `optim.${m[1]}.${m[2]}`, makeTensor([...shapes.get(m[1]!)!], v));
    }
    for (const p of specs) stateTensors.set(`optim.${p.name}.step`, makeTensor([], Float32Array.of(trainer.stepCount)));
    stateTensors.set('rng.onnx', rngTensor(rng.state()));
    const r = await saveRunCheckpoint(
      join(cfg.runDir, 'checkpoints'),
      new Map([...weights].map(([k, v]) => [k, makeTensor([...shapes.get(k)!], v)])),
      { arch: cfg.model.arch, kind: cfg.kind, naming: pretrain ? 'fcmae' : 'timm', numClasses: String(cfg.model.numClasses), engine: 'onnx' },
      stateTensors,
      { step: trainer.stepCount, microBatches, kind: cfg.kind, arch: cfg.model.arch, batchSize: n, seed: cfg.data.seed, bestTop1 },
    );
    savedStep = trainer.stepCount;
    sink.emit('checkpoint', { step: trainer.stepCount, path: r.path, statePath: r.statePath });
    if (sampler) {
      const file = await sampler.render(weights, trainer.stepCount);
      if (file) sink.emit('sample', { step: trainer.stepCount, kind: 'reconstruction', path: file });
    }
  };

  const evaluate = async (): Promise<void> => {
    if (!evaluator) return;
    const weights = await trainer.weights();
    const r = await evaluator.run(weights, o.signal);
    if (!r) return;
    const { mistakes, ...m } = r;
    sink.emit('eval', { step: trainer.stepCount, weights: 'model', ...m });
    writeMistakes(sink, cfg, trainer.stepCount, mistakes);
    if (optim.emaDecay !== null) {
      const state = await trainer.state();
      const ema: ParamValues = new Map(specs.map((p) => [p.name, state.get(`${p.name}.ema`)!]));
      const e = await evaluator.run(ema, o.signal);
      if (e) {
        const { mistakes: _emaMistakes, ...em } = e;
        sink.emit('eval', { step: trainer.stepCount, weights: 'ema', ...em });
      }
    }
    if (m.top1 !== null && (bestTop1 === null || m.top1 > bestTop1)) {
      bestTop1 = m.top1;
      savedStep = -1; // the best pointer must name a checkpoint holding exactly these weights
      await save();
      const s = trainer.stepCount;
      writeJsonAtomic(join(cfg.runDir, 'checkpoints', 'best.json'), { step: s, weights: `step-${s}.safetensors`, state: `step-${s}.state.safetensors`, top1: m.top1 });
    }
  };

  let status: JobStatus = 'completed';
  let window = { images: 0, t: performance.now() };
  let micro: Batch[] = [];
  try {
    for await (const batch of loader) {
      if (o.signal.aborted) break;
      sampler?.remember(batch.images);
      if (trainer.stepCount >= optim.totalSteps) break;
      const labels = Array.from(batch.labels, Number);
      micro.push(
        pretrain
          ? { image: batch.images, mask: randomMask(rng, n, patches, fcmae.maskRatio) }
          : {
              image: batch.images,
              target: mixBatch(rng, batch.images, labels, [n, 3, size, size], { mixup: optim.mixup, cutmix: optim.cutmix, numClasses: cfg.model.numClasses, labelSmoothing: optim.labelSmoothing }),
              ...(cfg.model.dropPathRate > 0 ? { dropPath: dropPathFactors(rng, rates, n) } : {}),
            },
      );
      microBatches++;
      window.images += n;
      if (micro.length < optim.accumSteps) continue;
      const lr = lrAt(trainer.stepCount, optim.lr, optim.warmupSteps, optim.totalSteps, optim.minLr);
      const r = await trainer.step(lr, micro);
      micro = [];
      const step = trainer.stepCount;
      if (!Number.isFinite(r.loss)) throw new JobError(`the loss became ${r.loss} at step ${step}; lower the learning rate (now ${lr.toExponential(2)}) or enable clipGrad`);
      if (step % cfg.logEverySteps === 0 || step === optim.totalSteps) {
        const now = performance.now();
        const imagesPerSec = (window.images / (now - window.t)) * 1000;
        window = { images: 0, t: now };
        sink.emit('metrics', { step, values: { loss: r.loss, lr, gradNorm: r.gradNorm, stepMs: r.ms } });
        sink.emit('progress', { step, totalSteps: optim.totalSteps, epoch: microBatches / perEpoch, imagesPerSec });
      }
      if (cfg.checkpointEverySteps && step % cfg.checkpointEverySteps === 0) await save();
      if (cfg.evalEverySteps && step % cfg.evalEverySteps === 0) await evaluate();
      if (step >= optim.totalSteps) break;
    }
    if (o.signal.aborted) status = 'cancelled';
    else if (evaluator && !(cfg.evalEverySteps && trainer.stepCount % cfg.evalEverySteps === 0)) await evaluate();
    await save();
  } finally {
    await loader.close();
    await evaluator?.release();
    await sampler?.release();
  }
  return o.signal.aborted ? 'cancelled' : status;
}

const SAMPLE_IMAGES = 4;

/** Keeps the first training images and one mask, and renders their reconstructions as a PNG grid. */
function reconstructionSampler(c: FcmaeConfig, cfg: JobConfig, o: RunOptions, rng: Rng) {
  let images: Float32Array | null = null;
  let rec: Reconstructor | null = null;
  const n = Math.min(SAMPLE_IMAGES, cfg.data.batchSize);
  const per = 3 * c.inputSize * c.inputSize;
  const mask = randomMask(rng, n, (c.inputSize / c.patchSize) ** 2, c.maskRatio);
  return {
    remember(batch: Float32Array) {
      images ??= Float32Array.from(batch.subarray(0, n * per));
    },
    async render(weights: ParamValues, step: number): Promise<string | null> {
      if (!images) return null;
      rec ??= await Reconstructor.create(c, n, provider(cfg), o.threads ?? 0);
      const r = await rec.run(weights, images, mask);
      const dir = join(cfg.runDir, 'samples');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `reconstruction-step-${step}.png`);
      await reconstructionGrid({ images, n, size: c.inputSize, pred: r.pred, mask, patch: c.patchSize, normPixLoss: c.normPixLoss }, file, n);
      return file;
    },
    async release() {
      await rec?.release();
    },
  };
}

/** evals/step-<step>.json: the misclassified images of an evaluation, announced as a 'mistakes' sample. */
function writeMistakes(sink: RunOptions['sink'], cfg: JobConfig, step: number, mistakes: Mistake[]): void {
  const path = join(cfg.runDir, 'evals', `step-${step}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeJsonAtomic(path, { version: 1, step, split: cfg.data.evalSplit, mistakes });
  sink.emit('sample', { step, kind: 'mistakes', path });
}

interface LazyEvaluator {
  /** The metrics, and the misclassified images (dataset-relative paths) of that evaluation. */
  run(weights: ParamValues, signal: AbortSignal): Promise<(EvalMetrics & { mistakes: Mistake[] }) | null>;
  release(): Promise<void>;
}

/** Evaluates the eval split; the graph is compiled on first use and the loader made per run. */
function lazyEvaluator(cfg: JobConfig, arch: Arch, manifest: Manifest, o: RunOptions): LazyEvaluator {
  let ev: Evaluator | null = null;
  const k = cfg.model.numClasses;
  return {
    async run(weights, signal) {
      if (!manifest.items.some((i) => i.split === cfg.data.evalSplit)) return null;
      ev ??= await Evaluator.create(arch, k, cfg.data.batchSize, cfg.model.inputSize, { provider: provider(cfg), ...(o.threads ? { threads: o.threads } : {}) });
      const loader: Loader = createLoader({ manifest, split: cfg.data.evalSplit, batchSize: cfg.data.batchSize, size: cfg.model.inputSize, train: false, workers: cfg.data.workers });
      const acc = new EvalAccumulator(k);
      try {
        for await (const b of loader) {
          if (signal.aborted) return null;
          const rows = b.labels.length;
          acc.add(await ev.logits(weights, b.images, rows), Array.from(b.labels, Number), rows, Array.from(b.indices, (i) => manifest.items[i]!.path));
        }
      } finally {
        await loader.close();
      }
      return { ...acc.result(), mistakes: acc.mistakes };
    },
    async release() {
      await ev?.release();
    },
  };
}

/** An eval job: the weights in `init.weights` on the manifest's eval split. */
async function evaluateJob(cfg: JobConfig, o: RunOptions): Promise<JobStatus> {
  const manifest = await loadManifest(cfg);
  const arch = parseArch(cfg.model.arch);
  const specs = convnextParams({ arch, numClasses: cfg.model.numClasses });
  const weights = await readWeights(weightsFile(cfg.init.weights!));
  for (const s of specs) if (!weights.has(s.name)) throw new JobError(`${cfg.init.weights}: lacks ${s.name}; is it a ${cfg.model.arch} classifier with ${cfg.model.numClasses} classes?`);
  o.sink.emit('started', { engine: 'onnx', device: chooseProvider(provider(cfg)).chosen, params: specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0), kind: 'eval', arch: cfg.model.arch });
  const ev = lazyEvaluator(cfg, arch, manifest, o);
  try {
    const r = await ev.run(weights, o.signal);
    if (!r) {
      if (o.signal.aborted) return 'cancelled';
      throw new JobError(`${cfg.data.manifest}: no ${cfg.data.evalSplit} images to evaluate`);
    }
    const { mistakes, ...m } = r;
    o.sink.emit('eval', { step: 0, weights: 'model', ...m });
    writeMistakes(o.sink, cfg, 0, mistakes);
  } finally {
    await ev.release();
  }
  return 'completed';
}
