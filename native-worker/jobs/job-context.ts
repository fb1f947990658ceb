// What the steps of a job share on the ONNX engine: its options and user-facing error, the device choice,
// the manifest and starting weights, the lazily compiled evaluator, mistakes files and FCMAE reconstruction
// samples. run-job.ts (the jobs) and training.ts (the training steps) build on it.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../../common/errors.ts';
import type { JobConfig } from '../../common/job.ts';
import type { Manifest } from '../../common/manifest.ts';
import type { Arch } from '../../common/variants.ts';
import { loadCheckpoint } from '../checkpoint/load.ts';
import { readManifest } from '../data/manifest.ts';
import { type Loader, createLoader } from '../data/pipeline/loader.ts';
import type { ProviderChoice } from '../engine/runtime.ts';
import { type FcmaeConfig, randomMask } from '../nn/fcmae.ts';
import { type ParamSpec, type ParamValues, initParams } from '../nn/params.ts';
import type { Rng } from '../nn/random.ts';
import { EvalAccumulator, type EvalMetrics, Evaluator, type Mistake } from './evaluate.ts';
import type { EventSink } from './events.ts';
import { Reconstructor } from './inference.ts';
import { reconstructionGrid } from './reconstruction-images.ts';
import { resolveResume, writeJsonAtomic } from './run-files.ts';

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

/** A weights file, or the one a run's last.json / best.json points at. */
export const weightsFile = (path: string): string => (path.endsWith('.json') ? resolveResume(path).weights : path);

export const provider = (cfg: JobConfig): ProviderChoice => (cfg.device === 'cuda' ? 'cuda' : cfg.device === 'cpu' ? 'cpu' : 'auto');

export async function loadManifest(cfg: JobConfig): Promise<Manifest> {
  const m = await readManifest(cfg.data.manifest);
  if (cfg.kind !== 'pretrain' && m.classes.length !== cfg.model.numClasses) {
    throw new JobError(`${cfg.data.manifest}: the dataset has ${m.classes.length} classes, the model ${cfg.model.numClasses}`);
  }
  return m;
}

/** Starting weights: resumed, imported (`init.weights`: a fine-tune from an FCMAE checkpoint takes its encoder), or fresh. */
export async function startWeights(cfg: JobConfig, specs: readonly ParamSpec[], sink: EventSink): Promise<ParamValues> {
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

const SAMPLE_IMAGES = 4;

/** Keeps the first training images and one mask, and renders their reconstructions as a PNG grid. */
export type ReconstructionSampler = ReturnType<typeof reconstructionSampler>;

export function reconstructionSampler(c: FcmaeConfig, cfg: JobConfig, o: RunOptions, rng: Rng) {
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
export function writeMistakes(sink: RunOptions['sink'], cfg: JobConfig, step: number, mistakes: Mistake[]): void {
  const path = join(cfg.runDir, 'evals', `step-${step}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeJsonAtomic(path, { version: 1, step, split: cfg.data.evalSplit, mistakes });
  sink.emit('sample', { step, kind: 'mistakes', path });
}

export interface LazyEvaluator {
  /** The metrics, and the misclassified images (dataset-relative paths) of that evaluation. */
  run(weights: ParamValues, signal: AbortSignal): Promise<(EvalMetrics & { mistakes: Mistake[] }) | null>;
  release(): Promise<void>;
}

/** Evaluates the eval split; the graph is compiled on first use and the loader made per run. */
export function lazyEvaluator(cfg: JobConfig, arch: Arch, manifest: Manifest, o: RunOptions): LazyEvaluator {
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
