// The steps of a training run on the ONNX engine, named as the PyTorch engine's `_Trainer` (cnx_torch/job.py)
// names them: restore (resume or starting weights), build (trainer, loader, evaluator), then per optimizer
// step: collect micro-batches, trainStep, log, save, evaluate. run-job.ts `train` strings them together.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { JobConfig } from '../../common/job.ts';
import type { Manifest } from '../../common/manifest.ts';
import { type Arch, parseArch } from '../../common/variants.ts';
import { makeTensor } from '../checkpoint/tensor.ts';
import { type Loader, createLoader } from '../data/pipeline/loader.ts';
import { chooseProvider } from '../engine/runtime.ts';
import { blockCount, convnextParams } from '../nn/convnext.ts';
import { FCMAE_DEFAULTS, type FcmaeConfig, fcmaeParams, randomMask } from '../nn/fcmae.ts';
import type { ParamSpec, ParamValues } from '../nn/params.ts';
import { Rng } from '../nn/random.ts';
import { dropPathFactors, mixBatch } from './mixup.ts';
import { readRunState, readWeights, resolveResume, saveRunCheckpoint, stateFromFile, stateToFile, writeJsonAtomic } from './run-files.ts';
import { type Batch, type StepResult, type Trainer, createTrainer, dropPathRates } from './trainer.ts';
import { JobError, type LazyEvaluator, type ReconstructionSampler, type RunOptions, lazyEvaluator, loadManifest, provider, reconstructionSampler, startWeights, writeMistakes } from './job-context.ts';

/** Where a run starts: the weights, and when resuming, the optimizer state and counters it had. */
export interface Restored {
  initial: ParamValues;
  resume?: { state: ParamValues; step: number };
  microBatches: number;
  bestTop1: number | null;
  rng: Rng;
}

/** The run folder, the manifest and the parameters of the model this job trains. */
export async function prepare(cfg: JobConfig, o: RunOptions): Promise<{ manifest: Manifest; arch: Arch; fcmae: FcmaeConfig; specs: ParamSpec[] }> {
  if (cfg.precision !== 'fp32') o.sink.log(`precision ${cfg.precision} is a PyTorch-engine setting; the ONNX engine trains in fp32`, 'warning');
  mkdirSync(join(cfg.runDir, 'checkpoints'), { recursive: true });
  writeJsonAtomic(join(cfg.runDir, 'config.json'), cfg);
  const manifest = await loadManifest(cfg);
  const arch = parseArch(cfg.model.arch);
  const fcmae = { ...FCMAE_DEFAULTS, ...cfg.fcmae, arch, inputSize: cfg.model.inputSize };
  const specs = cfg.kind === 'pretrain' ? fcmaeParams(fcmae) : convnextParams({ arch, numClasses: cfg.model.numClasses, headInitScale: cfg.model.headInitScale });
  if (cfg.kind === 'finetune' && cfg.evalEverySteps && !manifest.items.some((i) => i.split === cfg.data.evalSplit)) {
    throw new JobError(`${cfg.data.manifest}: evalEverySteps is set but the dataset has no ${cfg.data.evalSplit} images to evaluate on; split some off (cnx dataset split NAME --val 0.1) or evaluate on the test split (data.evalSplit "test", --eval-split test)`);
  }
  return { manifest, arch, fcmae, specs };
}

/** Resume state from `cfg.resume` (checked against this config), else fresh or imported starting weights. */
export async function restore(cfg: JobConfig, specs: readonly ParamSpec[], o: RunOptions): Promise<Restored> {
  const rng = new Rng(cfg.data.seed + 1);
  if (!cfg.resume) return { initial: await startWeights(cfg, specs, o.sink), microBatches: 0, bestTop1: null, rng };
  const paths = resolveResume(cfg.resume);
  const s = await readRunState(paths.state);
  for (const [k, want] of [['kind', cfg.kind], ['arch', cfg.model.arch], ['batchSize', cfg.data.batchSize], ['seed', cfg.data.seed]] as const) {
    if (s.meta[k] !== want) throw new JobError(`${paths.state}: saved with ${k}=${JSON.stringify(s.meta[k])}, this config has ${JSON.stringify(want)}`);
  }
  const initial = await readWeights(paths.weights);
  const state = stateFromFile(s.tensors);
  if (cfg.optim!.emaDecay !== null && !specs.every((p) => state.has(`${p.name}.ema`))) {
    o.sink.log('the resumed state has no EMA weights; EMA restarts from the current weights', 'warning');
    for (const p of specs) state.set(`${p.name}.ema`, initial.get(p.name)!);
  }
  o.sink.log(`resumed from ${paths.state} at step ${s.meta.step}`);
  return { initial, resume: { state, step: s.meta.step }, microBatches: s.meta.microBatches, bestTop1: s.meta.bestTop1 ?? null, rng: s.rng ? new Rng(s.rng) : rng };
}

