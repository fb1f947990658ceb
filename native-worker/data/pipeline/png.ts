// A small PNG decoder for the loader's fast path (js-geometry.ts): 8-bit gray, gray+alpha, RGB and RGBA,
// non-interlaced, to 8-bit gray or RGB with alpha dropped (as PIL's convert('RGB') does; gray stays one
// channel so that resampling does a third of the work, and becomes RGB after it). Anything else (palette,
// other bit depths, interlacing, an ICC profile or EXIF orientation libvips would apply, a bad CRC, short
// or surplus image data) returns null and the caller uses sharp, which keeps its own behaviour and errors.
// Never throws on bad bytes.
import { inflateSync } from 'node:zlib';
// zlib's own crc32 only from Node 20.15 (a named import of it would fail to link before): zip.ts falls back.
import { crc32 } from '../../checkpoint/zip.ts';

/** 8-bit pixels, HWC, one (gray) or three (RGB) channels. */
export interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Samples per pixel of the colour types handled (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** Ancillary chunks that change what sharp decodes: an ICC profile, EXIF (orientation), coding-independent code points. */
const DECLINED = new Set(['iCCP', 'eXIf', 'cICP']);

/** Critical chunks the decoder understands (PLTE is only a suggested palette for the colour types handled). */
const CRITICAL = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']);

export interface PngHeader {
  width: number;
  height: number;
  /** 8-bit, non-interlaced, colour type 0/2/4/6: the decoder can take it (its other chunks may still decline). */
  plain: boolean;
  channels: number;
}

const isPng = (buf: Uint8Array): boolean => buf.length >= 8 && SIGNATURE.every((b, i) => buf[i] === b);

/** The IHDR fields, or null when this is not a PNG with a well-formed header chunk. */
export function readPngHeader(buf: Uint8Array): PngHeader | null {
  if (!isPng(buf) || buf.length < 33) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(8) !== 13 || chunkType(buf, 12) !== 'IHDR' || view.getUint32(29) !== crc32(buf.subarray(12, 29))) return null;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const [depth, colour, compression, filter, interlace] = [buf[24]!, buf[25]!, buf[26]!, buf[27]!, buf[28]!];
  const channels = CHANNELS[colour] ?? 0;
  const plain = depth === 8 && channels > 0 && compression === 0 && filter === 0 && interlace === 0 && width > 0 && height > 0;
  return { width, height, plain, channels };
}

const chunkType = (buf: Uint8Array, at: number): string => String.fromCharCode(buf[at]!, buf[at + 1]!, buf[at + 2]!, buf[at + 3]!);

/**
 * The IDAT payloads, or null for a chunk the decoder declines, a bad CRC, a chunk out of place (a second
 * IHDR, a palette for gray, IDATs not consecutive) or no IEND: libpng's stricter calls are sharp's to make.
 */
function imageData(buf: Uint8Array, gray: boolean): Uint8Array[] | null {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const parts: Uint8Array[] = [];
  let previous = '';
  for (let at = 8; at + 12 <= buf.length; ) {
    const length = view.getUint32(at);
    const end = at + 12 + length;
    if (length > 0x7fffffff || end > buf.length) return null;
    const type = chunkType(buf, at + 4);
    if (view.getUint32(end - 4) !== crc32(buf.subarray(at + 4, end - 4))) return null;
    // Bit 5 of the first letter clear: a critical chunk, which a decoder must not skip unread.
    if (DECLINED.has(type) || ((buf[at + 4]! & 0x20) === 0 && !CRITICAL.has(type))) return null;
    if ((type === 'IHDR' && at !== 8) || (type === 'PLTE' && gray) || (type === 'IDAT' && parts.length > 0 && previous !== 'IDAT')) return null;
    if (type === 'IDAT') parts.push(buf.subarray(at + 8, end - 4));
    if (type === 'IEND') return parts.length > 0 ? parts : null;
    previous = type;
    at = end;
  }
  return null;
}

/** PNG's Paeth predictor: whichever of left, up and upper-left is closest to left + up - upper-left. */
function paeth(a: number, b: number, c: number): number {
  const pa = Math.abs(b - c);
  const pb = Math.abs(a - c);
  const pc = Math.abs(a + b - 2 * c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undoes one row's filter in place: `row` (stride bytes after its filter byte), `prev` the row above, decoded (or null). */
function unfilter(kind: number, row: Uint8Array, prev: Uint8Array | null, bpp: number): boolean {
  const n = row.length;
  if (kind === 0) return true;
  if (kind === 1) {
    for (let i = bpp; i < n; i++) row[i] = row[i]! + row[i - bpp]!;
  } else if (kind === 2) {
    if (prev) for (let i = 0; i < n; i++) row[i] = row[i]! + prev[i]!;
  } else if (kind === 3) {
    for (let i = 0; i < n; i++) row[i] = row[i]! + (((i >= bpp ? row[i - bpp]! : 0) + (prev ? prev[i]! : 0)) >> 1);
  } else if (kind === 4) {
    for (let i = 0; i < n; i++) {
      const a = i >= bpp ? row[i - bpp]! : 0;
      row[i] = row[i]! + (prev ? paeth(a, prev[i]!, i >= bpp ? prev[i - bpp]! : 0) : a);
    }
  } else {
    return false;
  }
  return true;
}

/** Filtered scanlines (one filter byte + stride bytes each) to gray or RGB, alpha dropped. */
function unfilterAll(raw: Uint8Array, width: number, height: number, channels: number): Pixels | null {
  const stride = width * channels;
  const keep = channels >= 3 ? 3 : 1;
  const out = new Uint8Array(width * height * keep);
  let prev: Uint8Array | null = null;
  for (let y = 0; y < height; y++) {
    const start = y * (stride + 1);
    const row = raw.subarray(start + 1, start + 1 + stride);
    if (!unfilter(raw[start]!, row, prev, channels)) return null;
    prev = row;
    if (keep === channels) {
      out.set(row, y * stride);
      continue;
    }
    // Alpha dropped: the first `keep` samples of each pixel.
    for (let x = 0, i = 0, o = y * width * keep; x < width; x++, i += channels, o += keep) {
      for (let c = 0; c < keep; c++) out[o + c] = row[i + c]!;
    }
  }
  return { data: out, width, height, channels: keep };
}

/**
 * Decodes a plain PNG to gray or RGB pixels, or returns null when it is not one this decoder takes (see the file's
 * header) or when it holds more than maxPixels pixels.
 */
export function decodePng(buf: Uint8Array, maxPixels: number): Pixels | null {
  const header = readPngHeader(buf);
  if (!header?.plain || header.width * header.height > maxPixels) return null;
  const { width, height, channels } = header;
  const parts = imageData(buf, channels <= 2);
  if (!parts) return null;
  const expected = height * (width * channels + 1);
  let raw: Buffer;
  try {
    // Bounded: a stream that inflates past the image's size throws instead of allocating it.
    raw = inflateSync(parts.length === 1 ? parts[0]! : Buffer.concat(parts), { maxOutputLength: expected });
  } catch {
    return null;
  }
  if (raw.length !== expected) return null;
  return unfilterAll(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), width, height, channels);
}
