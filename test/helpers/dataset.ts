// A small real dataset on disk for job tests: PNG files of the synthetic texture classes and a manifest.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { sealManifest } from '../../common/manifest.ts';
import { TEXTURE_CLASSES, textureBatch } from '../../native-worker/data/synthetic.ts';
import { Rng } from '../../native-worker/nn/random.ts';

/** Writes `perClass` train and `valPerClass` val images per class of `size` px; returns the manifest path. */
export async function textureDataset(dir: string, size: number, perClass: number, valPerClass: number, seed = 0): Promise<string> {
  const rng = new Rng(seed);
  const items: { path: string; label: number; split: 'train' | 'val' }[] = [];
  const k = TEXTURE_CLASSES.length;
  const counts = new Map<string, number>();
  while (items.length < k * (perClass + valPerClass)) {
    const b = textureBatch(rng, 1, size);
    const label = b.labels[0]!;
    const have = counts.get(String(label)) ?? 0;
    if (have >= perClass + valPerClass) continue;
    counts.set(String(label), have + 1);
    const split = have < perClass ? 'train' : 'val';
    const rgb = Buffer.alloc(size * size * 3);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < size * size; i++) rgb[i * 3 + c] = Math.max(0, Math.min(255, Math.round(128 + 60 * b.image[c * size * size + i]!)));
    }
    const path = `${split}/${TEXTURE_CLASSES[label]}/${have}.png`;
    mkdirSync(join(dir, split, TEXTURE_CLASSES[label]!), { recursive: true });
    await sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).png().toFile(join(dir, path));
    items.push({ path, label, split });
  }
  const manifest = sealManifest({ version: 1, dataset: 'textures', createdAt: new Date(0).toISOString(), root: dir, classes: [...TEXTURE_CLASSES], items });
  const file = join(dir, 'manifest.json');
  writeFileSync(file, JSON.stringify(manifest));
  return file;
}
