// Size outliers judged against the dataset itself: an image is 'small' or 'large' when its area is far from
// the dataset's median area, and 'aspect' when its shape is far from the median shape, on a log scale with
// a robust spread (median absolute deviation), so a dataset of 28x28 images has none and a folder of phone
// photos flags the thumbnail among them. An absolute minimum size is a different question (see
// belowInputSize in stats.ts): it depends on the input size chosen for training, not on the data.

/** Images of one width x height and how many there are. */
export interface SizeGroup {
  width: number;
  height: number;
  n: number;
}

export type OutlierReason = 'small' | 'large' | 'aspect';

export interface SizeOutliers {
  counts: Record<OutlierReason, number>;
  /** The median width and height, or null for an empty dataset. */
  typical: { width: number; height: number } | null;
  /** The outlying groups, most extreme first. */
  groups: (SizeGroup & { reason: OutlierReason; score: number })[];
}

// A modified z-score above 3.5 is Iglewicz and Hoaglin's outlier rule; 1.4826 * MAD estimates the standard
// deviation of normal data. The floors keep near-uniform datasets (MAD ~ 0) from flagging small
// differences: an area at least 4x (a side 2x) away, or a shape at least 2x more elongated.
const Z = 3.5;
const MAD_TO_SIGMA = 1.4826;
const MIN_AREA_STEP = Math.log(4);
const MIN_ASPECT_STEP = Math.log(2);

/** The weighted median of values with counts. */
function weightedMedian(items: { v: number; n: number }[]): number {
  const sorted = [...items].sort((a, b) => a.v - b.v);
  const total = sorted.reduce((s, x) => s + x.n, 0);
  let seen = 0;
  for (const x of sorted) {
    seen += x.n;
    if (seen * 2 >= total) return x.v;
  }
  return NaN;
}

/** Center and the distance beyond which a value is an outlier. */
function robustBand(items: { v: number; n: number }[], floor: number): { center: number; limit: number } {
  const center = weightedMedian(items);
  const mad = weightedMedian(items.map((x) => ({ v: Math.abs(x.v - center), n: x.n })));
  return { center, limit: Math.max(Z * MAD_TO_SIGMA * mad, floor) };
}

export function sizeOutliers(groups: readonly SizeGroup[]): SizeOutliers {
  const counts: Record<OutlierReason, number> = { small: 0, large: 0, aspect: 0 };
  if (!groups.length) return { counts, typical: null, groups: [] };
  const area = robustBand(groups.map((g) => ({ v: Math.log(g.width * g.height), n: g.n })), MIN_AREA_STEP);
  const shape = robustBand(groups.map((g) => ({ v: Math.log(g.width / g.height), n: g.n })), MIN_ASPECT_STEP);
  const out: SizeOutliers['groups'] = [];
  for (const g of groups) {
    const a = (Math.log(g.width * g.height) - area.center) / area.limit;
    const s = Math.abs(Math.log(g.width / g.height) - shape.center) / shape.limit;
    const reason: OutlierReason | null = a < -1 ? 'small' : a > 1 ? 'large' : s > 1 ? 'aspect' : null;
    if (!reason) continue;
    counts[reason] += g.n;
    out.push({ ...g, reason, score: Math.max(Math.abs(a), s) });
  }
  const typical = {
    width: weightedMedian(groups.map((g) => ({ v: g.width, n: g.n }))),
    height: weightedMedian(groups.map((g) => ({ v: g.height, n: g.n }))),
  };
  return { counts, typical, groups: out.sort((x, y) => y.score - x.score) };
}
