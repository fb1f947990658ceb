// PIL's Image.resize(BICUBIC) for 8-bit gray and RGB in JavaScript, for small decoded images (png.ts), where
// sharp's per-call cost is many times the work: the same separable fixed-point arithmetic as PIL (and as
// the JPEG addon, native/jpeg_crop.c), horizontal pass first, each pass rounded to 8 bits, so results
// match torchvision exactly. Only the window of the resized image that is kept is computed.
import type { Pixels } from './png.ts';
import type { RgbImage } from './randaugment.ts';

// PIL's fixed-point weights for 8-bit images: 32 bits less 8 for the pixel and 2 for the sum.
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Filter taps of one axis for a window of outputs: first input index, tap count, fixed-point weights (`taps` slots per output). */
interface Axis {
  start: Int32Array;
  count: Int32Array;
  weight: Int32Array;
  taps: number;
  /** Input and output sizes equal: PIL skips the pass, every output is its input pixel. */
  identity: boolean;
}

/** PIL's bicubic kernel, a = -0.5. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/**
 * PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs first..first+n-1 of an input of inSize
 * pixels resized to outSize: the support widens with the downscale factor (antialiasing), taps are clamped
 * to the input, and the weights are rounded half away from zero to 22 fractional bits.
 */
function axisCoefficients(inSize: number, outSize: number, first: number, n: number): Axis {
  const key = `${inSize} ${outSize} ${first} ${n}`;
  let axis = cache.get(key);
  if (!axis) {
    // A loader sees few distinct sizes (one for eval and pad-crop, a few hundred crop sizes for small images).
    if (cache.size >= 1024) cache.clear();
    cache.set(key, (axis = computeAxis(inSize, outSize, first, n)));
  }
  return axis;
}

const cache = new Map<string, Axis>();

