// A trainer on the ONNX engine: builds the training graph for fine-tuning (soft-target cross entropy,
// stochastic depth) or FCMAE pretraining, compiles it, and runs steps: on the CPU forward + backward in the
// graph and AdamW fused on the host; on a GPU provider one graph per step with carried state.
import type * as ort from 'onnxruntime-node';
import { type Arch, parseArch } from '../../common/variants.ts';
import * as F from '../engine/functional.ts';
import { type Graph, type Value, numel } from '../engine/ir.ts';
import { CompiledGraph, type ProviderChoice, StepRunner, chooseProvider, tensor } from '../engine/runtime.ts';
import { type ConvNeXtConfig, blockCount, convnextFeatures, convnextHead, convnextParams } from '../nn/convnext.ts';
import { type FcmaeConfig, FCMAE_DEFAULTS, checkFcmae, fcmaeForward, fcmaeParams, patchesPerSide } from '../nn/fcmae.ts';
import { softCrossEntropy } from '../nn/losses.ts';
import { type ParamSpec, type ParamValues, initParams } from '../nn/params.ts';
import { ADAMW_DEFAULTS, type AdamWOptions } from '../optim/adamw.ts';
import { HostAdamW } from '../optim/host-adamw.ts';
import { finetuneRecipe, layerScale } from '../optim/recipes.ts';
import { STEP_INPUTS, buildApplyStep, buildGradStep, buildTrainStep } from '../optim/train-step.ts';

export interface TrainerConfig {
  readonly kind: 'finetune' | 'fcmae';
  readonly arch: string;
  readonly batch: number;
  readonly size: number;
  readonly numClasses: number;
  readonly seed: number;
  readonly threads?: number;
  readonly provider?: ProviderChoice;
  readonly dropPathRate?: number;
  readonly headInitScale?: number;
  readonly weightDecay?: number;
  readonly optim?: Partial<AdamWOptions>;
  readonly layerDecay?: number | null;
  readonly layerDecayType?: 'single' | 'group';
  readonly emaDecay?: number | null;
  readonly fcmae?: Partial<Omit<FcmaeConfig, 'arch' | 'inputSize'>>;
  readonly initial?: ParamValues;
  /** Micro-batches per optimizer step (gradient accumulation); default 1 (one fused graph). */
  readonly accumSteps?: number;
  /** Optimizer state to resume from: `<p>.exp_avg`, `<p>.exp_avg_sq`, `<p>.ema`, and the steps taken. */
  readonly resume?: { readonly state: ParamValues; readonly step: number };
  readonly profile?: string;
  /** Where AdamW runs: fused on the host (the CPU default) or as graph nodes (the GPU default). */
  readonly optimizerOn?: 'host' | 'graph';
}

/** One batch: images (N, 3, S, S); soft targets (N, K) for fine-tuning; mask (N, L) for FCMAE. */
export interface Batch {
  readonly image: Float32Array;
  readonly target?: Float32Array;
  readonly mask?: Float32Array;
  /** Per-block stochastic-depth factors (blocks x N), from dropPathFactors. */
  readonly dropPath?: Float32Array;
}

export interface StepResult {
  readonly loss: number;
  readonly gradNorm: number;
  readonly ms: number;
  readonly logits?: Float32Array;
}

export interface Trainer {
  readonly params: readonly ParamSpec[];
  readonly graph: Graph;
  readonly fcmae: FcmaeConfig | null;
  readonly dropPathRate: number;
  readonly stepCount: number;
  /** One optimizer step over `accumSteps` micro-batches (a single batch when accumSteps is 1). */
  step(lr: number, batch: Batch | readonly Batch[]): Promise<StepResult>;
  /** Current parameters (copies). */
  weights(): Promise<ParamValues>;
  /** Optimizer moments and EMA (copies), keyed `<p>.exp_avg`, `<p>.exp_avg_sq`, `<p>.ema`. */
  state(): Promise<ParamValues>;
}

/** The (blocks) drop-path probabilities: a linear rule from 0 to `rate` over all blocks. */
export const dropPathRates = (blocks: number, rate: number): number[] =>
  Array.from({ length: blocks }, (_, i) => (blocks > 1 ? (rate * i) / (blocks - 1) : 0));

