// Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset
// Labels", JAIR 2021) over out-of-sample probabilities:
//   threshold t_j = mean predicted probability of class j over the images labelled j;
//   an image labelled i is counted in cell (i, j) of the confident joint when p_j >= t_j (the most probable
//   such j when several pass);
//   the off-diagonal cells hold the images whose given label is probably wrong.
// Each flagged image gets the class of its cell as the suggested label and 1 - p(given) as its score
// (cleanlab's self-confidence ranking: higher = more likely mislabelled).

export interface LabelIssue {
  /** Row in the probabilities. */
  row: number;
  given: number;
  suggested: number;
  /** 1 - p(given label): in [0, 1], higher is more suspect. */
  score: number;
}

export interface ConfidentResult {
  thresholds: Float32Array;
  /** (k, k) counts: row = given label, column = confidently predicted class. */
  joint: Int32Array;
  /** Off-diagonal images, most suspect first. */
  issues: LabelIssue[];
  /** 1 - p(given) of every labelled row (-1 for unlabeled rows): the full ranking. */
  scores: Float32Array;
}

export function perClassThresholds(probs: Float32Array, labels: Int32Array, k: number): Float32Array {
  const sum = new Float64Array(k);
  const count = new Int32Array(k);
  labels.forEach((y, i) => {
    if (y < 0) return;
    sum[y]! += probs[i * k + y]!;
    count[y]!++;
  });
  // A class nobody carries cannot be confidently predicted.
  return Float32Array.from(sum, (s, j) => (count[j] ? s / count[j]! : Infinity));
}

export function confidentLearning(probs: Float32Array, labels: Int32Array, k: number): ConfidentResult {
  const thresholds = perClassThresholds(probs, labels, k);
  const joint = new Int32Array(k * k);
  const issues: LabelIssue[] = [];
  const scores = new Float32Array(labels.length).fill(-1);
  labels.forEach((y, i) => {
    if (y < 0) return;
    const p = probs.subarray(i * k, (i + 1) * k);
    scores[i] = 1 - p[y]!;
    let best = -1;
    for (let j = 0; j < k; j++) if (p[j]! >= thresholds[j]! && (best < 0 || p[j]! > p[best]!)) best = j;
    if (best < 0) return;
    joint[y * k + best]!++;
    if (best !== y) issues.push({ row: i, given: y, suggested: best, score: scores[i]! });
  });
  issues.sort((a, b) => b.score - a.score);
  return { thresholds, joint, issues, scores };
}
