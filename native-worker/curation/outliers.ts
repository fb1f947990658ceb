// Outlier scores: each image's squared Mahalanobis distance from the dataset's mean, over the middle
// stages' pooled features (embedder.ts), with the covariance shrunk towards a multiple of the identity
// (by max(1%, d / n) of the mean variance).
// Measured on Fashion-MNIST with a short fine-tune (docs/curation.md): noise and colour pictures mixed in
// rank in the top 0.4% this way, while the cosine distance to the k-th neighbour in the last stage's
// embedding put them in the middle, because the last stage maps anything onto the trained classes.
// Cost: n * d^2 / 2 multiply-adds twice (covariance, then the whitening), in float64 on the CPU; atto's
// d = 240 and 10k images take about a second.

export interface OutlierOptions {
  /** Fraction of the mean variance added to the diagonal; default max(1%, d / n): with fewer images than
   * features the sample covariance is singular and every image would sit at about the same distance. */
  shrink?: number;
}

export const OUTLIER_SHRINK = 0.01;

/** Squared Mahalanobis distance of every row of x (n, d) from the rows' mean. */
export function mahalanobisScores(x: Float32Array, d: number, o: OutlierOptions = {}): Float32Array {
  const n = x.length / d;
  if (!Number.isInteger(n) || n < 2 || d < 1) throw new RangeError(`outlier scores need at least 2 rows of ${d} values, got ${x.length} values`);
  const mean = columnMeans(x, d);
  const cov = covariance(x, d, mean);
  let trace = 0;
  for (let i = 0; i < d; i++) trace += cov[i * d + i]!;
  const ridge = ((o.shrink ?? Math.max(OUTLIER_SHRINK, d / n)) * trace) / d || 1e-12;
  for (let i = 0; i < d; i++) cov[i * d + i]! += ridge;
  const lower = cholesky(cov, d);
  const out = new Float32Array(n);
  const z = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    // Forward substitution: L z = x - mean, then |z|^2 = (x - mean)' C^-1 (x - mean).
    let s = 0;
    for (let i = 0; i < d; i++) {
      let v = x[r * d + i]! - mean[i]!;
      for (let k = 0; k < i; k++) v -= lower[i * d + k]! * z[k]!;
      z[i] = v / lower[i * d + i]!;
      s += z[i]! * z[i]!;
    }
    out[r] = s;
  }
  return out;
}

function columnMeans(x: Float32Array, d: number): Float64Array {
  const n = x.length / d;
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j]! += x[r * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  return mean;
}

/** The (d, d) covariance (dividing by n) of the rows of x about `mean`. */
function covariance(x: Float32Array, d: number, mean: Float64Array): Float64Array {
  const n = x.length / d;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) c[j] = x[r * d + j]! - mean[j]!;
    for (let i = 0; i < d; i++) {
      const ci = c[i]!;
      const row = i * d;
      for (let j = 0; j <= i; j++) cov[row + j]! += ci * c[j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      cov[i * d + j]! /= n;
      cov[j * d + i] = cov[i * d + j]!;
    }
  }
  return cov;
}

/** Lower-triangular L with L L' = a (symmetric positive definite, d x d). */
function cholesky(a: Float64Array, d: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j]!;
      for (let k = 0; k < j; k++) s -= l[i * d + k]! * l[j * d + k]!;
      if (i === j) {
        if (!(s > 0)) throw new Error(`outlier scores: the feature covariance is not positive definite at column ${i}`);
        l[i * d + i] = Math.sqrt(s);
      } else {
        l[i * d + j] = s / l[j * d + j]!;
      }
    }
  }
  return l;
}
