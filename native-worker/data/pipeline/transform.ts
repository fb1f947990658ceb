// One sample through the transform: decode + crop + resize (+ flip), then RandAugment, normalize to float32
// CHW and random erasing. Plain JPEGs go through the libjpeg-turbo addon when it is built (native-jpeg.ts),
// small plain PNGs through a JS decoder and resampler (png.ts, js-geometry.ts), everything else through
// sharp. The same function serves the loader workers and the UI preview.
import { readFileSync } from 'node:fs';
import sharp, { type Sharp, type SharpOptions } from 'sharp';
import { Rng } from '../../nn/random.ts';
import { mixSeed } from '../rng.ts';
import { DEFAULT_MAX_PIXELS } from '../import/analyze.ts';
import type { TransformConfig } from './config.ts';
import { readJpegHeader } from './jpeg-header.ts';
import { cropResize } from './js-geometry.ts';
import { nativeCropResize } from './native-jpeg.ts';
import { type Pixels, decodePng, readPngHeader } from './png.ts';
import { type OpObserver, type RgbImage, randAugment } from './randaugment.ts';

/** Python's round(): halves go to the even neighbour (torchvision's crop arithmetic uses it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** torchvision RandomResizedCrop.get_params: 10 tries at a random area/aspect, then a centre fallback. */
export function sampleResizedCrop(width: number, height: number, scale: readonly [number, number], ratio: readonly [number, number], rng: Rng): CropBox {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: rng.int(0, height - h + 1), left: rng.int(0, width - w + 1), height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Per-sample seed: a function of (seed, epoch, index) only, so worker count and timing cannot matter. */
export const sampleSeed = (seed: number, epoch: number, index: number): number => mixSeed(seed, epoch, index);

const SHRINK_ON_LOAD = new Set(['jpeg', 'webp']);

/** Decoder options shared by every path: EXIF orientation applied, bombs refused, damaged data tolerated. */
const decodeOptions = { autoOrient: true, limitInputPixels: DEFAULT_MAX_PIXELS, failOn: 'none' } as const;

/** Any input (gray, CMYK, 16-bit, alpha) to 8-bit sRGB with exactly three channels. */
const toRgb8 = (s: Sharp) => s.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' });

/** What the geometry stage decodes from: the file's bytes, or (for images with alpha) RGB pixels. */
interface Source {
  input: Buffer;
  options: SharpOptions;
  /** Oriented size. */
  width: number;
  height: number;
  format: string;
  /** A JPEG the addon may decode: upright, gray or RGB, no ICC profile for sharp to apply. */
  native: boolean;
}

/** Plain JPEGs are described from their header in JS; anything else asks libvips. */
async function openSource(buf: Buffer): Promise<Source> {
  const jpeg = readJpegHeader(buf);
  if (jpeg && jpeg.orientation === 1) {
    const native = !jpeg.icc && (jpeg.components === 1 || jpeg.components === 3);
    return { input: buf, options: decodeOptions, width: jpeg.width, height: jpeg.height, format: 'jpeg', native };
  }
  const meta = await sharp(buf, decodeOptions).metadata();
  if (meta.hasAlpha) {
    // Drop alpha before resampling, as PIL's convert('RGB') does: sharp would premultiply in 8 bits to
    // resize, shifting translucent colours by several levels.
    const { data, info } = await toRgb8(sharp(buf, decodeOptions)).toBuffer({ resolveWithObject: true });
    return { input: data, options: { raw: { width: info.width, height: info.height, channels: 3 } }, width: info.width, height: info.height, format: 'raw', native: false };
  }
  return { input: buf, options: decodeOptions, width: meta.autoOrient.width, height: meta.autoOrient.height, format: meta.format, native: false };
}

async function rawRgb(s: Sharp, file: string, size: number): Promise<RgbImage> {
  const { data, info } = await toRgb8(s).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size) {
    throw new Error(`${file}: decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: size, height: size };
}

/** Mirrors left-right in place (cheaper here than libvips' flop, which buffers the whole image). */
export function flipHorizontal(img: RgbImage): void {
  const { data: d, width: w, height: h } = img;
  for (let y = 0; y < h; y++) {
    for (let l = y * w * 3, r = (y * w + w - 1) * 3; l < r; l += 3, r -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = d[l + c]!;
        d[l + c] = d[r + c]!;
        d[r + c] = t;
      }
    }
  }
}

/**
 * One sample's geometry: `region` of the (oriented) image resized to outWidth x outHeight, of which the
 * size x size window at (left, top) is kept, mirrored when `flip`.
 */
interface Plan {
  region: CropBox;
  outWidth: number;
  outHeight: number;
  left: number;
  top: number;
  flip: boolean;
  /** Resize the whole image, then cut the window (eval, pad-crop); else cut the region, then resize. */
  whole: boolean;
  /** Pad-crop: the window's offset from the centred one, uncovered pixels black. */
  shiftX: number;
  shiftY: number;
}

/** Train: RandomResizedCrop + horizontal flip, drawn in that order. */
function trainPlan(W: number, H: number, cfg: TransformConfig, rng: Rng): Plan {
  const region = sampleResizedCrop(W, H, cfg.scale, cfg.ratio, rng);
  const flip = rng.chance(cfg.hflip);
  return { region, outWidth: cfg.size, outHeight: cfg.size, left: 0, top: 0, flip, whole: false, shiftX: 0, shiftY: 0 };
}

/**
 * Pad-crop (torchvision RandomCrop(size, padding=N), black fill, then flip): the image at size x size
 * (shorter side resized, centre crop), and a window offset by -N..N pixels each way.
 */
function padCropPlan(W: number, H: number, cfg: TransformConfig, pad: number, rng: Rng): Plan {
  const plan = evalPlan(W, H, cfg.size, 1);
  const top = rng.int(0, 2 * pad + 1);
  const left = rng.int(0, 2 * pad + 1);
  return { ...plan, shiftX: left - pad, shiftY: top - pad, flip: rng.chance(cfg.hflip) };
}

/** Eval: shorter side to floor(size / cropPct) (bicubic), centre crop, as timm/torchvision do. */
function evalPlan(W: number, H: number, size: number, cropPct: number): Plan {
  const short = Math.floor(size / cropPct);
  // torchvision Resize(int): the shorter side becomes `short`, the longer int(short * long / shorter).
  const [rw, rh] = W <= H ? [short, Math.trunc((short * H) / W)] : [Math.trunc((short * W) / H), short];
  const region = { top: 0, left: 0, width: W, height: H };
  return { region, outWidth: rw, outHeight: rh, left: roundHalfEven((rw - size) / 2), top: roundHalfEven((rh - size) / 2), flip: false, whole: true, shiftX: 0, shiftY: 0 };
}

/**
 * The plan in libvips, flip left to the caller. Train: one call that cuts the crop before the resize, so
 * only the crop is resampled and the JPEG is decoded no further down than the crop's bottom. When the crop
 * is at least three times the output size (and the format supports it), the whole image is instead resized
 * so that the crop lands on size x size and cut out afterwards: libvips then decodes the JPEG shrunk on
 * load (2x/4x/8x in the DCT) and never below the output resolution.
 */
function sharpGeometry(src: Source, plan: Plan, cfg: TransformConfig): Sharp {
  const { region: box, outWidth: rw, outHeight: rh } = plan;
  const size = cfg.size;
  const s = sharp(src.input, src.options);
  if (plan.whole) {
    // fastShrinkOnLoad off: keep at least a 2x kernel reduction, closer to PIL's exact bicubic.
    return s.resize(rw, rh, { fit: 'fill', kernel: 'cubic', fastShrinkOnLoad: false }).extract({ left: plan.left, top: plan.top, width: size, height: size });
  }
  // sharp only shrinks on load when the shrink factor exceeds the load factor by one (a libjpeg rounding
  // guard), so below 3x there is nothing to gain over cropping first.
  if (SHRINK_ON_LOAD.has(src.format) && Math.min(box.width, box.height) >= 3 * size) {
    const fx = size / box.width;
    const fy = size / box.height;
    const w = Math.max(size, Math.round(src.width * fx));
    const h = Math.max(size, Math.round(src.height * fy));
    const left = Math.min(w - size, Math.round(box.left * fx));
    const top = Math.min(h - size, Math.round(box.top * fy));
    return s.resize(w, h, { fit: 'fill', kernel: 'cubic' }).extract({ left, top, width: size, height: size });
  }
  return s.extract(box).resize(size, size, { fit: 'fill', kernel: 'cubic' });
}

/** Per-channel lookup tables (v / 255 - mean) / std: normalisation without a division per pixel. */
export function normalizeLuts(cfg: Pick<TransformConfig, 'mean' | 'std'>): Float32Array[] {
  return [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, v) => (v / 255 - cfg.mean[c]!) / cfg.std[c]!));
}

/** HWC uint8 -> CHW float32 at out[offset..], mirrored left-right when `flip` (free in this pass). */
function normalizeInto(img: RgbImage, luts: readonly Float32Array[], out: Float32Array, offset: number, flip: boolean): void {
  const { data: d, width: w, height: h } = img;
  const plane = w * h;
  const [l0, l1, l2] = luts as [Float32Array, Float32Array, Float32Array];
  const [o0, o1, o2] = [out.subarray(offset, offset + plane), out.subarray(offset + plane, offset + 2 * plane), out.subarray(offset + 2 * plane, offset + 3 * plane)];
  for (let y = 0; y < h; y++) {
    const row = y * w;
    const step = flip ? -3 : 3;
    for (let x = 0, i = (flip ? row + w - 1 : row) * 3; x < w; x++, i += step) {
      const p = row + x;
      o0[p] = l0[d[i]!]!;
      o1[p] = l1[d[i + 1]!]!;
      o2[p] = l2[d[i + 2]!]!;
    }
  }
}

/** What a sample's random choices were: the statistical tests compare them between engines. */
export interface SampleObserver {
  op?: OpObserver;
  erase?: (box: CropBox) => void;
}

/**
 * timm RandomErasing on normalized CHW: 1..recount boxes, each of area 2%..33% of the image / count and
 * log-uniform aspect 0.3..3.3 (10 tries), filled per `remode` with N(0, 1) per pixel, per channel, or 0.
 */
function randomErase(out: Float32Array, offset: number, cfg: TransformConfig, rng: Rng, observe?: SampleObserver): void {
  const size = cfg.size;
  const area = size * size;
  const count = cfg.recount === 1 ? 1 : rng.int(1, cfg.recount + 1);
  const logAspect = [Math.log(0.3), Math.log(1 / 0.3)] as const;
  for (let k = 0; k < count; k++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const target = (rng.uniform(0.02, 1 / 3) * area) / count;
      const aspect = Math.exp(rng.uniform(logAspect[0], logAspect[1]));
      const h = roundHalfEven(Math.sqrt(target * aspect));
      const w = roundHalfEven(Math.sqrt(target / aspect));
      if (w < size && h < size) {
        const box = { top: rng.int(0, size - h + 1), left: rng.int(0, size - w + 1), height: h, width: w };
        fillBox(out, offset, size, box, cfg.remode, rng);
        observe?.erase?.(box);
        break;
      }
    }
  }
}

function fillBox(out: Float32Array, offset: number, size: number, box: CropBox, mode: TransformConfig['remode'], rng: Rng): void {
  for (let c = 0; c < 3; c++) {
    const colour = mode === 'rand' ? rng.normal() : 0;
    for (let y = box.top; y < box.top + box.height; y++) {
      const row = offset + c * size * size + y * size;
      for (let x = box.left; x < box.left + box.width; x++) out[row + x] = mode === 'pixel' ? rng.normal() : colour;
    }
  }
}

/** Moves the picture by (dx, dy) pixels in place; what comes into view is black (pad-crop's zero padding). */
export function shiftImage(img: RgbImage, dx: number, dy: number): void {
  const { data: d, width: w, height: h } = img;
  const src = Uint8Array.from(d);
  d.fill(0);
  for (let y = Math.max(0, dy); y < Math.min(h, h + dy); y++) {
    const x0 = Math.max(0, dx);
    const x1 = Math.min(w, w + dx);
    d.set(src.subarray(((y - dy) * w + x0 - dx) * 3, ((y - dy) * w + x1 - dx) * 3), (y * w + x0) * 3);
  }
}

/** The plan for one sample: eval geometry, pad-crop or RandomResizedCrop (each draws its flip). */
function planFor(W: number, H: number, cfg: TransformConfig, rng: Rng): Plan {
  if (!cfg.train) return evalPlan(W, H, cfg.size, cfg.cropPct);
  return cfg.padCrop !== null ? padCropPlan(W, H, cfg, cfg.padCrop, rng) : trainPlan(W, H, cfg, rng);
}

/** Decoded geometry: written normalized into `out` already (img null), or RGB pixels, flipped when `flip`. */
interface Decoded {
  img: RgbImage | null;
  flip: boolean;
}

/**
 * PNGs up to this many pixels are decoded and resampled in JS (png.ts, js-geometry.ts) when png.ts takes
 * them: sharp costs ~1.5 ms a call whatever the size, the JS path ~0.1-0.25 ms at 28x28 and grows with the
 * pixels. Eval at 32 px, CPU ms per image, JS vs sharp (`npm run bench:data-png`, half gray, half RGB):
 * 128^2 0.59 vs 2.05, 256^2 2.2 vs 3.3, 384^2 3.3 vs 5.0, 512^2 6.2 vs 5.5. The limit leaves a margin
 * below the crossover (between 384^2 and 512^2, nearer 384^2 for RGB, which resamples three channels).
 */
export const JS_PNG_MAX_PIXELS = 256 * 256;

let pngMode: 'auto' | 'sharp' | 'js' = 'auto';

/**
 * Tests and benchmarks compare both paths in one process: 'sharp' turns the JS PNG path off, 'js' lifts its
 * size limit (for measuring where it stops winning), 'auto' is the default.
 */
export function setPngDecoder(which: 'auto' | 'sharp' | 'js'): void {
  pngMode = which;
}

/** A small plain PNG's pixels, or null for sharp to decode. */
function smallPng(buf: Buffer): Pixels | null {
  const header = pngMode === 'sharp' ? null : readPngHeader(buf);
  const limit = pngMode === 'js' ? DEFAULT_MAX_PIXELS : JS_PNG_MAX_PIXELS;
  return header?.plain && header.width * header.height <= limit ? decodePng(buf, DEFAULT_MAX_PIXELS) : null;
}

/** The plan through the JPEG addon (when it takes the file) or sharp. */
async function libGeometry(buf: Buffer, file: string, src: Source, plan: Plan, cfg: TransformConfig, needRgb: boolean, out: Float32Array, offset: number): Promise<Decoded> {
  const native = src.native ? nativeCropResize() : null;
  const size = cfg.size;
  if (native) {
    // Flipped and normalized straight into the batch, or flipped RGB when more work comes next.
    const spec = { ...plan.region, outWidth: plan.outWidth, outHeight: plan.outHeight, windowLeft: plan.left, windowTop: plan.top, size, flip: plan.flip, mean: cfg.mean, std: cfg.std, maxPixels: DEFAULT_MAX_PIXELS };
    const rgb = needRgb ? new Uint8Array(3 * size * size) : null;
    if (native(buf, spec, rgb ?? out, rgb ? 0 : offset)) return { img: rgb ? { data: rgb, width: size, height: size } : null, flip: false };
  }
  return { img: await rawRgb(sharpGeometry(src, plan, cfg), file, size), flip: plan.flip };
}

/** Pad-crop's shift, on the RGB pixels when there are any (normalized output was never shifted). */
function withShift(decoded: Decoded, plan: Plan): Decoded {
  // Shifting before or after the flip draws the same distribution: the offset is symmetric.
  if (decoded.img && (plan.shiftX !== 0 || plan.shiftY !== 0)) shiftImage(decoded.img, plan.shiftX, plan.shiftY);
  return decoded;
}

async function decodeGeometry(file: string, cfg: TransformConfig, rng: Rng, out: Float32Array, offset: number): Promise<Decoded> {
  // Synchronous read: one syscall sequence instead of four thread-pool round trips; a loader worker has
  // nothing else to do meanwhile.
  const buf = readFileSync(file);
  const png = smallPng(buf);
  if (png) {
    const plan = planFor(png.width, png.height, cfg, rng);
    return withShift({ img: cropResize(png, { ...plan, side: cfg.size }), flip: plan.flip }, plan);
  }
  const src = await openSource(buf);
  const plan = planFor(src.width, src.height, cfg, rng);
  const needRgb = (cfg.train && !!cfg.randAugment) || plan.shiftX !== 0 || plan.shiftY !== 0;
  return withShift(await libGeometry(buf, file, src, plan, cfg, needRgb, out, offset), plan);
}

/**
 * Transforms one image file into out[offset .. offset + 3 * size * size) as normalized CHW float32.
 * Every random choice comes from `seed`, in a fixed order: crop (or pad-crop), flip, RandAugment, erasing.
 */
export async function transformSample(file: string, cfg: TransformConfig, seed: number, out: Float32Array, offset: number, luts = normalizeLuts(cfg), observe?: SampleObserver): Promise<void> {
  const rng = new Rng(seed);
  let decoded: Decoded;
  try {
    decoded = await decodeGeometry(file, cfg, rng, out, offset);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(msg.startsWith(file) ? msg : `${file}: ${msg}`, { cause: e });
  }
  let { img, flip } = decoded;
  if (img) {
    if (cfg.train && cfg.randAugment) {
      // RandAugment sees the flipped image, as in torchvision's order.
      if (flip) flipHorizontal(img);
      flip = false;
      img = randAugment(img, cfg.randAugment, rng, observe?.op);
    }
    normalizeInto(img, luts, out, offset, flip);
  }
  if (cfg.train && cfg.reprob > 0 && rng.chance(cfg.reprob)) randomErase(out, offset, cfg, rng, observe);
}
