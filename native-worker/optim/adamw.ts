// AdamW as graph nodes, matching torch.optim.AdamW: decoupled weight decay p *= 1 - lr*wd, then
// p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). Gradients are unscaled (loss scaling) and clipped by
// their global L2 norm first, as torch.nn.utils.clip_grad_norm_ does.
import * as F from '../engine/functional.ts';
import type { Value } from '../engine/ir.ts';

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Clip gradients to this global L2 norm (null: no clipping). */
  readonly clipGrad: number | null;
  /** The loss was multiplied by this; gradients are divided by it before anything else. */
  readonly lossScale: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, clipGrad: null, lossScale: 1 };

export interface AdamWParam {
  readonly param: Value;
  readonly grad: Value;
  readonly expAvg: Value;
  readonly expAvgSq: Value;
  /** Multiplies the step's lr (layer-wise lr decay). */
  readonly lrScale: number;
  readonly weightDecay: number;
}

export interface AdamWUpdate {
  readonly param: Value;
  readonly expAvg: Value;
  readonly expAvgSq: Value;
}

/**
 * One AdamW step for every parameter. `lr` and `step` (1-based, float32) are per-step scalar inputs.
 * Returns the updated tensors and the global gradient norm before clipping.
 */
export function adamw(params: readonly AdamWParam[], lr: Value, step: Value, o: AdamWOptions): { updates: AdamWUpdate[]; gradNorm: Value } {
  const g = lr.graph;
  const unscale = (x: Value) => (o.lossScale === 1 ? x : F.mul(x, 1 / o.lossScale));
  const grads = params.map((p) => unscale(p.grad));
  const sq = grads.map((x) => F.sumSquare(x, x.shape.map((_, i) => i), false));
  const gradNorm = F.sqrt(sq.reduce((a, b) => F.add(a, b)));
  const clip = o.clipGrad === null ? null : F.min(1, F.div(o.clipGrad, F.add(gradNorm, 1e-6)));

  const bc1 = F.sub(1, F.pow(g.scalar(o.beta1), step));
  const bc2 = F.sub(1, F.pow(g.scalar(o.beta2), step));
  const stepSize = F.div(lr, bc1);
  const invSqrtBc2 = F.div(1, F.sqrt(bc2));
  const perScale = new Map<number, { lr: Value; step: Value }>();
  const scaled = (s: number) => {
    let v = perScale.get(s);
    if (!v) perScale.set(s, (v = s === 1 ? { lr, step: stepSize } : { lr: F.mul(lr, s), step: F.mul(stepSize, s) }));
    return v;
  };

  const updates = params.map((p, i) => {
    const grad = clip ? F.mul(grads[i]!, clip) : grads[i]!;
    const m = F.add(F.mul(p.expAvg, o.beta1), F.mul(grad, 1 - o.beta1));
    const v = F.add(F.mul(p.expAvgSq, o.beta2), F.mul(F.mul(grad, grad), 1 - o.beta2));
    const { lr: lrP, step: stepP } = scaled(p.lrScale);
    const decayed = p.weightDecay ? F.mul(p.param, F.sub(1, F.mul(lrP, p.weightDecay))) : p.param;
    const denom = F.add(F.mul(F.sqrt(v), invSqrtBc2), o.eps);
    return { param: F.sub(decayed, F.mul(stepP, F.div(m, denom))), expAvg: m, expAvgSq: v };
  });
  return { updates, gradNorm };
}
