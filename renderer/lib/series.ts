// A metric series for drawing: entries in ascending step order, each a (fromStep..toStep, min, max, last)
// bucket: one step as the worker reported it, or a bucket as metrics.series returns it. Appends are O(1)
// amortized and a min/max pyramid lets a chart reduce any step range to pixel columns in O(columns), so a
// run with millions of logged steps draws as fast as a short one and a live point never re-reads history.
import type { MetricSeries } from '../../common/api.ts';

/** Per pixel column: NaN where a column holds no finite value. */
export interface Columns {
  readonly count: number;
  readonly min: Float32Array;
  readonly max: Float32Array;
  /** The value at the column's latest step. */
  readonly last: Float32Array;
}

const INITIAL = 256;

function grow<T extends Float32Array | Float64Array>(a: T, size: number): T {
  if (a.length >= size) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(size, a.length * 2));
  b.set(a);
  return b;
}

/** NaN-skipping min/max: a NaN never wins, and a finite value always beats NaN. */
const lower = (a: number, b: number) => (b < a || a !== a ? b : a);
const higher = (a: number, b: number) => (b > a || a !== a ? b : a);

export class SeriesBuffer {
  length = 0;
  private from = new Float64Array(INITIAL);
  private to = new Float64Array(INITIAL);
  private lo = new Float32Array(INITIAL);
  private hi = new Float32Array(INITIAL);
  private lastV = new Float32Array(INITIAL);
  /** levels[k-1] holds min/max of blocks of 2^k entries (the last block may be partial). */
  private readonly levels: { lo: Float32Array; hi: Float32Array; count: number }[] = [];

  static fromMetricSeries(s: MetricSeries): SeriesBuffer {
    const b = new SeriesBuffer();
    for (let i = 0; i < s.toStep.length; i++) b.append(s.toStep[i]!, s.last[i] ?? NaN, s.min[i] ?? NaN, s.max[i] ?? NaN, s.fromStep[i]!);
    return b;
  }

  get firstStep(): number {
    return this.length ? this.from[0]! : NaN;
  }

  get lastStep(): number {
    return this.length ? this.to[this.length - 1]! : NaN;
  }

  /**
   * Adds an entry after the others. Returns false (and keeps nothing) for a step at or before the last one:
   * live events that overlap what a fetch already returned are dropped rather than drawn twice.
   */
  append(step: number, last: number, min = last, max = last, fromStep = step): boolean {
    if (this.length && step <= this.to[this.length - 1]!) return false;
    const n = this.length;
    this.from = grow(this.from, n + 1);
    this.to = grow(this.to, n + 1);
    this.lo = grow(this.lo, n + 1);
    this.hi = grow(this.hi, n + 1);
    this.lastV = grow(this.lastV, n + 1);
    this.from[n] = fromStep;
    this.to[n] = step;
    this.lo[n] = min;
    this.hi[n] = max;
    this.lastV[n] = last;
    this.length = n + 1;
    // Fold the new entry into the block that holds it at every level.
    for (let k = 1; 1 << k <= this.length; k++) {
      let level = this.levels[k - 1];
      if (!level) this.levels.push((level = { lo: new Float32Array(INITIAL), hi: new Float32Array(INITIAL), count: 0 }));
      const block = n >> k;
      if (block === level.count) {
        level.lo = grow(level.lo, block + 1);
        level.hi = grow(level.hi, block + 1);
        level.lo[block] = NaN;
        level.hi[block] = NaN;
        level.count++;
      }
      level.lo[block] = lower(level.lo[block]!, min);
      level.hi[block] = higher(level.hi[block]!, max);
    }
    return true;
  }

  /** Index of the first entry whose toStep >= step. */
  private firstAtOrAfter(step: number): number {
    return this.partition((m) => this.to[m]! < step);
  }

  /** Index of the first entry whose fromStep > step. */
  private firstAfter(step: number): number {
    return this.partition((m) => this.from[m]! <= step);
  }

  /** Binary search: the first index where `before` turns false (it is true for a prefix of the entries). */
  private partition(before: (i: number) => boolean): number {
    let a = 0;
    let b = this.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (before(m)) a = m + 1;
      else b = m;
    }
    return a;
  }

  /**
   * Reduces the entries in [fromStep, toStep] to `count` columns of equal step width. Uses pyramid blocks
   * about half a column wide, so the cost is O(count) however many entries the range holds; a block is
   * attributed to the column of its last entry (an error of at most one column at the finest zoom level).
   */
  columns(fromStep: number, toStep: number, count: number, out?: Columns): Columns {
    const cols = out && out.count === count ? out : { count, min: new Float32Array(count), max: new Float32Array(count), last: new Float32Array(count) };
    cols.min.fill(NaN);
    cols.max.fill(NaN);
    cols.last.fill(NaN);
    if (!this.length || count < 1 || !(toStep >= fromStep)) return cols;
    const start = this.firstAtOrAfter(fromStep);
    const end = this.firstAfter(toStep);
    const span = Math.max(toStep - fromStep, 1e-9);
    const column = (step: number) => Math.min(count - 1, Math.max(0, Math.floor(((step - fromStep) / span) * count)));
    const k = Math.min(this.levels.length, Math.max(0, Math.floor(Math.log2(Math.max(1, (end - start) / (2 * count))))));
    const size = 1 << k;
    let i = start;
    while (i < end) {
      if (k > 0 && (i & (size - 1)) === 0 && i + size <= end) {
        const level = this.levels[k - 1]!;
        const b = i >> k;
        const c = column(this.to[i + size - 1]!);
        cols.min[c] = lower(cols.min[c]!, level.lo[b]!);
        cols.max[c] = higher(cols.max[c]!, level.hi[b]!);
        const v = this.lastV[i + size - 1]!;
        if (v === v) cols.last[c] = v;
        i += size;
      } else {
        const c = column(this.to[i]!);
        cols.min[c] = lower(cols.min[c]!, this.lo[i]!);
        cols.max[c] = higher(cols.max[c]!, this.hi[i]!);
        const v = this.lastV[i]!;
        if (v === v) cols.last[c] = v;
        i++;
      }
    }
    return cols;
  }

  /** The entry nearest to `step` (for hover read-outs), or null when empty. */
  nearest(step: number): { fromStep: number; step: number; min: number; max: number; last: number } | null {
    if (!this.length) return null;
    let i = this.firstAtOrAfter(step);
    if (i >= this.length) i = this.length - 1;
    else if (i > 0 && step - this.to[i - 1]! < this.from[i]! - step) i--;
    return { fromStep: this.from[i]!, step: this.to[i]!, min: this.lo[i]!, max: this.hi[i]!, last: this.lastV[i]! };
  }

  /** The last finite value, or null. */
  latest(): { step: number; value: number } | null {
    for (let i = this.length - 1; i >= 0; i--) {
      const v = this.lastV[i]!;
      if (v === v) return { step: this.to[i]!, value: v };
    }
    return null;
  }
}
