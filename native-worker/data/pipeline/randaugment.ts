// RandAugment as timm's policy strings describe it (`rand-m9-mstd0.5-inc1` is the ConvNeXt fine-tuning
// recipe) on 8-bit RGB images: timm's two 15-op sets, level functions and fill colour. Geometric ops sample bilinearly where timm
// uses PIL bicubic; for augmentation the difference does not matter and bilinear is a third of the work.
import type { Rng } from '../../nn/random.ts';
import type { RandAugmentPolicy } from '../../../common/augment.ts';

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

/** PIL's blend truncates toward zero before clipping, as its C code converts float to int. */
const clampTrunc8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.trunc(v));

/** PIL ImageEnhance: out = degenerate + factor * (img - degenerate), truncated and clipped. */
function blend(img: RgbImage, degenerate: Uint8Array | ((i: number) => number), factor: number): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  if (typeof degenerate === 'function') {
    for (let i = 0; i < src.length; i++) {
      const d = degenerate(i);
      out[i] = clampTrunc8(d + factor * (src[i]! - d));
    }
  } else {
    for (let i = 0; i < src.length; i++) out[i] = clampTrunc8(degenerate[i]! + factor * (src[i]! - degenerate[i]!));
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

const posterize = (img: RgbImage, bits: number): RgbImage => {
  if (bits >= 8) return img;
  const mask = ~((1 << (8 - bits)) - 1) & 0xff;
  return mapLut(img, sameLut((v) => v & mask));
};
const solarize = (img: RgbImage, threshold: number) => mapLut(img, sameLut((v) => (v < threshold ? v : 255 - v)));
/** timm's _enhance_increasing_level_to_arg: 1 +- 0.9 m/10, the sign drawn. */
const increasingFactor = (m: number, rng: Rng) => 1 + randomlyNegate((m / MAX_MAGNITUDE) * 0.9, rng);
/** timm's _enhance_level_to_arg: 0.1 .. 1.9 as m goes 0 .. 10 (1.0 at m = 5). */
const factor = (m: number) => (m / MAX_MAGNITUDE) * 1.8 + 0.1;

/** Ops common to both of timm's sets, with their level-to-argument functions (magnitude m in 0..10). */
const SHARED: Record<string, Op['apply']> = {
  AutoContrast: (img) => autoContrast(img),
  Equalize: (img) => equalize(img),
  Invert: (img) => mapLut(img, sameLut((v) => 255 - v)),
  Rotate: (img, m, rng) => rotate(img, randomlyNegate((m / MAX_MAGNITUDE) * 30, rng)),
  SolarizeAdd: (img, m) => {
    const add = Math.trunc((m / MAX_MAGNITUDE) * 110);
    return mapLut(img, sameLut((v) => (v < 128 ? Math.min(255, v + add) : v)));
  },
  ShearX: (img, m, rng) => affine(img, [1, randomlyNegate((m / MAX_MAGNITUDE) * 0.3, rng), 0, 0, 1, 0]),
  ShearY: (img, m, rng) => affine(img, [1, 0, 0, randomlyNegate((m / MAX_MAGNITUDE) * 0.3, rng), 1, 0]),
  TranslateXRel: (img, m, rng) => affine(img, [1, 0, randomlyNegate((m / MAX_MAGNITUDE) * 0.45, rng) * img.width, 0, 1, 0]),
  TranslateYRel: (img, m, rng) => affine(img, [1, 0, 0, 0, 1, randomlyNegate((m / MAX_MAGNITUDE) * 0.45, rng) * img.height]),
};

const opList = (table: Record<string, Op['apply']>, names: readonly string[]): Op[] => names.map((name) => ({ name, apply: table[name]! }));

/** timm's _RAND_INCREASING_TRANSFORMS (`inc1`), in timm's order. */
export const INCREASING_OPS: readonly Op[] = opList(
  {
    ...SHARED,
    PosterizeIncreasing: (img, m) => posterize(img, 4 - Math.trunc((m / MAX_MAGNITUDE) * 4)),
    SolarizeIncreasing: (img, m) => solarize(img, 256 - Math.trunc((m / MAX_MAGNITUDE) * 256)),
    ColorIncreasing: (img, m, rng) => color(img, increasingFactor(m, rng)),
    ContrastIncreasing: (img, m, rng) => contrast(img, increasingFactor(m, rng)),
    BrightnessIncreasing: (img, m, rng) => brightness(img, increasingFactor(m, rng)),
    SharpnessIncreasing: (img, m, rng) => sharpness(img, increasingFactor(m, rng)),
  },
  ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing', 'SolarizeAdd', 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'],
);

/** timm's _RAND_TRANSFORMS (the default without `inc1`), in timm's order. */
export const ORIGINAL_OPS: readonly Op[] = opList(
  {
    ...SHARED,
    Posterize: (img, m) => posterize(img, Math.trunc((m / MAX_MAGNITUDE) * 4)),
    Solarize: (img, m) => solarize(img, Math.trunc((m / MAX_MAGNITUDE) * 256)),
    Color: (img, m) => color(img, factor(m)),
    Contrast: (img, m) => contrast(img, factor(m)),
    Brightness: (img, m) => brightness(img, factor(m)),
    Sharpness: (img, m) => sharpness(img, factor(m)),
  },
  ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'],
);

export function opByName(name: string): Op {
  const op = INCREASING_OPS.find((o) => o.name === name) ?? ORIGINAL_OPS.find((o) => o.name === name);
  if (!op) throw new Error(`unknown RandAugment op '${name}'`);
  return op;
}

/** Sees each applied op and its clipped magnitude (the statistical tests count them). */
export type OpObserver = (name: string, magnitude: number) => void;

/**
 * timm's RandAugment: `layers` ops drawn with replacement, each applied with probability `prob` at a
 * magnitude ~ N(m, mstd) (uniform in [0, m] when mstd is infinite) clipped to [0, mmax].
 */
export function randAugment(img: RgbImage, p: RandAugmentPolicy, rng: Rng, observe?: OpObserver): RgbImage {
  const ops = p.increasing ? INCREASING_OPS : ORIGINAL_OPS;
  for (let l = 0; l < p.layers; l++) {
    const op = ops[rng.int(0, ops.length)]!;
    if (p.prob < 1 && rng.float() > p.prob) continue;
    let m = p.magnitude;
    if (p.magnitudeStd === Infinity) m = rng.uniform(0, m);
    else if (p.magnitudeStd > 0) m += p.magnitudeStd * rng.normal();
    m = Math.max(0, Math.min(p.magnitudeMax, m));
    observe?.(op.name, m);
    img = op.apply(img, m, rng);
  }
  return img;
}
