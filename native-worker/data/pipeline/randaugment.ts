// RandAugment as timm's `rand-m{M}-mstd{S}-inc1` (the ConvNeXt fine-tuning recipe) on 8-bit RGB images:
// the same 15 "increasing" ops, level functions and fill colour. Geometric ops sample bilinearly where timm
// uses PIL bicubic; for augmentation the difference does not matter and bilinear is a third of the work.
import type { Rng } from '../../nn/random.ts';
import type { RandAugmentConfig } from './config.ts';

/** Interleaved RGB, row-major: data[(y * width + x) * 3 + c]. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** timm fills uncovered pixels with the ImageNet mean in 0..255. */
export const FILL: readonly [number, number, number] = [124, 116, 104];
export const MAX_MAGNITUDE = 10;

const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
const randomlyNegate = (v: number, rng: Rng) => (rng.float() > 0.5 ? -v : v);

function mapLut(img: RgbImage, luts: readonly Uint8Array[]): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i += 3) {
    out[i] = luts[0]![src[i]!]!;
    out[i + 1] = luts[1]![src[i + 1]!]!;
    out[i + 2] = luts[2]![src[i + 2]!]!;
  }
  return { ...img, data: out };
}

const sameLut = (f: (v: number) => number) => {
  const lut = Uint8Array.from({ length: 256 }, (_, v) => clamp8(f(v)));
  return [lut, lut, lut];
};

function histograms(img: RgbImage): Uint32Array[] {
  const h = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    h[0]![d[i]!]!++;
    h[1]![d[i + 1]!]!++;
    h[2]![d[i + 2]!]!++;
  }
  return h;
}

/** PIL ImageOps.autocontrast (cutoff 0): stretch each channel's [min, max] to [0, 255]. */
function autoContrast(img: RgbImage): RgbImage {
  const luts = histograms(img).map((h) => {
    let lo = 0;
    while (lo < 255 && h[lo] === 0) lo++;
    let hi = 255;
    while (hi > 0 && h[hi] === 0) hi--;
    const lut = new Uint8Array(256);
    for (let v = 0; v < 256; v++) lut[v] = hi <= lo ? v : Math.max(0, Math.min(255, Math.trunc((v - lo) * (255 / (hi - lo)))));
    return lut;
  });
  return mapLut(img, luts);
}

/** PIL ImageOps.equalize, per channel. */
function equalize(img: RgbImage): RgbImage {
  const luts = histograms(img).map((h) => {
    const lut = Uint8Array.from({ length: 256 }, (_, v) => v);
    let last = 255;
    while (last > 0 && h[last] === 0) last--;
    let total = 0;
    for (const c of h) total += c;
    const step = Math.floor((total - h[last]!) / 255);
    if (step === 0) return lut;
    let n = Math.floor(step / 2);
    for (let v = 0; v < 256; v++) {
      lut[v] = Math.min(255, Math.floor(n / step));
      n += h[v]!;
    }
    return lut;
  });
  return mapLut(img, luts);
}

/** ITU-R 601 luma as PIL's convert('L') computes it. */
const luma = (r: number, g: number, b: number) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

/** PIL ImageEnhance: out = degenerate + factor * (img - degenerate), clipped. */
function blend(img: RgbImage, degenerate: Uint8Array | ((i: number) => number), factor: number): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  if (typeof degenerate === 'function') {
    for (let i = 0; i < src.length; i++) {
      const d = degenerate(i);
      out[i] = clamp8(d + factor * (src[i]! - d));
    }
  } else {
    for (let i = 0; i < src.length; i++) out[i] = clamp8(degenerate[i]! + factor * (src[i]! - degenerate[i]!));
  }
  return { ...img, data: out };
}

function color(img: RgbImage, factor: number): RgbImage {
  const d = img.data;
  const gray = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i += 3) gray[i] = gray[i + 1] = gray[i + 2] = luma(d[i]!, d[i + 1]!, d[i + 2]!);
  return blend(img, gray, factor);
}

function contrast(img: RgbImage, factor: number): RgbImage {
  const d = img.data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 3) sum += luma(d[i]!, d[i + 1]!, d[i + 2]!);
  const mean = Math.trunc(sum / (d.length / 3) + 0.5);
  return blend(img, () => mean, factor);
}

function brightness(img: RgbImage, factor: number): RgbImage {
  return blend(img, () => 0, factor);
}

/** PIL's SMOOTH filter (3x3, centre 5, others 1, /13) inside, original pixels on the border. */
function sharpness(img: RgbImage, factor: number): RgbImage {
  const { data: d, width: w, height: h } = img;
  const smooth = Uint8Array.from(d);
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (y * w + x) * 3 + c;
        let s = 4 * d[i]!;
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += d[i + (dy * w + dx) * 3]!;
        smooth[i] = clamp8(s / 13);
      }
    }
  }
  return blend(img, smooth, factor);
}

/**
 * PIL-style affine warp: output pixel (x, y) samples the input at (a x' + b y' + c, d x' + e y' + f) with
 * pixel-centre coordinates (x' = x + 0.5); samples outside the image take the fill colour.
 */
