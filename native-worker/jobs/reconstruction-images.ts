// Pictures of FCMAE reconstructions: for each image, the original, the masked input, the reconstruction,
// and the reconstruction with the visible patches pasted back (the paper's figure layout); optionally a fifth
// panel, the per-patch error heatmap of the removed patches (what the loss sees).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

export interface ReconstructionInput {
  /** Normalized images (N, 3, S, S). */
  readonly images: Float32Array;
  readonly n: number;
  readonly size: number;
  /** Decoder output (N, L, p*p*3), pixel order (row, col, channel). */
  readonly pred: Float32Array;
  /** (N, L), 1 = removed. */
  readonly mask: Float32Array;
  readonly patch: number;
  /** The decoder predicts per-patch normalized pixels: undo it with each patch's own mean and std. */
  readonly normPixLoss: boolean;
}

export type Panel = 'original' | 'masked' | 'reconstruction' | 'pasted';
export const PANELS: readonly Panel[] = ['original', 'masked', 'reconstruction', 'pasted'];

/** One image's four panels as normalized (3, S, S) arrays. */
function panels(r: ReconstructionInput, s: number): Record<Panel, Float32Array> {
  const { size, patch: p } = r;
  const g = size / p;
  const plane = size * size;
  const original = r.images.subarray(s * 3 * plane, (s + 1) * 3 * plane);
  const masked = Float32Array.from(original);
  const reconstruction = new Float32Array(3 * plane);
  const pasted = Float32Array.from(original);
  const d = p * p * 3;
  for (let cell = 0; cell < g * g; cell++) {
    const [gy, gx] = [Math.floor(cell / g), cell % g];
    const at = (y: number, x: number, c: number) => c * plane + (gy * p + y) * size + gx * p + x;
    let mean = 0;
    let sq = 0;
    if (r.normPixLoss) {
      for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) for (let c = 0; c < 3; c++) mean += original[at(y, x, c)]!;
      mean /= d;
      for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) for (let c = 0; c < 3; c++) sq += (original[at(y, x, c)]! - mean) ** 2;
    }
    const std = r.normPixLoss ? Math.sqrt(sq / (d - 1) + 1e-6) : 1;
    const removed = r.mask[s * g * g + cell] === 1;
    const base = (s * g * g + cell) * d;
    for (let y = 0; y < p; y++) {
      for (let x = 0; x < p; x++) {
        for (let c = 0; c < 3; c++) {
          const v = r.pred[base + (y * p + x) * 3 + c]! * std + (r.normPixLoss ? mean : 0);
          const i = at(y, x, c);
          reconstruction[i] = v;
          if (removed) {
            masked[i] = (0.5 - MEAN[c]!) / STD[c]!; // grey where the encoder saw nothing
            pasted[i] = v;
          }
        }
      }
    }
  }
  return { original, masked, reconstruction, pasted };
}

/** Mean squared error (normalized pixels) of each removed patch of image s; NaN for visible patches. */
export function patchErrors(r: ReconstructionInput, s: number, reconstruction: Float32Array): Float32Array {
  const { size, patch: p } = r;
  const g = size / p;
  const plane = size * size;
  const original = r.images.subarray(s * 3 * plane, (s + 1) * 3 * plane);
  const out = new Float32Array(g * g).fill(NaN);
  for (let cell = 0; cell < g * g; cell++) {
    if (r.mask[s * g * g + cell] !== 1) continue;
    const [gy, gx] = [Math.floor(cell / g), cell % g];
    let sum = 0;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < p; y++) {
        for (let x = 0; x < p; x++) {
          const i = c * plane + (gy * p + y) * size + gx * p + x;
          sum += (reconstruction[i]! - original[i]!) ** 2;
        }
      }
    }
    out[cell] = sum / (3 * p * p);
  }
  return out;
}

/** The error heatmap as RGB bytes: dark blue (low) to yellow (the image's largest), visible patches grey. */
function heatmap(errors: Float32Array, size: number, p: number): Buffer {
  const g = size / p;
  const max = errors.reduce((m, e) => (Number.isNaN(e) ? m : Math.max(m, e)), 0);
  const out = Buffer.alloc(size * size * 3);
  for (let cell = 0; cell < g * g; cell++) {
    const e = errors[cell]!;
    const t = max > 0 ? e / max : 0;
    const rgb = Number.isNaN(e) ? [96, 96, 96] : [Math.round(30 + 225 * t), Math.round(20 + 200 * t), Math.round(120 * (1 - t))];
    const [gy, gx] = [Math.floor(cell / g), cell % g];
    for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) for (let c = 0; c < 3; c++) out[((gy * p + y) * size + gx * p + x) * 3 + c] = rgb[c]!;
  }
  return out;
}

/** Normalized (3, S, S) -> interleaved RGB bytes. */
function toRgb(x: Float32Array, size: number): Buffer {
  const out = Buffer.alloc(size * size * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < size * size; i++) out[i * 3 + c] = Math.max(0, Math.min(255, Math.round((x[c * size * size + i]! * STD[c]! + MEAN[c]!) * 255)));
  }
  return out;
}

/** Writes `<dir>/<i>-<panel>.png` for every image and panel; returns the paths. */
export async function writeReconstructionPngs(r: ReconstructionInput, dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (let s = 0; s < r.n; s++) {
    const ps = panels(r, s);
    for (const name of PANELS) {
      const file = join(dir, `${s}-${name}.png`);
      await sharp(toRgb(ps[name], r.size), { raw: { width: r.size, height: r.size, channels: 3 } }).png().toFile(file);
      written.push(file);
    }
  }
  return written;
}

/**
 * One PNG grid: a row per image, the four panels side by side (up to `rows` images), and with `withError` a
 * fifth, the error heatmap. Returns each image's per-patch errors (NaN for visible patches).
 */
export async function reconstructionGrid(r: ReconstructionInput, file: string, rows = 4, withError = false): Promise<Float32Array[]> {
  const n = Math.min(rows, r.n);
  const { size } = r;
  const columns = PANELS.length + (withError ? 1 : 0);
  const width = size * columns;
  const grid = Buffer.alloc(width * size * n * 3);
  const errors: Float32Array[] = [];
  const put = (rgb: Buffer, s: number, k: number) => {
    for (let y = 0; y < size; y++) rgb.copy(grid, ((s * size + y) * width + k * size) * 3, y * size * 3, (y + 1) * size * 3);
  };
  for (let s = 0; s < n; s++) {
    const ps = panels(r, s);
    PANELS.forEach((name, k) => put(toRgb(ps[name], size), s, k));
    const e = patchErrors(r, s, ps.reconstruction);
    errors.push(e);
    if (withError) put(heatmap(e, size, r.patch), s, PANELS.length);
  }
  await sharp(grid, { raw: { width, height: size * n, channels: 3 } }).png().toFile(file);
  return errors;
}
