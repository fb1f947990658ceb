// Grad-CAM of a ConvNeXt classifier on the ONNX engine: the last stage's map A (1, C, h, w) before the head's
// global pool and norm, the gradient of one class logit w.r.t. A by our reverse-mode autodiff (engine/grad.ts),
// per-channel weights = the spatial mean of that gradient, CAM = ReLU(sum_c w_c A_c), scaled to [0, 1] by its max.
// Two compiled graphs per model and image size, kept for reuse: the forward pass (image -> logits, A) and the
// head's backward pass (A, one-hot class -> dLogit/dA), so the class can be chosen from the logits (top-1).
import type * as ort from 'onnxruntime-node';
import { gradients } from '../engine/grad.ts';
import { Graph } from '../engine/ir.ts';
import { CompiledGraph, type ProviderChoice, tensor } from '../engine/runtime.ts';
import type { LoadedModel } from '../jobs/inference.ts';
import { convnextFeatures, convnextHead, convnextParams } from '../nn/convnext.ts';
import type { ParamSpec } from '../nn/params.ts';

export interface Explanation {
  /** Logits and softmax probabilities (K). */
  readonly logits: Float32Array;
  readonly probs: Float32Array;
  /** The class whose logit the map explains. */
  readonly target: number;
  /** The map (h * w, row-major) scaled to [0, 1]; all zeros when ReLU leaves nothing (camMax 0). */
  readonly cam: Float32Array;
  /** The map's maximum before scaling (0: no positive evidence for the class anywhere). */
  readonly camMax: number;
  readonly h: number;
  readonly w: number;
}

/**
 * Grad-CAM from the map A and dLogit/dA, both (C, h, w): weights w_c = mean over (h, w) of the gradient,
 * CAM = ReLU(sum_c w_c A_c), divided by its max; an all-zero map (max 0) stays all zeros.
 */
export function gradCam(a: Float32Array, grad: Float32Array, c: number, h: number, w: number): { cam: Float32Array; max: number } {
  const hw = h * w;
  const cam = new Float64Array(hw);
  for (let k = 0; k < c; k++) {
    let s = 0;
    for (let p = 0; p < hw; p++) s += grad[k * hw + p]!;
    const wk = s / hw;
    for (let p = 0; p < hw; p++) cam[p]! += wk * a[k * hw + p]!;
  }
  let max = 0;
  for (let p = 0; p < hw; p++) {
    if (!(cam[p]! > 0)) cam[p] = 0;
    if (cam[p]! > max) max = cam[p]!;
  }
  return { cam: Float32Array.from(cam, (v) => (max > 0 ? v / max : 0)), max };
}

export function softmax(logits: Float32Array): Float32Array {
  let m = -Infinity;
  for (const v of logits) m = Math.max(m, v);
  const e = Float64Array.from(logits, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return Float32Array.from(e, (v) => v / s);
}

/** The `k` largest probabilities, best first. */
export function topK(probs: Float32Array, k: number): { index: number; p: number }[] {
  return Array.from(probs, (p, index) => ({ index, p }))
    .sort((x, y) => y.p - x.p || x.index - y.index)
    .slice(0, k);
}

/** One classifier's compiled Grad-CAM graphs for images of one size (batch 1), reused across requests. */
export class Explainer {
  private constructor(
    private readonly forward: CompiledGraph,
    private readonly backward: CompiledGraph,
    private readonly feeds: Record<string, ort.Tensor>,
    private readonly headFeeds: Record<string, ort.Tensor>,
    readonly numClasses: number,
    readonly size: number,
    readonly map: { c: number; h: number; w: number },
  ) {}

  static async create(m: LoadedModel, size: number, provider: ProviderChoice = 'cpu', threads = 0): Promise<Explainer> {
    if (m.kind !== 'classifier' || m.numClasses === 0) throw new Error(`${m.file}: has no classifier head, so it has no classes to explain`);
    if (size % 32 || size < 32) throw new Error(`image size ${size} must be a positive multiple of 32`);
    const cfg = { arch: m.arch, numClasses: m.numClasses };
    const specs = convnextParams(cfg);
    const fg = new Graph('explain-forward');
    const fp = new Map(specs.map((p) => [p.name, fg.input(p.name, 'float32', p.shape)] as const));
    const features = convnextFeatures(cfg, fp, fg.input('image', 'float32', [1, 3, size, size])).features;
    fg.output(convnextHead(cfg, fp, features).logits, 'logits');
    fg.output(features, 'features');
    const [, c, h, w] = features.staticShape() as [number, number, number, number];

    // The head again, from A as an input: d(sum_k onehot_k * logit_k)/dA by the engine's autodiff.
    const headSpecs = specs.filter((p) => p.name.startsWith('head.'));
    const bg = new Graph('explain-backward');
    const bp = new Map(headSpecs.map((p) => [p.name, bg.input(p.name, 'float32', p.shape)] as const));
    const a = bg.input('features', 'float32', [1, c, h, w]);
    const logits = convnextHead(cfg, bp, a).logits;
    const grads = gradients(logits, [a], bg.input('onehot', 'float32', [1, m.numClasses]));
    bg.output(grads.get(a)!, 'features_grad');

    const opts = { provider, ...(threads ? { threads } : {}) };
    const [forward, backward] = await Promise.all([CompiledGraph.create(fg, opts), CompiledGraph.create(bg, opts)]);
    return new Explainer(forward, backward, weightFeeds(specs, m), weightFeeds(headSpecs, m), m.numClasses, size, { c, h, w });
  }

  /** Logits, probabilities and the Grad-CAM of `target` (default: the top-1 class) for one normalized image (3, S, S). */
  async explain(image: Float32Array, target?: number): Promise<Explanation> {
    const { c, h, w } = this.map;
    const out = await this.forward.run({ ...this.feeds, image: tensor('float32', image, [1, 3, this.size, this.size]) });
    const logits = out.logits!.data as Float32Array;
    const a = out.features!.data as Float32Array;
    const probs = softmax(logits);
    const cls = target ?? topK(probs, 1)[0]!.index;
    if (!Number.isInteger(cls) || cls < 0 || cls >= this.numClasses) throw new Error(`class ${cls} is not in [0, ${this.numClasses})`);
    const onehot = new Float32Array(this.numClasses);
    onehot[cls] = 1;
    const g = await this.backward.run({ ...this.headFeeds, features: tensor('float32', a, [1, c, h, w]), onehot: tensor('float32', onehot, [1, this.numClasses]) });
    const { cam, max } = gradCam(a, g.features_grad!.data as Float32Array, c, h, w);
    return { logits, probs, target: cls, cam, camMax: max, h, w };
  }

  async release(): Promise<void> {
    await Promise.all([this.forward.release(), this.backward.release()]);
  }
}

function weightFeeds(specs: readonly ParamSpec[], m: LoadedModel): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const p of specs) {
    const v = m.weights.get(p.name);
    if (!v) throw new Error(`${m.file}: missing ${p.name}`);
    feeds[p.name] = tensor('float32', v, p.shape);
  }
  return feeds;
}
