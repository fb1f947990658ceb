// Transform settings for training and evaluation, with the ConvNeXt V2 recipes as defaults:
// FCMAE pretraining (RandomResizedCrop scale (0.2, 1), flip), fine-tuning (scale (0.08, 1), flip,
// RandAugment rand-m9-mstd0.5, random erasing 0.25) and evaluation (resize to size/0.875, center crop).

export type TrainMode = 'pretrain' | 'finetune';

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export interface RandAugmentConfig {
  /** Ops applied per image (timm num_layers). */
  layers: number;
  /** Mean magnitude on timm's 0..10 scale. */
  magnitude: number;
  /** Std of the per-op magnitude draw (mstd). */
  magnitudeStd: number;
  /** Probability each chosen op is applied. */
  prob: number;
}

export interface TransformConfig {
  /** Output side in pixels (square). */
  size: number;
  train: boolean;
  mode: TrainMode;
  /** RandomResizedCrop area fraction range. */
  scale: readonly [number, number];
  /** RandomResizedCrop aspect ratio range. */
  ratio: readonly [number, number];
  hflip: number;
  randAugment: RandAugmentConfig | null;
  /** Random erasing probability (pixel mode: erased with N(0, 1) noise in normalized space). */
  reprob: number;
  /** Evaluation: resize the shorter side to floor(size / cropPct), then center crop. */
  cropPct: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

export type TransformOptions = Pick<TransformConfig, 'size' | 'train'> & Partial<Omit<TransformConfig, 'size' | 'train'>>;

/** Fills in the recipe defaults for the mode; explicit options win. */
export function resolveTransform(o: TransformOptions): TransformConfig {
  const mode = o.mode ?? 'finetune';
  const finetuneTrain = o.train && mode === 'finetune';
  const cfg: TransformConfig = {
    size: o.size,
    train: o.train,
    mode,
    scale: o.scale ?? (mode === 'pretrain' ? [0.2, 1] : [0.08, 1]),
    ratio: o.ratio ?? [3 / 4, 4 / 3],
    hflip: o.hflip ?? 0.5,
    randAugment: o.randAugment !== undefined ? o.randAugment : finetuneTrain ? { layers: 2, magnitude: 9, magnitudeStd: 0.5, prob: 0.5 } : null,
    reprob: o.reprob ?? (finetuneTrain ? 0.25 : 0),
    cropPct: o.cropPct ?? 0.875,
    mean: o.mean ?? IMAGENET_MEAN,
    std: o.std ?? IMAGENET_STD,
  };
  if (!Number.isInteger(cfg.size) || cfg.size < 8 || cfg.size > 4096) throw new RangeError(`image size ${cfg.size} must be an integer in 8..4096`);
  if (!(cfg.scale[0] > 0 && cfg.scale[0] <= cfg.scale[1] && cfg.scale[1] <= 1)) throw new RangeError(`scale ${cfg.scale.join(', ')} must satisfy 0 < lo <= hi <= 1`);
  if (!(cfg.ratio[0] > 0 && cfg.ratio[0] <= cfg.ratio[1])) throw new RangeError(`ratio ${cfg.ratio.join(', ')} must satisfy 0 < lo <= hi`);
  if (!(cfg.cropPct > 0 && cfg.cropPct <= 1)) throw new RangeError(`cropPct ${cfg.cropPct} must be in (0, 1]`);
  return cfg;
}

/**
 * A timm RandAugment policy string as the loader's settings: `rand-m9-mstd0.5-inc1` is magnitude 9 with std
 * 0.5 over timm's "increasing" ops; n (layers, default 2) and p (probability per op, default 0.5) as timm.
 */
export function randAugmentFromPolicy(policy: string): RandAugmentConfig {
  const [head, ...parts] = policy.split('-');
  const o: Record<string, number> = {};
  for (const part of parts) {
    const m = /^(mstd|mmax|inc|m|n|p)(\d+(?:\.\d+)?)$/.exec(part);
    if (head !== 'rand' || !m) throw new RangeError(`RandAugment policy '${policy}': '${part}' is not a timm setting (e.g. rand-m9-mstd0.5-inc1)`);
    o[m[1]!] = Number(m[2]);
  }
  if (o.inc !== 1) throw new RangeError(`RandAugment policy '${policy}': this loader implements timm's increasing op set only; add -inc1`);
  return { layers: o.n ?? 2, magnitude: o.m ?? 10, magnitudeStd: o.mstd ?? 0, prob: o.p ?? 0.5 };
}