function computeAxis(inSize: number, outSize: number, first: number, n: number): Axis {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const axis = { start: new Int32Array(n), count: new Int32Array(n), weight: new Int32Array(n * taps), taps, identity: inSize === outSize };
  const k = new Float64Array(taps);
  for (let i = 0; i < n; i++) {
    const center = (first + i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let sum = 0;
    for (let t = 0; t < hi - lo; t++) sum += k[t] = bicubic((t + lo - center + 0.5) / filterScale);
    for (let t = 0; t < hi - lo; t++) {
      const w = sum !== 0 ? k[t]! / sum : k[t]!;
      axis.weight[i * taps + t] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    axis.start[i] = lo;
    axis.count[i] = hi - lo;
  }
  return axis;
}

const clip8 = (acc: number): number => {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** Horizontal pass over rows y0..y1 of the crop whose top-left pixel is src's (left, top): side pixels per row. */
function horizontal(src: Pixels, left: number, top: number, ax: Axis, side: number, y0: number, y1: number, first: number): Uint8Array {
  const ch = src.channels;
  const out = new Uint8Array((y1 - y0) * side * ch);
  const { data: d, width } = src;
  for (let y = y0; y < y1; y++) {
    const row = ((top + y) * width + left) * ch;
    const o = (y - y0) * side * ch;
    if (ax.identity) out.set(d.subarray(row + first * ch, row + (first + side) * ch), o);
    else if (ch === 3) horizontalRgb(d, row, ax, side, out, o);
    else horizontalGray(d, row, ax, side, out, o);
  }
  return out;
}

// Sums in int32 as PIL's are: 255 x the weights' absolute sum (< 1.3 x 2^22) stays below 2^31.
function horizontalRgb(d: Uint8Array, row: number, ax: Axis, side: number, out: Uint8Array, o: number): void {
  const { start, count, weight, taps } = ax;
  for (let x = 0; x < side; x++, o += 3) {
    let r = HALF;
    let g = HALF;
    let b = HALF;
    for (let t = 0, n = count[x]!, p = row + start[x]! * 3, w0 = x * taps; t < n; t++, p += 3) {
      const w = weight[w0 + t]!;
      r = (r + Math.imul(d[p]!, w)) | 0;
      g = (g + Math.imul(d[p + 1]!, w)) | 0;
      b = (b + Math.imul(d[p + 2]!, w)) | 0;
    }
    out[o] = clip8(r);
    out[o + 1] = clip8(g);
    out[o + 2] = clip8(b);
  }
}

function horizontalGray(d: Uint8Array, row: number, ax: Axis, side: number, out: Uint8Array, o: number): void {
  const { start, count, weight, taps } = ax;
  for (let x = 0; x < side; x++) {
    let v = HALF;
    for (let t = 0, n = count[x]!, p = row + start[x]!, w0 = x * taps; t < n; t++, p++) v = (v + Math.imul(d[p]!, weight[w0 + t]!)) | 0;
    out[o + x] = clip8(v);
  }
}

/** Vertical pass: each output row the weighted sum of `tmp` rows (row 0 of tmp is axis row y0). */
function vertical(tmp: Uint8Array, ay: Axis, side: number, ch: number, y0: number, first: number): Uint8Array {
  const out = new Uint8Array(side * side * ch);
  const len = side * ch;
  const { start, count, weight, taps } = ay;
  const acc = new Int32Array(len);
  for (let y = 0; y < side; y++) {
    if (ay.identity) {
      out.set(tmp.subarray((first + y - y0) * len, (first + y - y0 + 1) * len), y * len);
      continue;
    }
    // Row by row into the accumulators (contiguous reads, one weight per row), as the C addon does.
    acc.fill(HALF);
    for (let t = 0, n = count[y]!, p = (start[y]! - y0) * len, w0 = y * taps; t < n; t++, p += len) {
      const w = weight[w0 + t]!;
      for (let i = 0; i < len; i++) acc[i] = (acc[i]! + Math.imul(tmp[p + i]!, w)) | 0;
    }
    for (let i = 0, o = y * len; i < len; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

/** What to cut and resize: the crop `region` of src, resized to outWidth x outHeight, of which the side x side window at (left, top) is kept. */
export interface JsGeometry {
  region: { left: number; top: number; width: number; height: number };
  outWidth: number;
  outHeight: number;
  left: number;
  top: number;
  side: number;
}

/** Gray to RGB, each value three times. */
function grayToRgb(gray: Uint8Array): Uint8Array {
  const out = new Uint8Array(gray.length * 3);
  for (let i = 0, o = 0; i < gray.length; i++, o += 3) out[o] = out[o + 1] = out[o + 2] = gray[i]!;
  return out;
}

/**
 * torchvision's crop + resize(BICUBIC) (+ centre or other window) on gray or RGB pixels, exactly as PIL
 * computes it on the RGB image (a gray image's three equal channels resample alike), returned as RGB.
 */
export function cropResize(src: Pixels, g: JsGeometry): RgbImage {
  const { region: box, side } = g;
  const inside = box.left >= 0 && box.top >= 0 && box.left + box.width <= src.width && box.top + box.height <= src.height;
  if (!inside || g.left < 0 || g.top < 0 || g.left + side > g.outWidth || g.top + side > g.outHeight) throw new RangeError(`crop ${JSON.stringify(g)} outside a ${src.width}x${src.height} image`);
  const ax = axisCoefficients(box.width, g.outWidth, g.left, side);
  const ay = axisCoefficients(box.height, g.outHeight, g.top, side);
  // The crop rows the vertical taps read (all of the window's rows when that pass is skipped).
  let y0 = ay.identity ? g.top : box.height;
  let y1 = ay.identity ? g.top + side : 0;
  for (let i = 0; i < side && !ay.identity; i++) {
    y0 = Math.min(y0, ay.start[i]!);
    y1 = Math.max(y1, ay.start[i]! + ay.count[i]!);
  }
  const tmp = horizontal(src, box.left, box.top, ax, side, y0, y1, g.left);
  const out = vertical(tmp, ay, side, src.channels, y0, g.top);
  return { data: src.channels === 3 ? out : grayToRgb(out), width: side, height: side };
}
