// Analyses one image file: content hash, oriented size, format, a perceptual hash, or the reason it is
// unusable. A full (shrunk) decode is part of it, so truncated files are caught at import, not in training.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { ImageAnalysis, ImageProblem } from '../catalog/types.ts';

/** Extensions sharp's bundled libvips decodes; anything else is reported as not an image. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.jpe', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

/** Pixels above which a file is treated as a decompression bomb (about 90 MP: above any camera we expect). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export function isImageName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return dot > 0 && IMAGE_EXTENSIONS.has(name.slice(dot).toLowerCase());
}

/** pHash: the 8x8 lowest DCT frequencies of a 32x32 grayscale version of the image. */
const PHASH_SIZE = 32;
const PHASH_FREQS = 8;
/** cos((2x+1) u pi / 2N) for u < 8, x < 32: the DCT-II basis rows we need. */
const DCT_BASIS = (() => {
  const t = new Float64Array(PHASH_FREQS * PHASH_SIZE);
  for (let u = 0; u < PHASH_FREQS; u++) {
    for (let x = 0; x < PHASH_SIZE; x++) t[u * PHASH_SIZE + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * PHASH_SIZE));
  }
  return t;
})();

/**
 * 64-bit perceptual hash (pHash, as in the imagehash library) of 32x32 grayscale pixels, as 16 hex digits:
 * bit i is set when low-frequency DCT coefficient i (row-major 8x8, DC included) is above their median.
 * Low frequencies survive resizing and re-encoding; a difference hash (dHash) flips bits on smooth images.
 */
export function pHashFromGrid(gray: Uint8Array, channels = 1): string {
  const n = PHASH_SIZE;
  const k = PHASH_FREQS;
  // Separable DCT: rows first (32 rows x 8 frequencies), then columns of that (8 x 8).
  const rows = new Float64Array(n * k);
  for (let y = 0; y < n; y++) {
    for (let u = 0; u < k; u++) {
      let s = 0;
      for (let x = 0; x < n; x++) s += gray[(y * n + x) * channels]! * DCT_BASIS[u * n + x]!;
      rows[y * k + u] = s;
    }
  }
  const coeffs = new Float64Array(k * k);
  for (let v = 0; v < k; v++) {
    for (let u = 0; u < k; u++) {
      let s = 0;
      for (let y = 0; y < n; y++) s += rows[y * k + u]! * DCT_BASIS[v * n + y]!;
      coeffs[v * k + u] = s;
    }
  }
  const sorted = Float64Array.from(coeffs).sort();
  const median = (sorted[31]! + sorted[32]!) / 2;
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 64; i++) {
    if (coeffs[i]! > median) {
      if (i < 32) hi |= 1 << (31 - i);
      else lo |= 1 << (63 - i);
    }
  }
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/** The perceptual hash of an image (oriented like the user sees it, alpha ignored). */
export async function perceptualHash(input: Buffer | string, maxPixels = DEFAULT_MAX_PIXELS): Promise<string> {
  const { data, info } = await sharp(input, { failOn: 'error', limitInputPixels: maxPixels, autoOrient: true })
    .removeAlpha()
    .toColourspace('b-w')
    .resize(PHASH_SIZE, PHASH_SIZE, { fit: 'fill', kernel: 'cubic' })
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return pHashFromGrid(data, info.channels);
}

const problem = (code: ImageProblem, detail: string): ImageAnalysis => ({
  contentHash: null,
  phash: null,
  width: null,
  height: null,
  channels: null,
  format: null,
  problem: { code, detail },
});

const PNG_END = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** A JPEG without its end-of-image marker, or a PNG without its IEND chunk, was cut short. */
function cutShort(buf: Buffer): string | null {
  if (buf[0] === 0xff && buf[1] === 0xd8) {
    let end = buf.length;
    while (end > 2 && buf[end - 1] === 0) end--; // some writers pad after the marker
    return buf[end - 2] === 0xff && buf[end - 1] === 0xd9 ? null : 'JPEG has no end-of-image marker';
  }
  if (buf[0] === 0x89 && buf[1] === 0x50 && buf[2] === 0x4e && buf[3] === 0x47) {
    return buf.subarray(-PNG_END.length).equals(PNG_END) ? null : 'PNG has no IEND chunk';
  }
  return null;
}

/**
 * Why a decode failed. Truncation is recognised from the file itself: libvips keeps one error buffer for
 * all threads, so with concurrent decodes its message can belong to another file or be missing.
 */
function classifyDecodeError(e: unknown, buf: Buffer): { code: ImageProblem; detail: string } {
  const short = cutShort(buf);
  if (short) return { code: 'truncated', detail: `truncated file: ${short}` };
  const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  if (/unsupported image format/i.test(msg)) return { code: 'unsupported-format', detail: 'not a recognised image format' };
  if (/premature end|truncated|unexpected end|not enough data/i.test(msg)) return { code: 'truncated', detail: `truncated file: ${msg}` };
  return { code: 'undecodable', detail: msg === 'Unknown error' ? 'cannot be decoded (libvips gave no reason)' : msg };
}

export interface AnalyzeOptions {
  maxPixels?: number;
}

/** Reads and analyses one file; never throws for a bad file, it returns the problem instead. */
export async function analyzeImage(abs: string, opts: AnalyzeOptions = {}): Promise<{ bytes: number; analysis: ImageAnalysis }> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  let buf: Buffer;
  try {
    buf = await readFile(abs);
  } catch (e) {
    return { bytes: 0, analysis: problem('unreadable', `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`) };
  }
  if (buf.length === 0) return { bytes: 0, analysis: problem('empty', 'empty file (0 bytes)') };
  const contentHash = createHash('sha1').update(buf).digest('hex');
  const withHash = (a: ImageAnalysis): ImageAnalysis => ({ ...a, contentHash });

  let meta;
  try {
    // Header only: safe even for a bomb, and gives the size to check against the pixel limit.
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (e) {
    const p = classifyDecodeError(e, buf);
    return { bytes: buf.length, analysis: withHash(problem(p.code, p.detail)) };
  }
  const width = meta.autoOrient.width;
  const height = meta.autoOrient.height;
  if (width * height > maxPixels) {
    const detail = `${width}x${height} = ${(width * height).toLocaleString('en-US')} pixels exceeds the limit of ${maxPixels.toLocaleString('en-US')} (decompression bomb?)`;
    return { bytes: buf.length, analysis: withHash(problem('too-many-pixels', detail)) };
  }
  let phash: string;
  try {
    phash = await perceptualHash(buf, maxPixels);
  } catch (e) {
    const p = classifyDecodeError(e, buf);
    return { bytes: buf.length, analysis: withHash(problem(p.code, p.detail)) };
  }
  return {
    bytes: buf.length,
    analysis: { contentHash, phash, width, height, channels: meta.channels, format: meta.format, problem: null },
  };
}