/** A training run's state between steps, and its steps. */
export class Training {
  private micro: Batch[] = [];
  private window = { images: 0, t: performance.now() };
  private savedStep: number;
  private readonly shapes: Map<string, readonly number[]>;
  private readonly rates: number[];

  private constructor(
    readonly cfg: JobConfig,
    private readonly o: RunOptions,
    readonly trainer: Trainer,
    readonly loader: Loader,
    readonly evaluator: LazyEvaluator | null,
    readonly sampler: ReconstructionSampler | null,
    private readonly specs: readonly ParamSpec[],
    private readonly fcmae: FcmaeConfig,
    private readonly perEpoch: number,
    private restored: Restored,
  ) {
    this.savedStep = trainer.stepCount;
    this.shapes = new Map(specs.map((s) => [s.name, s.shape] as const));
    this.rates = dropPathRates(blockCount(fcmae.arch), cfg.model.dropPathRate);
  }

  /** The trainer (compiled graph, optimizer state), the training loader, the evaluator and the sampler. */
  static async build(cfg: JobConfig, o: RunOptions, p: Awaited<ReturnType<typeof prepare>>, restored: Restored): Promise<Training> {
    const optim = cfg.optim!;
    const pretrain = cfg.kind === 'pretrain';
    const n = cfg.data.batchSize;
    const { fcmae, specs, manifest } = p;
    const trainer = await createTrainer({
      kind: pretrain ? 'fcmae' : 'finetune', arch: cfg.model.arch, batch: n, size: cfg.model.inputSize, numClasses: cfg.model.numClasses, seed: cfg.data.seed,
      provider: provider(cfg), ...(o.threads ? { threads: o.threads } : {}), dropPathRate: cfg.model.dropPathRate, headInitScale: cfg.model.headInitScale,
      weightDecay: optim.weightDecay, optim: { beta1: optim.betas[0], beta2: optim.betas[1], eps: optim.eps, clipGrad: optim.clipGrad },
      layerDecay: optim.layerDecay, ...(optim.layerDecayType ? { layerDecayType: optim.layerDecayType } : {}), emaDecay: optim.emaDecay,
      fcmae: { maskRatio: fcmae.maskRatio, decoderDim: fcmae.decoderDim, decoderDepth: fcmae.decoderDepth, normPixLoss: fcmae.normPixLoss },
      initial: restored.initial, accumSteps: optim.accumSteps, ...(restored.resume ? { resume: restored.resume } : {}),
    });
    const params = specs.reduce((s, q) => s + q.shape.reduce((a, b) => a * b, 1), 0);
    o.sink.emit('started', { engine: 'onnx', device: chooseProvider(provider(cfg)).chosen, params, kind: cfg.kind, arch: cfg.model.arch, onnxruntime: ort.env.versions.common });
    const trainCount = manifest.items.filter((i) => i.split === 'train').length;
    const perEpoch = Math.floor(trainCount / n);
    if (perEpoch < 1) throw new JobError(`${cfg.data.manifest}: ${trainCount} training images, fewer than one batch of ${n}`);
    const mb = restored.microBatches;
    const loader = createLoader({
      manifest, split: 'train', batchSize: n, size: cfg.model.inputSize, train: true, mode: pretrain ? 'pretrain' : 'finetune', seed: cfg.data.seed,
      transform: cfg.data.augment, workers: cfg.data.workers, epochs: Math.ceil(((optim.totalSteps - (restored.resume?.step ?? 0)) * optim.accumSteps) / perEpoch) + 1,
      resume: { epoch: Math.floor(mb / perEpoch), batch: mb % perEpoch },
    });
    const evaluator = !pretrain && manifest.items.some((i) => i.split === cfg.data.evalSplit) ? lazyEvaluator(cfg, p.arch, manifest, o) : null;
    // Pretraining shows its progress as reconstructions of the same images and masks at every checkpoint.
    const sampler = pretrain ? reconstructionSampler(fcmae, cfg, o, new Rng(cfg.data.seed + 7)) : null;
    return new Training(cfg, o, trainer, loader, evaluator, sampler, specs, fcmae, perEpoch, restored);
  }

