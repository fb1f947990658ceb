// Out-of-sample class probabilities from k-fold cross-validated linear probes: multinomial logistic
// regression (softmax + cross-entropy, L2 penalty) on standardized embeddings, trained with Adam on
// mini-batches. Every image's probabilities come from the probe that did not see it, which is what
// confident learning needs (an in-sample model would simply echo the given labels).
import { Rng } from '../nn/random.ts';

export interface ProbeOptions {
  folds: number;
  epochs: number;
  batch: number;
  lr: number;
  /** L2 penalty on the weights (not the biases). */
  l2: number;
  seed: number;
}

export const PROBE_DEFAULTS: ProbeOptions = { folds: 5, epochs: 10, batch: 128, lr: 0.01, l2: 1e-4, seed: 0 };

export interface LinearProbe {
  /** (k, d) row-major, then (k) biases, on standardized inputs. */
  w: Float32Array;
  b: Float32Array;
  mean: Float32Array;
  scale: Float32Array;
}

/** Fits a probe on rows `rows` of x (n, d) with labels in [0, k). */
export function fitProbe(x: Float32Array, d: number, labels: Int32Array, k: number, rows: Int32Array, o: ProbeOptions): LinearProbe {
  const { mean, scale } = standardization(x, d, rows);
  const w = new Float32Array(k * d);
  const b = new Float32Array(k);
  const adam = { mw: new Float32Array(k * d), vw: new Float32Array(k * d), mb: new Float32Array(k), vb: new Float32Array(k), t: 0 };
  const gw = new Float32Array(k * d);
  const gb = new Float32Array(k);
  const p = new Float32Array(k);
  // Standardized once: row r of z is rows[r] of x.
  const z = new Float32Array(rows.length * d);
  rows.forEach((i, r) => standardize(x, d, i, mean, scale, z.subarray(r * d, (r + 1) * d)));
  const order = Int32Array.from(rows.keys());
  const rng = new Rng(o.seed);
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    shuffle(order, rng);
    for (let at = 0; at < order.length; at += o.batch) {
      const end = Math.min(order.length, at + o.batch);
      gw.fill(0);
      gb.fill(0);
      for (let r = at; r < end; r++) {
        const xs = z.subarray(order[r]! * d, (order[r]! + 1) * d);
        softmaxRow(w, b, xs, d, k, p);
        p[labels[rows[order[r]!]!]!]! -= 1; // d(loss)/d(logits) = p - onehot
        for (let c = 0; c < k; c++) {
          const g = p[c]!;
          gb[c]! += g;
          const off = c * d;
          for (let j = 0; j < d; j++) gw[off + j]! += g * xs[j]!;
        }
      }
      const inv = 1 / (end - at);
      for (let j = 0; j < gw.length; j++) gw[j] = gw[j]! * inv + o.l2 * w[j]!;
      for (let c = 0; c < k; c++) gb[c]! *= inv;
      adamStep(w, gw, adam.mw, adam.vw, b, gb, adam.mb, adam.vb, ++adam.t, o.lr);
    }
  }
  return { w, b, mean, scale };
}

/** Class probabilities (k) of row i. */
export function predictRow(pr: LinearProbe, x: Float32Array, d: number, k: number, i: number, out = new Float32Array(k)): Float32Array {
  const xs = new Float32Array(d);
  standardize(x, d, i, pr.mean, pr.scale, xs);
  return softmaxRow(pr.w, pr.b, xs, d, k, out);
}

/**
 * Out-of-sample probabilities (n, k): rows split into `folds` stratified folds; each fold is predicted by
 * a probe fitted on the others. Rows with label -1 (unlabeled) get probabilities from the first probe.
 */
export function crossValidatedProbabilities(x: Float32Array, d: number, labels: Int32Array, k: number, opts: Partial<ProbeOptions> = {}, progress?: (fold: number) => void): Float32Array {
  const o = { ...PROBE_DEFAULTS, ...opts };
  const n = labels.length;
  const fold = stratifiedFolds(labels, k, o.folds, o.seed);
  const probs = new Float32Array(n * k);
  for (let f = 0; f < o.folds; f++) {
    progress?.(f);
    const train = Int32Array.from({ length: n }, (_, i) => i).filter((i) => labels[i]! >= 0 && fold[i] !== f);
    const probe = fitProbe(x, d, labels, k, train, { ...o, seed: o.seed + f });
    for (let i = 0; i < n; i++) if (fold[i] === f || (f === 0 && labels[i]! < 0)) predictRow(probe, x, d, k, i, probs.subarray(i * k, (i + 1) * k));
  }
  return probs;
}

/** Fold (0..folds-1) of each row, dealt round-robin within each class after a seeded shuffle; -1 rows get -1. */
export function stratifiedFolds(labels: Int32Array, k: number, folds: number, seed: number): Int8Array {
  const fold = new Int8Array(labels.length).fill(-1);
  const order = Int32Array.from({ length: labels.length }, (_, i) => i);
  shuffle(order, new Rng(seed));
  const next = new Int32Array(k);
  for (const i of order) {
    const y = labels[i]!;
    if (y >= 0) fold[i] = next[y]!++ % folds;
  }
  return fold;
}

function standardization(x: Float32Array, d: number, rows: Int32Array) {
  const mean = new Float32Array(d);
  const sq = new Float64Array(d);
  const sum = new Float64Array(d);
  for (const i of rows) for (let j = 0; j < d; j++) {
    const v = x[i * d + j]!;
    sum[j]! += v;
    sq[j]! += v * v;
  }
  const scale = new Float32Array(d);
  for (let j = 0; j < d; j++) {
    mean[j] = sum[j]! / rows.length;
    const sd = Math.sqrt(Math.max(0, sq[j]! / rows.length - mean[j]! ** 2));
    scale[j] = sd > 1e-8 ? 1 / sd : 0; // a constant feature carries nothing
  }
  return { mean, scale };
}

function standardize(x: Float32Array, d: number, i: number, mean: Float32Array, scale: Float32Array, out: Float32Array): void {
  for (let j = 0; j < d; j++) out[j] = (x[i * d + j]! - mean[j]!) * scale[j]!;
}

function softmaxRow(w: Float32Array, b: Float32Array, xs: Float32Array, d: number, k: number, out: Float32Array): Float32Array {
  let max = -Infinity;
  for (let c = 0; c < k; c++) {
    let z = b[c]!;
    const off = c * d;
    for (let j = 0; j < d; j++) z += w[off + j]! * xs[j]!;
    out[c] = z;
    if (z > max) max = z;
  }
  let total = 0;
  for (let c = 0; c < k; c++) total += out[c] = Math.exp(out[c]! - max);
  for (let c = 0; c < k; c++) out[c]! /= total;
  return out;
}

function adamStep(w: Float32Array, gw: Float32Array, mw: Float32Array, vw: Float32Array, b: Float32Array, gb: Float32Array, mb: Float32Array, vb: Float32Array, t: number, lr: number): void {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const step = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
  for (const [p, g, m, v] of [[w, gw, mw, vw], [b, gb, mb, vb]] as const) {
    for (let j = 0; j < p.length; j++) {
      m[j] = b1 * m[j]! + (1 - b1) * g[j]!;
      v[j] = b2 * v[j]! + (1 - b2) * g[j]! * g[j]!;
      p[j]! -= (step * m[j]!) / (Math.sqrt(v[j]!) + eps);
    }
  }
}

function shuffle(a: Int32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}
