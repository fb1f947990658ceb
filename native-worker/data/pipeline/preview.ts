// Augmentation previews for the UI: n augmented versions of one image as PNGs, produced by the loader's own
// transform (so what you see is what trains), then mapped back from normalized floats to pixels.
import sharp from 'sharp';
import { type TransformOptions, resolveTransform } from './config.ts';
import { normalizeLuts, sampleSeed, transformSample } from './transform.ts';

/**
 * Preview k uses the seed the loader would give item 0 in epoch k, so the n previews are n different
 * draws, and the same (path, config, seed) always gives the same PNGs.
 */
export async function augmentationPreview(path: string, config: TransformOptions, n: number, seed: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let k = 0; k < n; k++) out.push(await previewSample(path, config, seed, k));
  return out;
}

/** The k-th preview alone (the app fetches them one image at a time). */
export async function previewSample(path: string, config: TransformOptions, seed: number, k: number): Promise<Buffer> {
  const cfg = resolveTransform(config);
  const plane = cfg.size * cfg.size;
  const chw = new Float32Array(3 * plane);
  await transformSample(path, cfg, sampleSeed(seed, k, 0), chw, 0, normalizeLuts(cfg));
  const rgb = Buffer.alloc(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      // Erased regions hold N(0, 1) noise in normalized space; denormalizing shows them as colour noise.
      const v = (chw[c * plane + p]! * cfg.std[c]! + cfg.mean[c]!) * 255;
      rgb[p * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  return sharp(rgb, { raw: { width: cfg.size, height: cfg.size, channels: 3 } }).png().toBuffer();
}
