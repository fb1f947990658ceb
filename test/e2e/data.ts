// The browser tests' dataset: a small slice of Fashion-MNIST written as class folders of PNGs (train/ and
// val/), with planted exact duplicates filed under the wrong class, so the UI has real images, real
// classes and real duplicates to show. Without Debian's dataset-fashion-mnist, smooth synthetic pictures
// in ten classes stand in.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { CLASSES, firstPerClass, haveFashion, readIdx } from '../helpers/fashion.ts';
import { photo } from '../helpers/images.ts';

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
  const real = haveFashion();
  const write = async (split: 'train' | 'val', cls: number, n: number, pixels: () => Promise<Buffer>) => {
    const dir = join(root, split, CLASSES[cls]!);
    mkdirSync(dir, { recursive: true });
    await sharp(await pixels()).toFile(join(dir, `${n}.png`));
  };
  if (real) {
    for (const [split, prefix, per] of [['train', 'train', perClass], ['val', 't10k', valPerClass]] as const) {
      for (const { label, n, png } of firstPerClass(readIdx(prefix), per)) await write(split, label, n, png);
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
