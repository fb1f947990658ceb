// A 2D map of the embeddings, UMAP's way (McInnes, Healy & Melville 2018), over the exact kNN graph we
// already have: fuzzy neighbour weights exp(-(d - rho_i) / sigma_i) with sigma_i set so each row's weights
// sum to log2(k), symmetrized as a + b - ab; a PCA start; then SGD that pulls edges together with
// 1 / (1 + a d^2b) and pushes random pairs apart (negative sampling), the learning rate falling to 0.
// Our own instead of umap-js: that library recomputes approximate neighbours (NN-descent) that we have
// exactly, and adds a dependency for ~100 lines.
import { Rng } from '../nn/random.ts';
import type { Neighbours } from './neighbours.ts';

// a, b for min_dist 0.1, spread 1 (UMAP's defaults, from its curve fit).
const A = 1.577;
const B = 0.895;

export interface ProjectionOptions {
  epochs: number;
  negatives: number;
  seed: number;
}

/** (n, 2) coordinates of rows of x (n, d) with neighbours nb. */
export function project(x: Float32Array, d: number, nb: Neighbours, opts: Partial<ProjectionOptions> = {}): Float32Array {
  const n = x.length / d;
  // UMAP's defaults: 500 epochs for small sets, 200 from 10k points (here from 2k: the layout settles early).
  const o = { epochs: n > 2000 ? 200 : 500, negatives: 5, seed: 0, ...opts };
  const edges = fuzzyEdges(nb);
  const y = pcaStart(x, d, o.seed);
  const rng = new Rng(o.seed);
  const maxW = edges.w.reduce((a, b) => Math.max(a, b), 0);
  const every = Float32Array.from(edges.w, (w) => maxW / w); // epochs between samples of each edge
  const next = Float32Array.from(every);
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const alpha = 1 - epoch / o.epochs;
    for (let e = 0; e < every.length; e++) {
      if (next[e]! > epoch + 1) continue;
      next[e]! += every[e]!;
      const [i, j] = [edges.from[e]!, edges.to[e]!];
      move(y, i, j, alpha, true);
      for (let s = 0; s < o.negatives; s++) move(y, i, Math.floor(rng.uniform() * n), alpha, false);
    }
  }
  return y;
}

function move(y: Float32Array, i: number, j: number, alpha: number, attract: boolean): void {
  if (i === j) return;
  const dx = y[2 * i]! - y[2 * j]!;
  const dy = y[2 * i + 1]! - y[2 * j + 1]!;
  const d2 = dx * dx + dy * dy;
  let c = 0;
  if (d2 > 0) {
    const p = d2 ** (B - 1); // one pow per update: d2^b = p * d2
    c = attract ? (-2 * A * B * p) / (1 + A * p * d2) : (2 * B) / ((0.001 + d2) * (1 + A * p * d2));
  }
  const gx = Math.max(-4, Math.min(4, c * dx)) * alpha;
  const gy = Math.max(-4, Math.min(4, c * dy)) * alpha;
  y[2 * i]! += gx;
  y[2 * i + 1]! += gy;
  if (attract) {
    y[2 * j]! -= gx;
    y[2 * j + 1]! -= gy;
  }
}

/** The symmetric fuzzy graph as an edge list (each pair once). */
export function fuzzyEdges(nb: Neighbours): { from: Int32Array; to: Int32Array; w: Float32Array } {
  const { k } = nb;
  const n = nb.index.length / k;
  const target = Math.log2(Math.max(2, k));
  const weights = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const dist = Array.from({ length: k }, (_, j) => 1 - nb.similarity[i * k + j]!);
    const rho = dist[0]!;
    const sigma = solveSigma(dist, rho, target);
    dist.forEach((dj, j) => {
      const other = nb.index[i * k + j]!;
      if (other < 0) return;
      const w = Math.exp(-Math.max(0, dj - rho) / sigma);
      const key = Math.min(i, other) * n + Math.max(i, other);
      const prev = weights.get(key);
      weights.set(key, prev === undefined ? w : prev + w - prev * w);
    });
  }
  const from = new Int32Array(weights.size);
  const to = new Int32Array(weights.size);
  const w = new Float32Array(weights.size);
  let e = 0;
  for (const [key, v] of weights) {
    from[e] = Math.floor(key / n);
    to[e] = key % n;
    w[e++] = v;
  }
  return { from, to, w };
}

/** sigma with sum_j exp(-(d_j - rho) / sigma) = target, by bisection. */
function solveSigma(dist: number[], rho: number, target: number): number {
  let [lo, hi] = [1e-6, 1e3];
  for (let it = 0; it < 64; it++) {
    const mid = (lo + hi) / 2;
    const s = dist.reduce((a, dj) => a + Math.exp(-Math.max(0, dj - rho) / mid), 0);
    if (s > target) hi = mid;
    else lo = mid;
  }
  return (lo + hi) / 2;
}

/** The first two principal components (power iteration), scaled to a spread of about 10. */
function pcaStart(x: Float32Array, d: number, seed: number): Float32Array {
  const n = x.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += x[i * d + j]! / n;
  const rng = new Rng(seed + 1);
  const comps: Float64Array[] = [];
  const y = new Float32Array(2 * n);
  for (let c = 0; c < 2; c++) {
    let v = Float64Array.from({ length: d }, () => rng.uniform() - 0.5);
    for (let it = 0; it < 30; it++) {
      const proj = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) proj[i]! += (x[i * d + j]! - mean[j]!) * v[j]!;
      const next = new Float64Array(d);
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) next[j]! += proj[i]! * (x[i * d + j]! - mean[j]!);
      for (const u of comps) {
        const dot = next.reduce((a, t, j) => a + t * u[j]!, 0);
        for (let j = 0; j < d; j++) next[j]! -= dot * u[j]!;
      }
      const norm = Math.hypot(...next) || 1;
      v = next.map((t) => t / norm);
    }
    comps.push(v);
    let max = 1e-12;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x[i * d + j]! - mean[j]!) * v[j]!;
      y[2 * i + c] = s;
      max = Math.max(max, Math.abs(s));
    }
    for (let i = 0; i < n; i++) y[2 * i + c] = (y[2 * i + c]! / max) * 10;
  }
  return y;
}
