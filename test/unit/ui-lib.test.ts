// The renderer's small pure helpers: axis ticks and labels, the grid's layout and keyboard moves, routes,
// progress estimates and confusion matrices.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cell, topConfusions } from '../../renderer/lib/confusion.ts';
import { RateEstimator } from '../../renderer/lib/eta.ts';
import { formatBytes, formatDuration, shellQuote } from '../../renderer/lib/format.ts';
import { formatRoute, parseRoute } from '../../renderer/lib/route.ts';
import { extentOf, formatNumber, logTicks, niceTicks, padExtent } from '../../renderer/lib/scale.ts';
import { gridLayout, moveFocus, pagesFor, scrollToRow, visibleRange } from '../../renderer/lib/virtual-grid.ts';

test('ticks are round numbers inside the range; log ticks are powers of ten', () => {
  const round = (a: number[]) => a.map((v) => Number(v.toFixed(12)));
  assert.deepEqual(round(niceTicks(0, 1, 5)), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(3, 97, 4), [20, 40, 60, 80]);
  assert.deepEqual(round(niceTicks(0.0013, 0.0042, 3)), [0.002, 0.003, 0.004]);
  assert.deepEqual(logTicks(1e-5, 1e-2), [1e-5, 1e-4, 1e-3, 1e-2]);
  assert.deepEqual(logTicks(0.15, 3), [0.2, 0.5, 1, 2]);
  assert.deepEqual(niceTicks(5, 5), [5]);
});

test('numbers read compactly', () => {
  assert.equal(formatNumber(0.81234), '0.812');
  assert.equal(formatNumber(0.0005), '5e-4');
  assert.equal(formatNumber(12345), '12.3k');
  assert.equal(formatNumber(2_500_000), '2.5M');
  assert.equal(formatNumber(40), '40');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatDuration(75), '1m 15s');
  assert.equal(formatDuration(3725), '1h 02m');
  assert.equal(formatDuration(null), '—');
});

test('shell words are quoted only when they need it, quotes included', () => {
  assert.equal(shellQuote('/ws/runs/a/step-4.safetensors'), '/ws/runs/a/step-4.safetensors');
  assert.equal(shellQuote('Ankle boot,Bag'), `'Ankle boot,Bag'`);
  assert.equal(shellQuote(`it's`), `'it'\\''s'`);
});

test('extents skip non-finite values (and non-positive ones on a log axis); a flat series gets a band', () => {
  assert.deepEqual(extentOf([Float32Array.of(NaN, 2, -1), [Infinity, 5]], false), { min: -1, max: 5 });
  assert.deepEqual(extentOf([[0, -3, 0.5, 4]], true), { min: 0.5, max: 4 });
  assert.equal(extentOf([[NaN]], false), null);
  assert.deepEqual(padExtent({ min: 2, max: 2 }, false), { min: 1.8, max: 2.2 });
});

test('grid layout: columns fill the width; only the rows on screen (plus overscan) are visible', () => {
  const L = gridLayout(1000, 100_000, { minCell: 120, gap: 8, caption: 22 });
  assert.equal(L.columns, 7);
  assert.equal(L.rows, Math.ceil(100_000 / 7));
  assert.equal(L.rowHeight, L.cellWidth + 22 + 8);
  const r = visibleRange(L, 100_000, 50 * L.rowHeight + 3, 600, 2);
  assert.equal(r.firstRow, 48);
  assert.equal(r.endRow, 50 + Math.ceil((600 + 3) / L.rowHeight) + 2);
  assert.equal(r.firstIndex, 48 * 7);
  const end = visibleRange(L, 100_000, L.totalHeight, 600, 2);
  assert.equal(end.endIndex, 100_000);
  assert.deepEqual(pagesFor(150, 450, 200), [0, 1, 2]);
  assert.deepEqual(pagesFor(400, 400, 200), []);
});

test('keyboard moves in the grid stay inside it; scrolling brings the focused row into view', () => {
  assert.equal(moveFocus('ArrowRight', 6, 7, 20, 3), 7);
  assert.equal(moveFocus('ArrowDown', 15, 7, 20, 3), 19);
  assert.equal(moveFocus('ArrowUp', 3, 7, 20, 3), 0);
  assert.equal(moveFocus('PageDown', 0, 7, 100, 3), 21);
  assert.equal(moveFocus('End', 0, 7, 100, 3), 99);
  assert.equal(moveFocus('x', 0, 7, 100, 3), null);
  const L = gridLayout(1000, 1000, { minCell: 120, gap: 8, caption: 22 });
  assert.equal(scrollToRow(L, 10, 0, 500), 11 * L.rowHeight - 500);
  assert.equal(scrollToRow(L, 2, 0, 500), 0);
  assert.equal(scrollToRow(L, 2, 10 * L.rowHeight, 500), 2 * L.rowHeight);
});

test('routes round-trip through the hash, with names that need escaping', () => {
  const r = { view: 'datasets' as const, id: 'fashion mnist/1', query: { label: 'T-shirt/top', split: 'val' } };
  assert.deepEqual(parseRoute(formatRoute(r)), r);
  assert.deepEqual(parseRoute('#/runs/abc?tab=logs'), { view: 'runs', id: 'abc', query: { tab: 'logs' } });
  assert.deepEqual(parseRoute('#/nowhere'), { view: 'datasets', id: null, query: {} });
  assert.equal(formatRoute({ view: 'train', query: { kind: 'finetune', dataset: undefined } }), '#/train?kind=finetune');
});

test('ETA: steps per second over a sliding window, restarting when a resume goes back', () => {
  const e = new RateEstimator(60_000);
  assert.equal(e.secondsLeft(100), null);
  e.add({ t: 0, step: 0 });
  e.add({ t: 10_000, step: 20 });
  assert.equal(e.stepsPerSecond(), 2);
  assert.equal(e.secondsLeft(100), 40);
  // The old rate ages out of the window: only the last minute counts.
  e.add({ t: 70_000, step: 140 });
  e.add({ t: 130_000, step: 200 });
  assert.equal(e.stepsPerSecond(), 1);
  e.add({ t: 140_000, step: 50 });
  assert.equal(e.stepsPerSecond(), null);
});

test('confusion: shares per true class, the biggest mistakes first', () => {
  const m = [
    [8, 2, 0],
    [1, 4, 5],
    [0, 0, 10],
  ];
  assert.deepEqual(cell(m, 1, 2), { truth: 1, predicted: 2, count: 5, share: 0.5 });
  assert.deepEqual(topConfusions(m, 2).map((c) => [c.truth, c.predicted]), [[1, 2], [0, 1]]);
});
