// What Grad-CAM shows: an image through the evaluation transform (resize to size/0.875, center crop, ImageNet
// normalization: what the model sees), the map upsampled bilinearly to the crop, and the overlay PNG.
import sharp from 'sharp';
import { resolveTransform } from '../data/pipeline/config.ts';
import { normalizeLuts, transformSample } from '../data/pipeline/transform.ts';

export interface PreparedImage {
  /** Normalized (3, S, S) floats for the model. */
  readonly chw: Float32Array;
  /** The same crop as RGB bytes (S * S * 3), for the overlay. */
  readonly rgb: Uint8Array;
  readonly size: number;
}

/** A file (any format the loader reads) through the evaluation transform at `size`. */
export async function prepareImage(file: string, size: number): Promise<PreparedImage> {
  const cfg = resolveTransform({ size, train: false });
  const plane = size * size;
  const chw = new Float32Array(3 * plane);
  await transformSample(file, cfg, 0, chw, 0, normalizeLuts(cfg));
  const rgb = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = (chw[c * plane + p]! * cfg.std[c]! + cfg.mean[c]!) * 255;
      rgb[p * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  return { chw, rgb, size };
}

/** Bilinear resize of a (h, w) grid to (outH, outW), half-pixel centers (PyTorch align_corners=False). */
export function upsampleBilinear(grid: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(outH * outW);
  const src = (o: number, n: number, outN: number) => Math.min(Math.max((o + 0.5) * (n / outN) - 0.5, 0), n - 1);
  for (let y = 0; y < outH; y++) {
    const sy = src(y, h, outH);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, h - 1);
    const fy = sy - y0;
    for (let x = 0; x < outW; x++) {
      const sx = src(x, w, outW);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, w - 1);
      const fx = sx - x0;
      const top = grid[y0 * w + x0]! * (1 - fx) + grid[y0 * w + x1]! * fx;
      const bottom = grid[y1 * w + x0]! * (1 - fx) + grid[y1 * w + x1]! * fx;
      out[y * outW + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** The 'jet' colour of t in [0, 1]: blue (0) through cyan, yellow to red (1). */
export function jet(t: number): [number, number, number] {
  const c = (x: number) => Math.round(255 * Math.min(Math.max(x, 0), 1));
  return [c(1.5 - Math.abs(4 * t - 3)), c(1.5 - Math.abs(4 * t - 2)), c(1.5 - Math.abs(4 * t - 1))];
}

/** The crop with the map blended over it (weight alpha * t, so cold regions keep the image), as PNG. */
export async function overlayPng(img: PreparedImage, cam: Float32Array, h: number, w: number, alpha = 0.6): Promise<Buffer> {
  const s = img.size;
  const up = upsampleBilinear(cam, h, w, s, s);
  const out = Buffer.alloc(s * s * 3);
  for (let p = 0; p < s * s; p++) {
    const t = up[p]!;
    const [r, g, b] = jet(t);
    const k = alpha * Math.sqrt(t);
    out[p * 3] = Math.round(img.rgb[p * 3]! * (1 - k) + r * k);
    out[p * 3 + 1] = Math.round(img.rgb[p * 3 + 1]! * (1 - k) + g * k);
    out[p * 3 + 2] = Math.round(img.rgb[p * 3 + 2]! * (1 - k) + b * k);
  }
  return sharp(out, { raw: { width: s, height: s, channels: 3 } }).png().toBuffer();
}