/** What a trainer trains: the network (and FCMAE around it), its parameters, and drop path. */
interface TrainedModel {
  readonly arch: Arch;
  readonly model: ConvNeXtConfig;
  readonly fcmae: FcmaeConfig | null;
  readonly specs: ParamSpec[];
  readonly blocks: number;
  readonly dropPathRate: number;
}

function trainedModel(cfg: TrainerConfig): TrainedModel {
  const arch = parseArch(cfg.arch);
  const fcmae: FcmaeConfig | null = cfg.kind === 'fcmae' ? { ...FCMAE_DEFAULTS, ...cfg.fcmae, arch, inputSize: cfg.size } : null;
  if (fcmae) checkFcmae(fcmae);
  const model = { arch, numClasses: cfg.numClasses, ...(cfg.headInitScale !== undefined ? { headInitScale: cfg.headInitScale } : {}) };
  const specs = fcmae ? fcmaeParams(fcmae) : convnextParams(model);
  const dropPathRate = cfg.kind === 'finetune' ? (cfg.dropPathRate ?? 0) : 0;
  return { arch, model, fcmae, specs, blocks: blockCount(arch), dropPathRate };
}

/** The loss graph of one batch: FCMAE's reconstruction loss, or soft cross-entropy of the classifier. */
function lossGraph(cfg: TrainerConfig, m: TrainedModel) {
  const n = cfg.batch;
  return (g: Graph, p: ReadonlyMap<string, Value>) => {
    const image = g.input('image', 'float32', [n, 3, cfg.size, cfg.size]);
    if (m.fcmae) {
      const mask = g.input('mask', 'float32', [n, patchesPerSide(m.fcmae) ** 2]);
      return { loss: fcmaeForward(m.fcmae, p, image, mask).loss };
    }
    const target = g.input('target', 'float32', [n, cfg.numClasses]);
    let dropPath: Value[] | undefined;
    if (m.dropPathRate > 0) {
      const all = g.input('drop_path', 'float32', [m.blocks, n, 1, 1, 1]);
      dropPath = Array.from({ length: m.blocks }, (_, k) => g.named(sliceBlock(all, k, n), `drop_path.${k}`));
    }
    const { features } = convnextFeatures(m.model, p, image, dropPath ? { dropPath } : {});
    const { logits } = convnextHead(m.model, p, features);
    return { loss: softCrossEntropy(logits, target), outputs: { logits } };
  };
}

/** AdamW, weight decay, layer-wise lr decay and EMA as the step graphs take them. */
function stepOptions(cfg: TrainerConfig, arch: Arch) {
  const optim = { ...ADAMW_DEFAULTS, ...(cfg.kind === 'fcmae' ? { beta2: 0.95 } : {}), ...cfg.optim };
  const layerDecayType = cfg.layerDecayType ?? finetuneRecipe(cfg.arch).layerDecayType;
  return {
    optim,
    weightDecay: cfg.weightDecay ?? 0.05,
    ...(cfg.layerDecay ? { lrScale: (p: ParamSpec) => layerScale(p.name, arch.depths, cfg.layerDecay!, layerDecayType) } : {}),
    emaDecay: cfg.emaDecay ?? null,
  };
}

/** Weights, and the optimizer moments and EMA (resumed, or fresh: moments at zero, EMA at the weights). */
function initialTensors(cfg: TrainerConfig, specs: readonly ParamSpec[], values: ParamValues): Map<string, ort.Tensor> {
  const initial = new Map<string, ort.Tensor>();
  for (const p of specs) {
    const v = values.get(p.name);
    if (!v) throw new Error(`initial weights lack ${p.name}`);
    initial.set(p.name, tensor('float32', Float32Array.from(v), p.shape));
    for (const k of ['exp_avg', 'exp_avg_sq', ...(cfg.emaDecay != null ? ['ema'] : [])]) {
      const saved = cfg.resume?.state.get(`${p.name}.${k}`);
      if (cfg.resume && !saved) throw new Error(`resume state lacks ${p.name}.${k}`);
      const start = saved ?? (k === 'ema' ? v : new Float32Array(v.length));
      initial.set(`${p.name}.${k}`, tensor('float32', Float32Array.from(start), p.shape));
    }
  }
  return initial;
}

