// Forward-only and gradient computations on the ONNX engine for a loaded checkpoint: classifier logits and
// pooled features, the gradient of mean cross-entropy w.r.t. every parameter, FCMAE reconstruction, and the
// standalone inference model for export.
import type * as ort from 'onnxruntime-node';
import { type Arch, parseArch } from '../../common/variants.ts';
import { type LoadedCheckpoint, loadCheckpoint } from '../checkpoint/load.ts';
import { CheckpointError, type TensorMap } from '../checkpoint/tensor.ts';
import { gradients } from '../engine/grad.ts';
import { Graph, type Value } from '../engine/ir.ts';
import { toOnnx } from '../engine/onnx.ts';
import { CompiledGraph, type ProviderChoice, tensor } from '../engine/runtime.ts';
import { convnextFeatures, convnextHead, convnextParams } from '../nn/convnext.ts';
import { FCMAE_DEFAULTS, type FcmaeConfig, checkFcmae, fcmaeForward, fcmaeParams } from '../nn/fcmae.ts';
import { softCrossEntropy } from '../nn/losses.ts';
import type { ParamSpec, ParamValues } from '../nn/params.ts';

export interface LoadedModel {
  readonly arch: Arch;
  readonly kind: 'classifier' | 'fcmae';
  readonly numClasses: number;
  readonly weights: ParamValues;
  readonly checkpoint: LoadedCheckpoint;
  /** The file it was read from, for messages. */
  readonly file: string;
}

/** Why a checkpoint without the FCMAE decoder cannot reconstruct, and what to do instead. */
export function noDecoderMessage(file: string): string {
  return `${file}: has no FCMAE decoder (proj, mask_token, decoder.*, pred), so it cannot reconstruct images. `
    + 'The released official FCMAE weights hold the encoder only; fine-tune from it, or pretrain from it (--init) to train a decoder';
}

/** Loads a checkpoint (any supported format and layout) and checks it holds the model `archName`. */
/** A checkpoint's model; `archName`, when given, must be what the file holds. */
export async function loadModel(path: string, archName?: string): Promise<LoadedModel> {
  const ck = await loadCheckpoint(path);
  const found = `${ck.arch.version === 2 ? 'convnextv2' : 'convnext'}_${ck.variant}`;
  const arch = parseArch(archName ?? found);
  if (found !== arch.name) throw new CheckpointError(`${path}: holds a ${found} model, not ${arch.name}`);
  const weights: ParamValues = new Map();
  for (const [k, t] of ck.tensors) {
    if (t.dtype !== 'float32') throw new CheckpointError(`${path}: ${k} is ${t.dtype}, expected float32 weights`);
    weights.set(k, t.data);
  }
  const fc = ck.tensors.get('head.fc.weight');
  return { arch, kind: ck.arch.decoder ? 'fcmae' : 'classifier', numClasses: fc ? fc.shape[0]! : 0, weights, checkpoint: ck, file: path };
}

/** The encoder's float32 tensors: a classifier's as they are, an FCMAE model's from under 'encoder.'. */
export function encoderTensors(tensors: TensorMap, fcmae: boolean): TensorMap {
  const out: TensorMap = new Map();
  for (const [k, t] of tensors) {
    if (t.dtype !== 'float32') continue;
    if (!fcmae) out.set(k, t);
    else if (k.startsWith('encoder.')) out.set(k.slice('encoder.'.length), t);
  }
  return out;
}

function paramInputs(g: Graph, specs: readonly ParamSpec[]): Map<string, Value> {
  return new Map(specs.map((p) => [p.name, g.input(p.name, 'float32', p.shape)] as const));
}

function weightFeeds(specs: readonly ParamSpec[], weights: ParamValues, file: string): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const p of specs) {
    const w = weights.get(p.name);
    if (!w) throw new CheckpointError(`${file}: missing ${p.name}`);
    feeds[p.name] = tensor('float32', w, p.shape);
  }
  return feeds;
}

function requireClassifier(m: LoadedModel): void {
  if (m.kind !== 'classifier' || m.numClasses === 0) {
    throw new CheckpointError(`this checkpoint has no classifier head (${m.kind === 'fcmae' ? 'an FCMAE pretraining checkpoint' : 'encoder only'})`);
  }
}

