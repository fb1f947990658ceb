// The chart's series buffer: what a chart draws for a step range must agree with the raw points, at every
// zoom level and pyramid level, whether the series holds ten points or a million.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeriesBuffer } from '../../renderer/lib/series.ts';

/** A seeded series with noise, spikes and a few missing values. */
function sample(n: number, seed = 1): { steps: number[]; values: number[] } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const steps: number[] = [];
  const values: number[] = [];
  let step = 0;
  for (let i = 0; i < n; i++) {
    step += 1 + Math.floor(rnd() * 3);
    steps.push(step);
    const v = 2 * Math.exp(-i / (n / 3)) + 0.1 * rnd() + (rnd() < 0.002 ? 5 : 0);
    values.push(rnd() < 0.01 ? NaN : v);
  }
  return { steps, values };
}

function fill(steps: number[], values: number[]): SeriesBuffer {
  const b = new SeriesBuffer();
  steps.forEach((s, i) => b.append(s, values[i]!));
  return b;
}

/** Brute force: each raw point into the column of its step. */
function reference(steps: number[], values: number[], from: number, to: number, count: number) {
  const min = new Array<number>(count).fill(NaN);
  const max = new Array<number>(count).fill(NaN);
  const span = Math.max(to - from, 1e-9);
  steps.forEach((s, i) => {
    const v = values[i]!;
    if (s < from || s > to || Number.isNaN(v)) return;
    const c = Math.min(count - 1, Math.floor(((s - from) / span) * count));
    min[c] = Number.isNaN(min[c]!) ? v : Math.min(min[c]!, v);
    max[c] = Number.isNaN(max[c]!) ? v : Math.max(max[c]!, v);
  });
  return { min, max };
}

test('few points: columns equal the raw points exactly', () => {
  const { steps, values } = sample(300);
  const b = fill(steps, values);
  const cols = b.columns(steps[0]!, steps.at(-1)!, 1000);
  const ref = reference(steps, values, steps[0]!, steps.at(-1)!, 1000);
  for (let c = 0; c < 1000; c++) {
    assert.equal(Number.isNaN(cols.min[c]!), Number.isNaN(ref.min[c]!), `column ${c}`);
    if (!Number.isNaN(ref.min[c]!)) {
      assert.equal(cols.min[c], Math.fround(ref.min[c]!));
      assert.equal(cols.max[c], Math.fround(ref.max[c]!));
    }
  }
});

test('a million points: the overall extent is exact and each column stays within its neighbour columns', () => {
  const { steps, values } = sample(1_000_000, 7);
  const b = fill(steps, values);
  assert.equal(b.length, 1_000_000);
  for (const [from, to, count] of [
    [steps[0]!, steps.at(-1)!, 800],
    [steps[1000]!, steps[400_000]!, 1200],
    [steps[500_000]!, steps[501_000]!, 640],
  ] as const) {
    const cols = b.columns(from, to, count);
    const ref = reference(steps, values, from, to, count);
    const finite = (a: ArrayLike<number>) => Array.from(a).filter((v) => !Number.isNaN(v));
    // Float32 storage: compare at float precision.
    assert.equal(Math.min(...finite(cols.min)), Math.fround(Math.min(...finite(ref.min))));
    assert.equal(Math.max(...finite(cols.max)), Math.fround(Math.max(...finite(ref.max))));
    // A block is drawn in the column of its last point: its points come from that column or the one before.
    for (let c = 0; c < count; c++) {
      if (Number.isNaN(cols.min[c]!)) continue;
      const lo = Math.min(...[ref.min[c - 1] ?? NaN, ref.min[c]!].filter((v) => !Number.isNaN(v)));
      const hi = Math.max(...[ref.max[c - 1] ?? NaN, ref.max[c]!].filter((v) => !Number.isNaN(v)));
      assert.ok(cols.min[c]! >= Math.fround(lo) && cols.max[c]! <= Math.fround(hi), `column ${c} of [${from}, ${to}]`);
    }
  }
});

test('reducing a million points to 1000 columns reads blocks, not points (fast enough per frame)', () => {
  const { steps, values } = sample(1_000_000, 3);
  const b = fill(steps, values);
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) b.columns(steps[0]!, steps.at(-1)!, 1000);
  const perCall = (performance.now() - t0) / 50;
  // A full scan of 1M points takes several ms; the pyramid answers in well under one.
  assert.ok(perCall < 2, `columns() took ${perCall.toFixed(3)} ms`);
});

test('appends at or before the last step are dropped (live events overlapping a fetch)', () => {
  const b = new SeriesBuffer();
  assert.equal(b.append(5, 1), true);
  assert.equal(b.append(5, 2), false);
  assert.equal(b.append(3, 2), false);
  assert.equal(b.append(6, 3), true);
  assert.equal(b.length, 2);
  assert.deepEqual(b.latest(), { step: 6, value: 3 });
});

test('server buckets keep their step range and min/max; nearest() reads a bucket', () => {
  const b = SeriesBuffer.fromMetricSeries({ name: 'loss', fromStep: [1, 11], toStep: [10, 20], min: [0.5, 0.25], max: [2, 0.75], last: [1, null], count: [10, 10] });
  assert.equal(b.firstStep, 1);
  assert.equal(b.lastStep, 20);
  assert.deepEqual(b.nearest(12), { fromStep: 11, step: 20, min: 0.25, max: 0.75, last: NaN });
  assert.deepEqual(b.latest(), { step: 10, value: 1 });
  const cols = b.columns(1, 20, 2);
  assert.deepEqual([...cols.min], [0.5, 0.25]);
  assert.deepEqual([...cols.max], [2, 0.75]);
  assert.ok(Number.isNaN(cols.last[1]!));
});
