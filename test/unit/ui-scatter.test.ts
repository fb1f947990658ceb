// The dataset map's geometry: zoom keeps the point under the pointer, pan moves by screen pixels, picking,
// box and lasso selection, and drawing into an ImageData-shaped buffer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { abgr, boxPolygon, drawPoints, fitView, hexColor, insidePolygon, panBy, pick, selectPolygon, toData, toScreen, zoomAt } from '../../renderer/lib/scatter.ts';

const size = { width: 200, height: 100 };
const xs = Float32Array.from([0, 10, 10, 0, 5]);
const ys = Float32Array.from([0, 0, 10, 10, 5]);

test('fit shows every point; zoom keeps the point under the pointer; pan moves by screen pixels', () => {
  const v = fitView(xs, ys, size);
  for (let i = 0; i < xs.length; i++) {
    const [px, py] = toScreen(v, size, xs[i]!, ys[i]!);
    assert.ok(px >= 0 && px <= 200 && py >= 0 && py <= 100, `point ${i} at ${px},${py}`);
  }
  const [x, y] = toData(v, size, 30, 70);
  const z = zoomAt(v, size, 30, 70, 3.5);
  const [x2, y2] = toData(z, size, 30, 70);
  assert.ok(Math.abs(x - x2) < 1e-9 && Math.abs(y - y2) < 1e-9);
  assert.equal(z.scale, v.scale * 3.5);
  const p = panBy(v, 10, -4);
  const before = toScreen(v, size, 5, 5);
  const after = toScreen(p, size, 5, 5);
  assert.deepEqual([after[0] - before[0], after[1] - before[1]].map((d) => Math.round(d * 1e9) / 1e9), [10, -4]);
});

test('pick, box and lasso selection', () => {
  const v = fitView(xs, ys, size);
  const [cx, cy] = toScreen(v, size, 5, 5);
  assert.equal(pick(xs, ys, v, size, cx + 2, cy - 2), 4);
  assert.equal(pick(xs, ys, v, size, cx + 30, cy), -1);
  const [ax, ay] = toScreen(v, size, -1, -1);
  const [bx, by] = toScreen(v, size, 6, 6);
  assert.deepEqual(selectPolygon(xs, ys, v, size, boxPolygon(ax, ay, bx, by)), [0, 4]);
  // A triangle around (0,0), (10,0) and the centre, but not the top corners.
  const tri = [[-1, -1], [11, -1], [5, 6]].flatMap(([x, y]) => toScreen(v, size, x!, y!));
  assert.deepEqual(selectPolygon(xs, ys, v, size, tri), [0, 1, 4]);
  assert.equal(insidePolygon([0, 0, 4, 0, 4, 4, 0, 4], 2, 2), true);
  assert.equal(insidePolygon([0, 0, 4, 0, 4, 4, 0, 4], 5, 2), false);
});

test('drawing: each visible point is a dot of its colour over the background', () => {
  const buf = new Uint32Array(size.width * size.height);
  const v = { cx: 5, cy: 5, scale: 5 };
  const colors = Uint32Array.from([1, 2, 3, 4, 5].map((k) => abgr(k, 0, 0)));
  drawPoints(buf, size, xs, ys, colors, v, hexColor('#fff'), 2);
  const [px, py] = toScreen(v, size, 10, 10).map(Math.floor) as [number, number];
  assert.equal(buf[py * size.width + px], colors[2]);
  assert.equal(buf[(py + 1) * size.width + px + 1], colors[2]);
  assert.equal(buf[0], abgr(255, 255, 255));
  assert.equal(buf.filter((c) => c !== abgr(255, 255, 255)).length, 5 * 4);
  assert.equal(hexColor('#1c2027'), abgr(0x1c, 0x20, 0x27));
});
