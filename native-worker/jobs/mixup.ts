// Batch mixup / cutmix with soft, label-smoothed targets (timm's 'batch' mode: each sample is mixed with
// the reversed batch), and stochastic-depth factors, drawn from the job's seeded generator on the host.
import type { Rng } from '../nn/random.ts';
import { smoothOneHot } from '../optim/recipes.ts';

export interface MixOptions {
  readonly mixup: number;
  readonly cutmix: number;
  readonly numClasses: number;
  readonly labelSmoothing: number;
  /** Chance of cutmix when both are on. */
  readonly switchProb?: number;
}

/** Gamma(shape, 1) by Marsaglia and Tsang; shape < 1 through Gamma(shape + 1) * U^(1/shape). */
function gamma(rng: Rng, shape: number): number {
  if (shape < 1) return gamma(rng, shape + 1) * rng.uniform() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    const u = rng.uniform();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export const betaSample = (rng: Rng, a: number): number => {
  const x = gamma(rng, a);
  return x / (x + gamma(rng, a));
};

/**
 * Mixes `images` (N, 3, H, W) in place and returns soft targets (N, K). Without mixup/cutmix the targets
 * are the label-smoothed one-hot rows.
 */
export function mixBatch(rng: Rng, images: Float32Array, labels: ArrayLike<number>, shape: readonly number[], o: MixOptions): Float32Array {
  const soft = smoothOneHot(labels, o.numClasses, o.labelSmoothing);
  if (o.mixup <= 0 && o.cutmix <= 0) return soft;
  const [n, c, h, w] = shape as [number, number, number, number];
  const useCutmix = o.cutmix > 0 && (o.mixup <= 0 || rng.uniform() < (o.switchProb ?? 0.5));
  let lam = betaSample(rng, useCutmix ? o.cutmix : o.mixup);
  const original = Float32Array.from(images);
  const plane = h * w;
  if (useCutmix) {
    const cut = Math.sqrt(1 - lam);
    const [ch, cw] = [Math.floor(h * cut), Math.floor(w * cut)];
    const [cy, cx] = [rng.int(h), rng.int(w)];
    const [y0, y1] = [Math.max(cy - (ch >> 1), 0), Math.min(cy + (ch >> 1), h)];
    const [x0, x1] = [Math.max(cx - (cw >> 1), 0), Math.min(cx + (cw >> 1), w)];
    for (let s = 0; s < n; s++) {
      const partner = n - 1 - s;
      for (let k = 0; k < c; k++) {
        for (let y = y0; y < y1; y++) {
          const row = y * w;
          images.set(original.subarray((partner * c + k) * plane + row + x0, (partner * c + k) * plane + row + x1), (s * c + k) * plane + row + x0);
        }
      }
    }
    lam = 1 - ((y1 - y0) * (x1 - x0)) / plane; // the area actually pasted
  } else {
    const per = c * plane;
    for (let s = 0; s < n; s++) {
      const partner = n - 1 - s;
      for (let i = 0; i < per; i++) images[s * per + i] = original[s * per + i]! * lam + original[partner * per + i]! * (1 - lam);
    }
  }
  const k = o.numClasses;
  const out = new Float32Array(soft.length);
  for (let s = 0; s < n; s++) {
    const partner = n - 1 - s;
    for (let j = 0; j < k; j++) out[s * k + j] = soft[s * k + j]! * lam + soft[partner * k + j]! * (1 - lam);
  }
  return out;
}

/** Stochastic depth (blocks x N): per block k and sample, 0 with probability rate_k, else 1/(1 - rate_k). */
export function dropPathFactors(rng: Rng, rates: readonly number[], n: number): Float32Array {
  const out = new Float32Array(rates.length * n);
  rates.forEach((p, k) => {
    for (let s = 0; s < n; s++) out[k * n + s] = p > 0 && rng.uniform() < p ? 0 : 1 / (1 - p);
  });
  return out;
}
