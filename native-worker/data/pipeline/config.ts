// Transform settings for training and evaluation, with the ConvNeXt V2 recipes as defaults
// (common/augment.ts): FCMAE pretraining (RandomResizedCrop scale (0.2, 1), flip), fine-tuning (scale
// (0.08, 1), flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25) and evaluation (resize to
// size/0.875, center crop).
import { type Augment, type RandAugmentPolicy, defaultAugment, parseRandAugment } from '../../../common/augment.ts';

export type TrainMode = 'pretrain' | 'finetune';

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export interface TransformConfig extends Omit<Augment, 'randAugment'> {
  /** Output side in pixels (square). */
  size: number;
  train: boolean;
  mode: TrainMode;
  randAugment: RandAugmentPolicy | null;
  /** Evaluation: resize the shorter side to floor(size / cropPct), then center crop. */
  cropPct: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/** Any augmentation value left out takes the mode's recipe default; randAugment is a timm policy string. */
export type TransformOptions = Pick<TransformConfig, 'size' | 'train'> & Partial<Omit<TransformConfig, 'size' | 'train' | 'randAugment'>> & { randAugment?: string | null };

/** Fills in the recipe defaults for the mode; explicit options win. */
export function resolveTransform(o: TransformOptions): TransformConfig {
  const mode = o.mode ?? 'finetune';
  const d = defaultAugment(o.train ? mode : 'pretrain');
  const policy = o.randAugment !== undefined ? o.randAugment : d.randAugment;
  const cfg: TransformConfig = {
    size: o.size,
    train: o.train,
    mode,
    scale: o.scale ?? d.scale,
    ratio: o.ratio ?? d.ratio,
    hflip: o.hflip ?? d.hflip,
    padCrop: o.padCrop ?? d.padCrop,
    randAugment: policy === null ? null : parseRandAugment(policy),
    reprob: o.reprob ?? d.reprob,
    remode: o.remode ?? d.remode,
    recount: o.recount ?? d.recount,
    cropPct: o.cropPct ?? 0.875,
    mean: o.mean ?? IMAGENET_MEAN,
    std: o.std ?? IMAGENET_STD,
  };
  if (!Number.isInteger(cfg.size) || cfg.size < 8 || cfg.size > 4096) throw new RangeError(`image size ${cfg.size} must be an integer in 8..4096`);
  if (!(cfg.scale[0] > 0 && cfg.scale[0] <= cfg.scale[1] && cfg.scale[1] <= 1)) throw new RangeError(`scale ${cfg.scale.join(', ')} must satisfy 0 < lo <= hi <= 1`);
  if (!(cfg.ratio[0] > 0 && cfg.ratio[0] <= cfg.ratio[1])) throw new RangeError(`ratio ${cfg.ratio.join(', ')} must satisfy 0 < lo <= hi`);
  if (!(cfg.cropPct > 0 && cfg.cropPct <= 1)) throw new RangeError(`cropPct ${cfg.cropPct} must be in (0, 1]`);
  if (cfg.padCrop !== null && !(Number.isInteger(cfg.padCrop) && cfg.padCrop >= 0)) throw new RangeError(`padCrop ${cfg.padCrop} must be a non-negative integer`);
  if (!(Number.isInteger(cfg.recount) && cfg.recount >= 1)) throw new RangeError(`recount ${cfg.recount} must be a positive integer`);
  return cfg;
}