function affine(img: RgbImage, m: readonly [number, number, number, number, number, number]): RgbImage {
  const { data: src, width: w, height: h } = img;
  const out = new Uint8Array(src.length);
  const [a, b, c, d, e, f] = m;
  const px = [0, 0, 0];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = a * (x + 0.5) + b * (y + 0.5) + c - 0.5;
      const sy = d * (x + 0.5) + e * (y + 0.5) + f - 0.5;
      const o = (y * w + x) * 3;
      if (sx <= -1 || sy <= -1 || sx >= w || sy >= h) {
        out[o] = FILL[0];
        out[o + 1] = FILL[1];
        out[o + 2] = FILL[2];
        continue;
      }
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      for (let ch = 0; ch < 3; ch++) px[ch] = 0;
      for (let k = 0; k < 4; k++) {
        const xx = x0 + (k & 1);
        const yy = y0 + (k >> 1);
        const wgt = (k & 1 ? fx : 1 - fx) * (k >> 1 ? fy : 1 - fy);
        if (wgt === 0) continue;
        const inside = xx >= 0 && yy >= 0 && xx < w && yy < h;
        const s = (yy * w + xx) * 3;
        for (let ch = 0; ch < 3; ch++) px[ch]! += wgt * (inside ? src[s + ch]! : FILL[ch as 0 | 1 | 2]);
      }
      out[o] = clamp8(px[0]!);
      out[o + 1] = clamp8(px[1]!);
      out[o + 2] = clamp8(px[2]!);
    }
  }
  return { ...img, data: out };
}

/** PIL Image.rotate(degrees): counter-clockwise about the centre. */
function rotate(img: RgbImage, degrees: number): RgbImage {
  const t = (-degrees * Math.PI) / 180;
  const [cos, sin] = [Math.cos(t), Math.sin(t)];
  const cx = img.width / 2;
  const cy = img.height / 2;
  // input = R (out - centre) + centre, R = [[cos, sin], [-sin, cos]]
  return affine(img, [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy]);
}

interface Op {
  name: string;
  apply(img: RgbImage, magnitude: number, rng: Rng): RgbImage;
}

/** timm's _RAND_INCREASING_TRANSFORMS with their level-to-argument functions (magnitude m in 0..10). */
export const RAND_AUGMENT_OPS: readonly Op[] = [
  { name: 'AutoContrast', apply: (img) => autoContrast(img) },
  { name: 'Equalize', apply: (img) => equalize(img) },
  { name: 'Invert', apply: (img) => mapLut(img, sameLut((v) => 255 - v)) },
  { name: 'Rotate', apply: (img, m, rng) => rotate(img, randomlyNegate((m / MAX_MAGNITUDE) * 30, rng)) },
  {
    name: 'PosterizeIncreasing',
    apply: (img, m) => {
      const bits = 4 - Math.trunc((m / MAX_MAGNITUDE) * 4);
      if (bits >= 8) return img;
      const mask = ~((1 << (8 - bits)) - 1) & 0xff;
      return mapLut(img, sameLut((v) => v & mask));
    },
  },
  {
    name: 'SolarizeIncreasing',
    apply: (img, m) => {
      const threshold = 256 - Math.trunc((m / MAX_MAGNITUDE) * 256);
      return mapLut(img, sameLut((v) => (v < threshold ? v : 255 - v)));
    },
  },
  {
    name: 'SolarizeAdd',
    apply: (img, m) => {
      const add = Math.trunc((m / MAX_MAGNITUDE) * 110);
      return mapLut(img, sameLut((v) => (v < 128 ? Math.min(255, v + add) : v)));
    },
  },
  { name: 'ColorIncreasing', apply: (img, m, rng) => color(img, 1 + randomlyNegate((m / MAX_MAGNITUDE) * 0.9, rng)) },
  { name: 'ContrastIncreasing', apply: (img, m, rng) => contrast(img, 1 + randomlyNegate((m / MAX_MAGNITUDE) * 0.9, rng)) },
  { name: 'BrightnessIncreasing', apply: (img, m, rng) => brightness(img, 1 + randomlyNegate((m / MAX_MAGNITUDE) * 0.9, rng)) },
  { name: 'SharpnessIncreasing', apply: (img, m, rng) => sharpness(img, 1 + randomlyNegate((m / MAX_MAGNITUDE) * 0.9, rng)) },
  { name: 'ShearX', apply: (img, m, rng) => affine(img, [1, randomlyNegate((m / MAX_MAGNITUDE) * 0.3, rng), 0, 0, 1, 0]) },
  { name: 'ShearY', apply: (img, m, rng) => affine(img, [1, 0, 0, randomlyNegate((m / MAX_MAGNITUDE) * 0.3, rng), 1, 0]) },
  { name: 'TranslateXRel', apply: (img, m, rng) => affine(img, [1, 0, randomlyNegate((m / MAX_MAGNITUDE) * 0.45, rng) * img.width, 0, 1, 0]) },
  { name: 'TranslateYRel', apply: (img, m, rng) => affine(img, [1, 0, 0, 0, 1, randomlyNegate((m / MAX_MAGNITUDE) * 0.45, rng) * img.height]) },
];

export function opByName(name: string): Op {
  const op = RAND_AUGMENT_OPS.find((o) => o.name === name);
  if (!op) throw new Error(`unknown RandAugment op '${name}'`);
  return op;
}

/** `layers` ops drawn with replacement, each applied with probability `prob` at magnitude ~ N(m, mstd). */
export function randAugment(img: RgbImage, cfg: RandAugmentConfig, rng: Rng): RgbImage {
  for (let l = 0; l < cfg.layers; l++) {
    const op = RAND_AUGMENT_OPS[rng.int(0, RAND_AUGMENT_OPS.length)]!;
    if (cfg.prob < 1 && rng.float() > cfg.prob) continue;
    const m = cfg.magnitudeStd > 0 ? cfg.magnitude + cfg.magnitudeStd * rng.normal() : cfg.magnitude;
    img = op.apply(img, Math.max(0, Math.min(MAX_MAGNITUDE, m)), rng);
  }
  return img;
}
