// The browser tests' dataset: a small slice of Fashion-MNIST written as class folders of PNGs (train/ and
// val/), with planted exact duplicates filed under the wrong class, so the UI has real images, real
// classes and real duplicates to show. Without Debian's dataset-fashion-mnist, smooth synthetic pictures
// in ten classes stand in.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { photo } from '../helpers/images.ts';

const FASHION = '/usr/share/datasets/fashion-mnist';
export const CLASSES = ['T-shirt-top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

interface Idx {
  images: Buffer;
  labels: Buffer;
  rows: number;
  cols: number;
}

function readIdx(prefix: string): Idx {
  const images = gunzipSync(readFileSync(join(FASHION, `${prefix}-images-idx3-ubyte.gz`)));
  const labels = gunzipSync(readFileSync(join(FASHION, `${prefix}-labels-idx1-ubyte.gz`)));
  // idx3: magic 2051, count, rows, cols (big-endian), then count * rows * cols bytes; idx1: magic 2049, count, labels.
  if (images.readUInt32BE(0) !== 2051 || labels.readUInt32BE(0) !== 2049) throw new Error(`${prefix}: not idx files`);
  return { images: images.subarray(16), labels: labels.subarray(8), rows: images.readUInt32BE(8), cols: images.readUInt32BE(12) };
}

export interface SliceInfo {
  root: string;
  source: 'fashion-mnist' | 'synthetic';
  train: number;
  val: number;
  /** Paths (relative to root) of the planted copies. */
  copies: string[];
}

/** Writes perClass train and valPerClass val images per class, plus `duplicates` mislabeled copies. */
export async function fashionSlice(root: string, perClass: number, valPerClass: number, duplicates: number): Promise<SliceInfo> {
  const real = existsSync(join(FASHION, 'train-images-idx3-ubyte.gz'));
  const write = async (split: 'train' | 'val', cls: number, n: number, pixels: () => Promise<Buffer>) => {
    const dir = join(root, split, CLASSES[cls]!);
    mkdirSync(dir, { recursive: true });
    await sharp(await pixels()).toFile(join(dir, `${n}.png`));
  };
  if (real) {
    for (const [split, prefix, per] of [['train', 'train', perClass], ['val', 't10k', valPerClass]] as const) {
      const idx = readIdx(prefix);
      const size = idx.rows * idx.cols;
      const counts = new Array<number>(10).fill(0);
      for (let i = 0; counts.some((c) => c < per); i++) {
        const label = idx.labels[i]!;
        if (counts[label]! >= per) continue;
        const n = counts[label]!++;
        await write(split, label, n, () => sharp(idx.images.subarray(i * size, (i + 1) * size), { raw: { width: idx.cols, height: idx.rows, channels: 1 } }).png().toBuffer());
      }
    }
  } else {
    for (const [split, per] of [['train', perClass], ['val', valPerClass]] as const) {
      for (let c = 0; c < 10; c++) for (let n = 0; n < per; n++) await write(split, c, n, () => photo(1 + c * 1000 + n * 7 + (split === 'val' ? 500 : 0), 28, 28).png().toBuffer());
    }
  }
  // Copies of train images under the next class: byte-identical, so exact duplicates whose labels disagree.
  const copies: string[] = [];
  for (let d = 0; d < duplicates; d++) {
    const from = join(root, 'train', CLASSES[d]!, '0.png');
    const rel = `train/${CLASSES[d + 1]}/copy-of-${CLASSES[d]}-0.png`;
    copyFileSync(from, join(root, rel));
    copies.push(rel);
  }
  return { root, source: real ? 'fashion-mnist' : 'synthetic', train: perClass * 10 + duplicates, val: valPerClass * 10, copies };
}