/** A batch as the graph's inputs. */
function batchFeeds(cfg: TrainerConfig, m: TrainedModel, batch: Batch): Record<string, ort.Tensor> {
  const n = cfg.batch;
  const feeds: Record<string, ort.Tensor> = { image: tensor('float32', batch.image, [n, 3, cfg.size, cfg.size]) };
  if (m.fcmae) {
    if (!batch.mask) throw new Error('FCMAE step needs a mask');
    feeds.mask = tensor('float32', batch.mask, [n, patchesPerSide(m.fcmae) ** 2]);
  } else {
    if (!batch.target) throw new Error('fine-tuning step needs targets');
    feeds.target = tensor('float32', batch.target, [n, cfg.numClasses]);
    if (m.dropPathRate > 0) {
      if (!batch.dropPath) throw new Error('drop path is on: the batch needs dropPath factors');
      feeds.drop_path = tensor('float32', batch.dropPath, [m.blocks, n, 1, 1, 1]);
    }
  }
  return feeds;
}

const scalar = (out: Record<string, ort.Tensor>, k: string) => (out[k]!.data as Float32Array)[0]!;

/** The mean of the micro-batch gradients (as loss / accum would give) by parameter, the loss and last logits.
 * With one micro-batch the gradients are written into `fetch` (preallocated, reused every step). */
async function meanGradients(gradSession: CompiledGraph, weightOf: (name: string) => ort.Tensor, specs: readonly ParamSpec[], feeds: Record<string, ort.Tensor>[], fetch: ReadonlyMap<string, ort.Tensor>) {
  const accum = feeds.length;
  const grads = new Map<string, Float32Array>();
  let loss = 0;
  let logits: Float32Array | undefined;
  for (const f of feeds) {
    const inputs: Record<string, ort.Tensor> = { ...f };
    for (const p of specs) inputs[p.name] = weightOf(p.name);
    const outputs: Record<string, ort.Tensor | null> = {};
    for (const o of gradSession.outputs) outputs[o.name] = accum === 1 ? (fetch.get(o.name) ?? null) : null;
    const out = await gradSession.run(inputs, outputs);
    for (const p of specs) {
      const g = out[`${p.name}_grad`]!.data as Float32Array;
      if (accum === 1) {
        grads.set(p.name, g);
        continue;
      }
      const acc = grads.get(p.name) ?? grads.set(p.name, new Float32Array(g.length)).get(p.name)!;
      for (let i = 0; i < acc.length; i++) acc[i]! += g[i]! / accum;
    }
    loss += scalar(out, 'loss') / accum;
    if (out.logits) logits = Float32Array.from(out.logits.data as Float32Array);
  }
  return { grads, loss, logits };
}

const sessionOptionsOf = (cfg: TrainerConfig) => ({
  ...(cfg.provider ? { provider: cfg.provider } : {}),
  ...(cfg.threads ? { threads: cfg.threads } : {}),
  ...(cfg.profile ? { profile: cfg.profile } : {}),
});

/**
 * A trainer on the ONNX engine. On the CPU the graph computes the loss and gradients and AdamW runs fused on
 * the host (host-adamw.ts); on a GPU provider AdamW is part of the graph, so the weights stay on the device.
 */
export async function createTrainer(cfg: TrainerConfig): Promise<Trainer> {
  const m = trainedModel(cfg);
  const onHost = cfg.optimizerOn ? cfg.optimizerOn === 'host' : chooseProvider(cfg.provider).chosen === 'cpu';
  return onHost ? hostTrainer(cfg, m) : graphTrainer(cfg, m);
}

function microBatches(cfg: TrainerConfig, batch: Batch | readonly Batch[]): readonly Batch[] {
  const batches = Array.isArray(batch) ? (batch as readonly Batch[]) : [batch as Batch];
  const accum = cfg.accumSteps ?? 1;
  if (batches.length !== accum) throw new Error(`a step takes ${accum} micro-batch(es), got ${batches.length}`);
  return batches;
}