const checkImages = (shape: readonly number[], what: string) => {
  if (shape.length !== 4 || shape[1] !== 3) throw new Error(`${what}: expected float32 images (N, 3, H, W), got shape (${shape.join(', ')})`);
  if (shape[2]! % 32 || shape[3]! % 32) throw new Error(`${what}: height and width must be multiples of 32, got ${shape[2]}x${shape[3]}`);
};

/** Logits (N, K) and pooled pre-logits features (N, C) of normalized images (N, 3, H, W). */
export async function infer(m: LoadedModel, images: Float32Array, shape: readonly number[], provider: ProviderChoice = 'auto') {
  requireClassifier(m);
  checkImages(shape, 'input');
  const cfg = { arch: m.arch, numClasses: m.numClasses };
  const specs = convnextParams(cfg);
  const g = new Graph('infer');
  const p = paramInputs(g, specs);
  const x = g.input('image', 'float32', shape);
  const { pooled, logits } = convnextHead(cfg, p, convnextFeatures(cfg, p, x).features);
  g.output(logits, 'logits');
  g.output(pooled, 'features');
  const s = await CompiledGraph.create(g, { provider });
  const out = await s.run({ ...weightFeeds(specs, m.weights, 'weights'), image: tensor('float32', images, shape) });
  await s.release();
  return { logits: out.logits!.data as Float32Array, features: out.features!.data as Float32Array, numClasses: m.numClasses, dim: pooled.staticShape()[1]! };
}

/** Mean cross-entropy of hard labels and its gradient w.r.t. every parameter (no drop path, no smoothing). */
export async function lossGradients(m: LoadedModel, images: Float32Array, shape: readonly number[], labels: readonly number[], provider: ProviderChoice = 'auto') {
  requireClassifier(m);
  checkImages(shape, 'input');
  if (labels.length !== shape[0]) throw new Error(`labels: ${labels.length} labels for ${shape[0]} images`);
  const bad = labels.find((l) => !Number.isInteger(l) || l < 0 || l >= m.numClasses);
  if (bad !== undefined) throw new Error(`labels: ${bad} is not a class index in [0, ${m.numClasses})`);
  const cfg = { arch: m.arch, numClasses: m.numClasses };
  const specs = convnextParams(cfg);
  const g = new Graph('grad');
  const p = paramInputs(g, specs);
  const x = g.input('image', 'float32', shape);
  const target = g.input('target', 'float32', [shape[0]!, m.numClasses]);
  const { logits } = convnextHead(cfg, p, convnextFeatures(cfg, p, x).features);
  const loss = softCrossEntropy(logits, target);
  const grads = gradients(loss, [...p.values()]);
  g.output(loss, 'loss');
  for (const [v, gv] of grads) g.output(gv, `${v.name}_grad`);
  const oneHot = new Float32Array(shape[0]! * m.numClasses);
  labels.forEach((l, i) => (oneHot[i * m.numClasses + l] = 1));
  const s = await CompiledGraph.create(g, { provider });
  const out = await s.run({ ...weightFeeds(specs, m.weights, 'weights'), image: tensor('float32', images, shape), target: tensor('float32', oneHot, [shape[0]!, m.numClasses]) });
  await s.release();
  const result = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const spec of specs) result.set(spec.name, { shape: spec.shape, data: out[`${spec.name}_grad`]!.data as Float32Array });
  return { loss: (out.loss!.data as Float32Array)[0]!, grads: result };
}

/** The FCMAE configuration a checkpoint's decoder implies (width from proj, depth from decoder.<k>). */
export function fcmaeConfigOf(m: LoadedModel, inputSize: number, normPixLoss: boolean): FcmaeConfig {
  if (m.kind !== 'fcmae') throw new CheckpointError(noDecoderMessage(m.file));
  const decoderDim = m.checkpoint.tensors.get('proj.weight')!.shape[0]!;
  let decoderDepth = 0;
  while (m.weights.has(`decoder.${decoderDepth}.dwconv.weight`)) decoderDepth++;
  const c = { ...FCMAE_DEFAULTS, arch: m.arch, inputSize, decoderDim, decoderDepth, normPixLoss };
  checkFcmae(c);
  return c;
}