  /** Adds a loader batch as a micro-batch (masks or mixed targets drawn here); true when a step is due. */
  collect(batch: { images: Float32Array; labels: ArrayLike<number | bigint> }): boolean {
    const { cfg } = this;
    const n = cfg.data.batchSize;
    const size = cfg.model.inputSize;
    const optim = cfg.optim!;
    const rng = this.restored.rng;
    this.micro.push(
      cfg.kind === 'pretrain'
        ? { image: batch.images, mask: randomMask(rng, n, (size / 32) ** 2, this.fcmae.maskRatio) }
        : {
            image: batch.images,
            target: mixBatch(rng, batch.images, Array.from(batch.labels, Number), [n, 3, size, size], { mixup: optim.mixup, cutmix: optim.cutmix, numClasses: cfg.model.numClasses, labelSmoothing: optim.labelSmoothing }),
            ...(cfg.model.dropPathRate > 0 ? { dropPath: dropPathFactors(rng, this.rates, n) } : {}),
          },
    );
    this.restored.microBatches++;
    this.window.images += n;
    return this.micro.length >= optim.accumSteps;
  }

  /** One optimizer step over the collected micro-batches at this lr. */
  async trainStep(lr: number): Promise<StepResult> {
    const r = await this.trainer.step(lr, this.micro);
    this.micro = [];
    if (!Number.isFinite(r.loss)) throw new JobError(`the loss became ${r.loss} at step ${this.trainer.stepCount}; lower the learning rate (now ${lr.toExponential(2)}) or enable clipGrad`);
    return r;
  }

  /** metrics and progress events every logEverySteps steps and at the last. */
  log(r: StepResult, lr: number): void {
    const step = this.trainer.stepCount;
    const total = this.cfg.optim!.totalSteps;
    if (step % this.cfg.logEverySteps !== 0 && step !== total) return;
    const now = performance.now();
    const imagesPerSec = (this.window.images / (now - this.window.t)) * 1000;
    this.window = { images: 0, t: now };
    this.o.sink.emit('metrics', { step, values: { loss: r.loss, lr, gradNorm: r.gradNorm, stepMs: r.ms } });
    this.o.sink.emit('progress', { step, totalSteps: total, epoch: this.restored.microBatches / this.perEpoch, imagesPerSec });
  }

  /** Weights and training state of this step (once per step), and for pretraining a reconstruction sample. */
  async save(): Promise<void> {
    const { cfg, trainer } = this;
    if (this.savedStep === trainer.stepCount) return;
    const weights = await trainer.weights();
    const state = stateToFile(await trainer.state(), this.shapes, this.specs, trainer.stepCount, this.restored.rng.state());
    const r = await saveRunCheckpoint(
      join(cfg.runDir, 'checkpoints'),
      new Map([...weights].map(([k, v]) => [k, makeTensor([...this.shapes.get(k)!], v)])),
      { arch: cfg.model.arch, kind: cfg.kind, naming: cfg.kind === 'pretrain' ? 'fcmae' : 'timm', numClasses: String(cfg.model.numClasses), engine: 'onnx' },
      state,
      { step: trainer.stepCount, microBatches: this.restored.microBatches, kind: cfg.kind, arch: cfg.model.arch, batchSize: cfg.data.batchSize, seed: cfg.data.seed, bestTop1: this.restored.bestTop1 },
    );
    this.savedStep = trainer.stepCount;
    this.o.sink.emit('checkpoint', { step: trainer.stepCount, path: r.path, statePath: r.statePath });
    const file = await this.sampler?.render(weights, trainer.stepCount);
    if (file) this.o.sink.emit('sample', { step: trainer.stepCount, kind: 'reconstruction', path: file });
  }

  /** The eval split on the model (and on the EMA weights when EMA is on); a new best top-1 is checkpointed. */
  async evaluate(): Promise<void> {
    const { cfg, trainer, evaluator, o } = this;
    if (!evaluator) return;
    const r = await evaluator.run(await trainer.weights(), o.signal);
    if (!r) return;
    const { mistakes, ...m } = r;
    const step = trainer.stepCount;
    o.sink.emit('eval', { step, weights: 'model', ...m });
    writeMistakes(o.sink, cfg, step, mistakes);
    if (cfg.optim!.emaDecay !== null) {
      const state = await trainer.state();
      const e = await evaluator.run(new Map(this.specs.map((p) => [p.name, state.get(`${p.name}.ema`)!])), o.signal);
      if (e) {
        const { mistakes: _emaMistakes, ...em } = e;
        o.sink.emit('eval', { step, weights: 'ema', ...em });
      }
    }
    const best = this.restored.bestTop1;
    if (m.top1 === null || (best !== null && m.top1 <= best)) return;
    this.restored.bestTop1 = m.top1;
    this.savedStep = -1; // the best pointer must name a checkpoint holding exactly these weights
    await this.save();
    writeJsonAtomic(join(cfg.runDir, 'checkpoints', 'best.json'), { step, weights: `step-${step}.safetensors`, state: `step-${step}.state.safetensors`, top1: m.top1 });
  }

  async close(): Promise<void> {
    await this.loader.close();
    await this.evaluator?.release();
    await this.sampler?.release();
  }
}