async function hostTrainer(cfg: TrainerConfig, m: TrainedModel): Promise<Trainer> {
  const { specs } = m;
  const graph = buildGradStep(`${cfg.kind}_${cfg.arch}_grad`, specs, lossGraph(cfg, m));
  const session = await CompiledGraph.create(graph, sessionOptionsOf(cfg));
  const optimizer = new HostAdamW(specs, cfg.initial ?? initParams(specs, cfg.seed), cfg.resume?.state ?? null, stepOptions(cfg, m.arch));
  const weightTensors = new Map(specs.map((p) => [p.name, tensor('float32', optimizer.param(p.name), p.shape)] as const));
  const fetch = new Map(specs.map((p) => [`${p.name}_grad`, tensor('float32', new Float32Array(numel(p.shape)), p.shape)] as const));
  let count = cfg.resume?.step ?? 0;
  return {
    params: specs,
    graph,
    fcmae: m.fcmae,
    dropPathRate: m.dropPathRate,
    get stepCount() {
      return count;
    },
    async step(lr, batch) {
      const feeds = microBatches(cfg, batch).map((b) => batchFeeds(cfg, m, b));
      const t0 = performance.now();
      const { grads, loss, logits } = await meanGradients(session, (name) => weightTensors.get(name)!, specs, feeds, fetch);
      const gradNorm = optimizer.update(grads, lr, ++count);
      return { loss, gradNorm, ms: performance.now() - t0, ...(logits ? { logits } : {}) };
    },
    weights: async () => optimizer.weights(),
    state: async () => optimizer.state(),
  };
}

async function graphTrainer(cfg: TrainerConfig, m: TrainedModel): Promise<Trainer> {
  const { specs } = m;
  const build = lossGraph(cfg, m);
  const options = stepOptions(cfg, m.arch);
  const accum = cfg.accumSteps ?? 1;
  const name = `${cfg.kind}_${cfg.arch}`;
  const sessionOptions = sessionOptionsOf(cfg);
  // One fused graph per step; with accumulation a forward+backward graph per micro-batch and an update graph.
  const step = accum > 1 ? buildApplyStep(`${name}_apply`, specs, options) : buildTrainStep(name, specs, build, options);
  const gradSession = accum > 1 ? await CompiledGraph.create(buildGradStep(`${name}_grad`, specs, build), sessionOptions) : null;
  const compiled = await CompiledGraph.create(step.graph, sessionOptions);
  const values = cfg.initial ?? initParams(specs, cfg.seed);
  const runner = new StepRunner(compiled, step.carry, initialTensors(cfg, specs, values));
  let count = cfg.resume?.step ?? 0;

  return {
    params: specs,
    graph: step.graph,
    fcmae: m.fcmae,
    dropPathRate: m.dropPathRate,
    get stepCount() {
      return count;
    },
    async step(lr, batch) {
      const batches = microBatches(cfg, batch);
      const scalars = {
        [STEP_INPUTS.lr]: tensor('float32', Float32Array.of(lr), []),
        [STEP_INPUTS.step]: tensor('float32', Float32Array.of(count + 1), []),
      };
      if (!gradSession) {
        const out = await runner.step({ ...batchFeeds(cfg, m, batches[0]!), ...scalars });
        count++;
        return { loss: scalar(out, 'loss'), gradNorm: scalar(out, 'grad_norm'), ms: runner.lastStepMs, ...(out.logits ? { logits: out.logits.data as Float32Array } : {}) };
      }
      const t0 = performance.now();
      const { grads, loss, logits } = await meanGradients(gradSession, (n) => runner.current(n), specs, batches.map((b) => batchFeeds(cfg, m, b)), new Map());
      const gradFeeds: Record<string, ort.Tensor> = {};
      for (const p of specs) gradFeeds[`${p.name}.grad`] = tensor('float32', grads.get(p.name)!, p.shape);
      const out = await runner.step({ ...gradFeeds, ...scalars });
      count++;
      return { loss, gradNorm: scalar(out, 'grad_norm'), ms: performance.now() - t0, ...(logits ? { logits } : {}) };
    },
    async weights() {
      const w: ParamValues = new Map();
      for (const p of specs) w.set(p.name, Float32Array.from(await runner.read(p.name)));
      return w;
    },
    async state() {
      const w: ParamValues = new Map();
      for (const c of step.carry) if (!values.has(c.input)) w.set(c.input, Float32Array.from(await runner.read(c.input)));
      return w;
    },
  };
}

/** Block k's (N, 1, 1, 1) factors out of the (blocks, N, 1, 1, 1) input. */
const sliceBlock = (all: Value, k: number, n: number): Value => F.reshape(F.slice(all, [0], [k], [k + 1]), [n, 1, 1, 1]);
