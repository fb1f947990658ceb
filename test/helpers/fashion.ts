// Slices of Debian's dataset-fashion-mnist (idx files under /usr/share/datasets/fashion-mnist) for tests
// that need real images: the idx reader, and a balanced slice written as PNGs with a manifest.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { sealManifest } from '../../common/manifest.ts';

export const FASHION = '/usr/share/datasets/fashion-mnist';
export const CLASSES = ['T-shirt-top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export interface Idx {
  images: Buffer;
  labels: Buffer;
  rows: number;
  cols: number;
}

export const haveFashion = (): boolean => existsSync(join(FASHION, 'train-images-idx3-ubyte.gz'));

/** `train` or `t10k` images and labels. */
export function readIdx(prefix: 'train' | 't10k'): Idx {
  const images = gunzipSync(readFileSync(join(FASHION, `${prefix}-images-idx3-ubyte.gz`)));
  const labels = gunzipSync(readFileSync(join(FASHION, `${prefix}-labels-idx1-ubyte.gz`)));
  // idx3: magic 2051, count, rows, cols (big-endian), then count * rows * cols bytes; idx1: magic 2049, count, labels.
  if (images.readUInt32BE(0) !== 2051 || labels.readUInt32BE(0) !== 2049) throw new Error(`${prefix}: not idx files`);
  return { images: images.subarray(16), labels: labels.subarray(8), rows: images.readUInt32BE(8), cols: images.readUInt32BE(12) };
}

/** The first `per` images of every class in file order: label, rank within its class, and a PNG encoder. */
export function* firstPerClass(idx: Idx, per: number): Generator<{ label: number; n: number; png: () => Promise<Buffer> }> {
  const size = idx.rows * idx.cols;
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; counts.some((c) => c < per); i++) {
    const label = idx.labels[i]!;
    if (counts[label]! >= per) continue;
    const pixels = idx.images.subarray(i * size, (i + 1) * size);
    yield { label, n: counts[label]!++, png: () => sharp(pixels, { raw: { width: idx.cols, height: idx.rows, channels: 1 } }).png().toBuffer() };
  }
}

/**
 * The first `trainPerClass` training and `testPerClass` test images of every class as PNGs under `dir`,
 * with a manifest (train and test splits); returns the manifest's path.
 */
export async function fashionManifest(dir: string, trainPerClass: number, testPerClass: number): Promise<string> {
  const items: { path: string; label: number; split: 'train' | 'test' }[] = [];
  for (const [split, prefix, per] of [['train', 'train', trainPerClass], ['test', 't10k', testPerClass]] as const) {
    for (const { label, n, png } of firstPerClass(readIdx(prefix), per)) {
      const path = `${split}/${label}/${n}.png`;
      mkdirSync(join(dir, split, String(label)), { recursive: true });
      writeFileSync(join(dir, path), await png());
      items.push({ path, label, split });
    }
  }
  const manifest = sealManifest({ version: 1, dataset: 'fashion-slice', createdAt: new Date(0).toISOString(), root: dir, classes: CLASSES, items });
  const file = join(dir, 'manifest.json');
  writeFileSync(file, JSON.stringify(manifest));
  return file;
}
