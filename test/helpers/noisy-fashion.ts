// A Fashion-MNIST training slice with a seeded fraction of its labels flipped, written as PNGs filed under
// their given (possibly wrong) class, plus a manifest of the clean rest to fine-tune on. For the curation
// tests: the flipped images are the label errors a model should find.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { type Manifest, sealManifest } from '../../common/manifest.ts';
import { Rng } from '../../native-worker/nn/random.ts';

export const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_CLASSES = ['T-shirt-top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export const haveFashion = () => existsSync(join(FASHION_DIR, 'train-images-idx3-ubyte.gz'));

export interface NoisySlice {
  /** Every image with its given label (index into FASHION_CLASSES), true label and whether it was flipped. */
  items: { path: string; given: number; truth: number; flipped: boolean }[];
  /** The manifest of every image under its given label (train split). */
  all: Manifest;
  /** The unflipped images only: train on the first 90%, val the rest. */
  clean: Manifest;
}

/** The first `count` training images of Fashion-MNIST; `flip` of them (seeded) get a random other class. */
export async function noisyFashion(root: string, count: number, flip: number, seed: number): Promise<NoisySlice> {
  const images = gunzipSync(readFileSync(join(FASHION_DIR, 'train-images-idx3-ubyte.gz'))).subarray(16);
  const labels = gunzipSync(readFileSync(join(FASHION_DIR, 'train-labels-idx1-ubyte.gz'))).subarray(8);
  const rng = new Rng(seed);
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const flipped = new Set(order.slice(0, Math.round(count * flip)));
  for (const c of FASHION_CLASSES) mkdirSync(join(root, c), { recursive: true });
  const items: NoisySlice['items'] = [];
  for (let i = 0; i < count; i++) {
    const truth = labels[i]!;
    const given = flipped.has(i) ? (truth + 1 + Math.floor(rng.uniform() * 9)) % 10 : truth;
    items.push({ path: `${FASHION_CLASSES[given]}/${i}.png`, given, truth, flipped: flipped.has(i) });
  }
  // sharp encodes on its own thread pool: many files in flight at once.
  for (let at = 0; at < count; at += 64) {
    await Promise.all(items.slice(at, at + 64).map((x, k) => sharp(images.subarray((at + k) * 784, (at + k + 1) * 784), { raw: { width: 28, height: 28, channels: 1 } }).png({ compressionLevel: 1 }).toFile(join(root, x.path))));
  }
  const manifest = (list: Manifest['items']) => sealManifest({ version: 1, dataset: 'noisy-fashion', createdAt: new Date(0).toISOString(), root, classes: FASHION_CLASSES, items: list });
  const cleanItems = items.filter((x) => !x.flipped);
  const all = manifest(items.map((x) => ({ path: x.path, label: x.given, split: 'train' as const })));
  const clean = manifest(cleanItems.map((x, k) => ({ path: x.path, label: x.given, split: k < cleanItems.length * 0.9 ? ('train' as const) : ('val' as const) })));
  writeFileSync(join(root, 'all.json'), JSON.stringify(all));
  writeFileSync(join(root, 'clean.json'), JSON.stringify(clean));
  return { items, all, clean };
}
