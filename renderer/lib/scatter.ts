// The dataset map's geometry and pixels: a pan/zoom view over 2D points, drawing them straight into an
// ImageData buffer (100k points are ~400k pixel writes, about a millisecond, so every frame redraws
// everything), picking the point under the pointer, and box / lasso selection.

export interface View {
  /** Data coordinates at the canvas centre. */
  cx: number;
  cy: number;
  /** Canvas pixels per data unit. */
  scale: number;
}

export interface Size {
  width: number;
  height: number;
}

/** A view that shows every point with a margin. */
export function fitView(xs: ArrayLike<number>, ys: ArrayLike<number>, s: Size): View {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < xs.length; i++) {
    x0 = Math.min(x0, xs[i]!);
    x1 = Math.max(x1, xs[i]!);
    y0 = Math.min(y0, ys[i]!);
    y1 = Math.max(y1, ys[i]!);
  }
  if (!(x1 >= x0)) return { cx: 0, cy: 0, scale: 1 };
  const scale = 0.9 * Math.min(s.width / Math.max(x1 - x0, 1e-9), s.height / Math.max(y1 - y0, 1e-9));
  return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, scale };
}

export const toScreen = (v: View, s: Size, x: number, y: number): [number, number] => [(x - v.cx) * v.scale + s.width / 2, (y - v.cy) * v.scale + s.height / 2];
export const toData = (v: View, s: Size, px: number, py: number): [number, number] => [(px - s.width / 2) / v.scale + v.cx, (py - s.height / 2) / v.scale + v.cy];

/** Zooms by `factor` keeping the data point under (px, py) where it is. */
export function zoomAt(v: View, s: Size, px: number, py: number, factor: number): View {
  const [x, y] = toData(v, s, px, py);
  const scale = Math.max(1e-6, Math.min(1e6, v.scale * factor));
  return { scale, cx: x - (px - s.width / 2) / scale, cy: y - (py - s.height / 2) / scale };
}

export const panBy = (v: View, dx: number, dy: number): View => ({ ...v, cx: v.cx - dx / v.scale, cy: v.cy - dy / v.scale });

/**
 * Draws every point as a `dot`-px square of its colour (ABGR, as a Uint32Array view of ImageData) over
 * `background`; points drawn later cover earlier ones, so callers order the ones to stand out last.
 */
export function drawPoints(buf: Uint32Array, s: Size, xs: ArrayLike<number>, ys: ArrayLike<number>, colors: Uint32Array, v: View, background: number, dot = 2, order?: ArrayLike<number>): void {
  buf.fill(background);
  const { width, height } = s;
  // Locals only inside the loop: `v` may be a reactive proxy, whose every read is a trap call.
  const scale = v.scale;
  const ox = width / 2 - v.cx * scale;
  const oy = height / 2 - v.cy * scale;
  const n = xs.length;
  for (let k = 0; k < n; k++) {
    const i = order ? order[k]! : k;
    const px = Math.floor(xs[i]! * scale + ox);
    const py = Math.floor(ys[i]! * scale + oy);
    if (px < 0 || py < 0 || px + dot > width || py + dot > height) continue;
    const c = colors[i]!;
    const at = py * width + px;
    if (dot === 2) {
      // The common case without a call per row: four stores.
      buf[at] = c;
      buf[at + 1] = c;
      buf[at + width] = c;
      buf[at + width + 1] = c;
    } else for (let dy = 0; dy < dot; dy++) buf.fill(c, at + dy * width, at + dy * width + dot);
  }
}

/** The point nearest to (px, py) within `radius` screen pixels, or -1. */
export function pick(xs: ArrayLike<number>, ys: ArrayLike<number>, v: View, s: Size, px: number, py: number, radius = 6): number {
  const [x, y] = toData(v, s, px, py);
  const r = radius / v.scale;
  let best = -1;
  let bestD = r * r;
  for (let i = 0; i < xs.length; i++) {
    const d = (xs[i]! - x) ** 2 + (ys[i]! - y) ** 2;
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

/** Whether (x, y) lies inside the polygon [x0, y0, x1, y1, ...] (even-odd rule). */
export function insidePolygon(poly: readonly number[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 2; i < poly.length; j = i, i += 2) {
    const [xi, yi, xj, yj] = [poly[i]!, poly[i + 1]!, poly[j]!, poly[j + 1]!];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Indices of the points inside a screen-space polygon (a box is a 4-corner polygon). */
export function selectPolygon(xs: ArrayLike<number>, ys: ArrayLike<number>, v: View, s: Size, screenPoly: readonly number[]): number[] {
  if (screenPoly.length < 6) return [];
  const poly = screenPoly.map((t, k) => (k % 2 ? toData(v, s, 0, t)[1] : toData(v, s, t, 0)[0]));
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let k = 0; k < poly.length; k += 2) {
    x0 = Math.min(x0, poly[k]!);
    x1 = Math.max(x1, poly[k]!);
    y0 = Math.min(y0, poly[k + 1]!);
    y1 = Math.max(y1, poly[k + 1]!);
  }
  const out: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    const [x, y] = [xs[i]!, ys[i]!];
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && insidePolygon(poly, x, y)) out.push(i);
  }
  return out;
}

export const boxPolygon = (ax: number, ay: number, bx: number, by: number) => [ax, ay, bx, ay, bx, by, ax, by];

/** An opaque colour as the Uint32 that ImageData's little-endian RGBA bytes read as. */
export const abgr = (r: number, g: number, b: number) => (0xff000000 | (b << 16) | (g << 8) | r) >>> 0;

/** A categorical palette (10 well-separated hues, then repeats). */
export const PALETTE: readonly [number, number, number][] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

/** Cold-to-hot colour of a value in [0, 1]. */
export function heat(t: number): number {
  const u = Math.max(0, Math.min(1, t));
  return abgr(Math.round(40 + 215 * u), Math.round(90 + 60 * (1 - Math.abs(2 * u - 1)) - 40 * u), Math.round(200 * (1 - u) + 30));
}

/** Per point: a category index (colour from the palette; -1 grey) or a score in [0, 1] (heat). */
export function categoryColors(cats: ArrayLike<number>): Uint32Array {
  return Uint32Array.from({ length: cats.length }, (_, i) => {
    const c = cats[i]!;
    const p = PALETTE[c % PALETTE.length];
    return c >= 0 && p ? abgr(...p) : abgr(150, 150, 150);
  });
}

/** Scores as heat by their rank (so a few extreme values do not wash the rest out). */
export function rankColors(scores: ArrayLike<number>): Uint32Array {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  const out = new Uint32Array(scores.length);
  order.forEach((i, r) => (out[i] = heat(scores.length > 1 ? r / (scores.length - 1) : 0)));
  return out;
}

/** A '#rrggbb' (or '#rgb') CSS colour as abgr; anything else gives `fallback`. */
export function hexColor(s: string, fallback = abgr(255, 255, 255)): number {
  const h = s.trim().replace(/^#/, '');
  const full = h.length === 3 ? [...h].map((c) => c + c).join('') : h;
  if (!/^[0-9a-f]{6}$/i.test(full)) return fallback;
  return abgr(parseInt(full.slice(0, 2), 16), parseInt(full.slice(2, 4), 16), parseInt(full.slice(4, 6), 16));
}
