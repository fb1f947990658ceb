// The training augmentation both engines apply, as the job config names it (data.augment), with timm's
// create_transform as the reference: crop (RandomResizedCrop, or pad + random crop), horizontal flip,
// RandAugment from a timm policy string, then random erasing on the normalized tensor. The PyTorch engine
// (cnx_torch/augment.py) parses the same policy strings with the same defaults.

export type EraseMode = 'pixel' | 'rand' | 'const';

/** A parsed timm RandAugment policy such as `rand-m9-mstd0.5-inc1`. */
export interface RandAugmentPolicy {
  /** Ops drawn per image, with replacement (timm `n`, default 2). */
  layers: number;
  /** Mean magnitude on the 0..10 scale (timm `m`, default 10). */
  magnitude: number;
  /** Std of the per-op normal magnitude draw (`mstd`); Infinity draws uniformly in [0, magnitude]. */
  magnitudeStd: number;
  /** Upper clip of a drawn magnitude (`mmax`, default 10). */
  magnitudeMax: number;
  /** Chance each drawn op is applied (`p`, default 0.5). */
  prob: number;
  /** The "increasing" op set, whose severity grows with magnitude (`inc1`). */
  increasing: boolean;
}

/** What data.augment resolves to: every value explicit. */
export interface Augment {
  /** RandomResizedCrop area fraction range (ignored when padCrop is set). */
  scale: [number, number];
  /** RandomResizedCrop aspect ratio range. */
  ratio: [number, number];
  /** Horizontal flip probability. */
  hflip: number;
  /** Pad N pixels on every side (black) and crop a random size x size window, instead of RandomResizedCrop. */
  padCrop: number | null;
  /** timm policy string, or null for none. */
  randAugment: string | null;
  /** Random erasing probability per image. */
  reprob: number;
  /** Fill: per-pixel N(0, 1), one N(0, 1) colour per channel, or zeros (in normalized space). */
  remode: EraseMode;
  /** Erase 1..recount boxes (a uniform count), each from area / count. */
  recount: number;
}

export const FINETUNE_RAND_AUGMENT = 'rand-m9-mstd0.5-inc1';

/** The paper's defaults by job kind: FCMAE crops 0.2..1 and flips; fine-tuning adds RandAugment and erasing. */
export function defaultAugment(kind: 'pretrain' | 'finetune' | 'eval'): Augment {
  const finetune = kind !== 'pretrain';
  return {
    scale: finetune ? [0.08, 1] : [0.2, 1],
    ratio: [3 / 4, 4 / 3],
    hflip: 0.5,
    padCrop: null,
    randAugment: finetune ? FINETUNE_RAND_AUGMENT : null,
    reprob: finetune ? 0.25 : 0,
    remode: 'pixel',
    recount: 1,
  };
}

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** Parses a timm RandAugment string: `rand` then dash-separated m, n, mstd, mmax, p, inc sections in any order. */
export function parseRandAugment(policy: string): RandAugmentPolicy {
  const [head, ...sections] = policy.split('-');
  if (head !== 'rand') throw new PolicyError(`RandAugment policy '${policy}' must start with 'rand' (e.g. ${FINETUNE_RAND_AUGMENT})`);
  const p: RandAugmentPolicy = { layers: 2, magnitude: 10, magnitudeStd: 0, magnitudeMax: 10, prob: 0.5, increasing: false };
  for (const s of sections) {
    const m = /^(mstd|mmax|inc|m|n|p)(\d+(?:\.\d+)?)$/.exec(s);
    if (!m) throw new PolicyError(`RandAugment policy '${policy}': unknown section '${s}' (known: m, n, mstd, mmax, p, inc)`);
    const v = Number(m[2]);
    if (m[1] === 'm') p.magnitude = v;
    else if (m[1] === 'n') p.layers = v;
    else if (m[1] === 'mstd') p.magnitudeStd = v > 100 ? Infinity : v; // timm: mstd above 100 means uniform
    else if (m[1] === 'mmax') p.magnitudeMax = v;
    else if (m[1] === 'p') p.prob = v;
    else p.increasing = v !== 0;
  }
  if (!Number.isInteger(p.layers) || p.layers < 1) throw new PolicyError(`RandAugment policy '${policy}': n must be a positive integer`);
  if (p.prob > 1) throw new PolicyError(`RandAugment policy '${policy}': p must be in [0, 1]`);
  return p;
}