/** FCMAE prediction (N, L, p*p*3) and loss for images (N, 3, S, S) and a mask (N, L), 1 = removed. */
export async function reconstruct(m: LoadedModel, images: Float32Array, shape: readonly number[], mask: Float32Array, normPixLoss = true, provider: ProviderChoice = 'auto') {
  checkImages(shape, 'input');
  if (shape[2] !== shape[3]) throw new Error(`input: FCMAE needs square images, got ${shape[2]}x${shape[3]}`);
  const c = fcmaeConfigOf(m, shape[2]!, normPixLoss);
  const l = (shape[2]! / c.patchSize) ** 2;
  if (mask.length !== shape[0]! * l) throw new Error(`mask: expected ${shape[0]} x ${l} cells, got ${mask.length} values`);
  if (mask.some((v) => v !== 0 && v !== 1)) throw new Error('mask: values must be 0 (keep) or 1 (remove)');
  if (Array.from({ length: shape[0]! }).some((_, i) => !mask.subarray(i * l, (i + 1) * l).some((v) => v === 1))) {
    throw new Error('mask: every image needs at least one removed patch (the loss averages over removed patches)');
  }
  const rec = await Reconstructor.create(c, shape[0]!, provider);
  try {
    return { ...(await rec.run(m.weights, images, mask)), patchSize: c.patchSize };
  } finally {
    await rec.release();
  }
}

/** A compiled FCMAE forward pass for batches of `n` images: prediction and loss for given weights and masks. */
export class Reconstructor {
  private constructor(
    private readonly session: CompiledGraph,
    private readonly specs: readonly ParamSpec[],
    readonly config: FcmaeConfig,
    readonly n: number,
  ) {}

  static async create(c: FcmaeConfig, n: number, provider: ProviderChoice = 'auto', threads = 0): Promise<Reconstructor> {
    const specs = fcmaeParams(c);
    const g = new Graph('reconstruct');
    const p = paramInputs(g, specs);
    const l = (c.inputSize / c.patchSize) ** 2;
    const out = fcmaeForward(c, p, g.input('image', 'float32', [n, 3, c.inputSize, c.inputSize]), g.input('mask', 'float32', [n, l]));
    g.output(out.pred, 'pred');
    g.output(out.loss, 'loss');
    return new Reconstructor(await CompiledGraph.create(g, { provider, ...(threads ? { threads } : {}) }), specs, c, n);
  }

  async run(weights: ParamValues, images: Float32Array, mask: Float32Array) {
    const s = this.config.inputSize;
    const l = (s / this.config.patchSize) ** 2;
    const r = await this.session.run({ ...weightFeeds(this.specs, weights, 'weights'), image: tensor('float32', images, [this.n, 3, s, s]), mask: tensor('float32', mask, [this.n, l]) });
    return { pred: r.pred!.data as Float32Array, predShape: [this.n, l, this.config.patchSize ** 2 * 3], loss: (r.loss!.data as Float32Array)[0]! };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export interface OnnxExportOptions {
  /** 'dynamic': any batch size (dimension 'N'); a number fixes it. */
  readonly batch: 'dynamic' | number;
  /** float16: weights stored as half floats (cast to float32 inside; compute stays float32). */
  readonly weights: 'float32' | 'float16';
  readonly opset: number;
}
export const ONNX_EXPORT_DEFAULTS: OnnxExportOptions = { batch: 'dynamic', weights: 'float32', opset: 20 };

/** A standalone ONNX inference model (weights baked in): image -> logits, features. */
export function exportOnnx(m: LoadedModel, size: number, metadata: Readonly<Record<string, string>>, o: OnnxExportOptions = ONNX_EXPORT_DEFAULTS): Uint8Array {
  requireClassifier(m);
  const cfg = { arch: m.arch, numClasses: m.numClasses, depthwiseAsMatrix: false };
  const specs = convnextParams(cfg);
  const g = new Graph(m.arch.name);
  const p = paramInputs(g, specs);
  const x = g.input('image', 'float32', [o.batch === 'dynamic' ? 'N' : o.batch, 3, size, size]);
  const { pooled, logits } = convnextHead(cfg, p, convnextFeatures(cfg, p, x).features);
  g.output(logits, 'logits');
  g.output(pooled, 'features');
  return toOnnx(g, { bake: m.weights, bakeAs: o.weights, opset: o.opset, metadata, docString: `${m.arch.name} classifier exported by the ConvNeXt V2 workbench` });
}
