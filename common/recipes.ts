// The recipes, written once: the V2 paper's pretraining and per-variant fine-tuning hyper-parameters, the V1
// paper's supervised recipe, and a short-run recipe for short schedules on small datasets; the lr scaling
// rule (lr = base_lr * effective_batch / 256) and the per-step schedule (linear warmup from 0, then
// half-cosine to min_lr). Pure data and arithmetic; common/resolve-job.ts turns them into job configs for
// the CLI and the Train form, and the engines train from those resolved values.
import { defaultAugment } from './augment.ts';
import { type Arch, parseArch } from './variants.ts';

export interface FinetuneRecipe {
  readonly baseLr: number;
  readonly weightDecay: number;
  readonly layerDecay: number;
  readonly layerDecayType: 'single' | 'group';
  readonly warmupEpochs: number;
  readonly epochs: number;
  readonly labelSmoothing: number;
  readonly mixup: number;
  readonly cutmix: number;
  readonly dropPath: number;
  readonly batch: number;
  readonly emaDecay: number | null;
  readonly headInitScale: number;
}

export const PRETRAIN_RECIPE = { baseLr: 1.5e-4, weightDecay: 0.05, betas: [0.9, 0.95] as const, warmupEpochs: 40, epochs: 800, batch: 4096, maskRatio: 0.6 };
export const FINETUNE_BETAS = [0.9, 0.999] as const;

const common = { batch: 1024, emaDecay: 0.9999, headInitScale: 0.001 };
// Where the table gives a range (atto-nano: mixup/cutmix 0-0.5, drop path 0-0.1) both engines take the
// official script's values for atto: no mixup/cutmix, drop path 0.1.
const small = (weightDecay: number): FinetuneRecipe => ({
  ...common, baseLr: 2e-4, weightDecay, layerDecay: 0.9, layerDecayType: 'single', warmupEpochs: 0, epochs: 600, labelSmoothing: 0.2, mixup: 0, cutmix: 0, dropPath: 0.1,
});
const group = (baseLr: number, layerDecay: number, warmupEpochs: number, epochs: number, dropPath: number): FinetuneRecipe => ({
  ...common, baseLr, weightDecay: 0.05, layerDecay, layerDecayType: 'group', warmupEpochs, epochs, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath,
});
/** V2 paper, fine-tuning an FCMAE-pretrained encoder on ImageNet-1K, per model size. */
const V2_FINETUNE: Readonly<Record<string, FinetuneRecipe>> = {
  atto: small(0.3),
  femto: small(0.05),
  pico: small(0.3),
  nano: small(0.3),
  tiny: { ...common, baseLr: 8e-4, weightDecay: 0.05, layerDecay: 0.9, layerDecayType: 'single', warmupEpochs: 40, epochs: 300, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.2 },
  base: group(6.25e-4, 0.6, 20, 100, 0.1),
  large: group(6.25e-4, 0.6, 20, 100, 0.2),
  huge: group(1.25e-3, 0.75, 10, 50, 0.3),
};

// V1 paper (ConvNeXt, 2022), supervised ImageNet-1K training from scratch: lr 4e-3 at batch 4096, 300 epochs,
// 20 warmup, no layer decay, head init 1; stochastic depth by size (T 0.1, S 0.4, B 0.5, L 0.5). The paper
// has no atto-nano (timm's later additions): they take tiny's values.
// Layer decay is off (1); its type, used only if a user sets a decay, follows depth as in V2: the grouped
// rule for the 27-block stage of small/base/large/xlarge.
const v1 = (dropPath: number, layerDecayType: 'single' | 'group' = 'single'): FinetuneRecipe => ({
  baseLr: 2.5e-4, weightDecay: 0.05, layerDecay: 1, layerDecayType, warmupEpochs: 20, epochs: 300, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath, batch: 4096, emaDecay: 0.9999, headInitScale: 1,
});
const V1_SUPERVISED: Readonly<Record<string, FinetuneRecipe>> = {
  atto: v1(0.1), femto: v1(0.1), pico: v1(0.1), nano: v1(0.1), tiny: v1(0.1), small: v1(0.4, 'group'), base: v1(0.5, 'group'), large: v1(0.5, 'group'), xlarge: v1(0.5, 'group'),
};

/**
 * Short runs on small datasets (chosen when a fine-tune is under a tenth of the paper's schedule): a few
 * epochs cannot pay back the paper's regularization (smoothing 0.2, weight decay 0.3, RandAugment, erasing,
 * drop path), which is tuned for hundreds of epochs and underfits here. So: a higher lr (AdamW, small
 * models from scratch train well at 2-4e-3 for batch 64-128), warmup of at most a tenth of the run, weight
 * decay 0.05, no smoothing, no mixing, no drop path, no layer decay, EMA off (at 0.9999 it averages over
 * ~10k steps, longer than the run), and only crop + flip as augmentation.
 */
export const SHORT_RECIPE: FinetuneRecipe = {
  baseLr: 8e-3, weightDecay: 0.05, layerDecay: 1, layerDecayType: 'single', warmupEpochs: 1, epochs: 0, labelSmoothing: 0, mixup: 0, cutmix: 0, dropPath: 0, batch: 256, emaDecay: null, headInitScale: 1,
};

/** Augmentation of a recipe's training images (timm names: RandAugment policy, erasing probability, crop area range). */
export interface AugmentRecipe {
  readonly randAugment: string | null;
  readonly reprob: number;
  readonly scale: readonly [number, number];
}
const finetuneAugment = defaultAugment('finetune');
export const PAPER_AUGMENT: AugmentRecipe = { randAugment: finetuneAugment.randAugment, reprob: finetuneAugment.reprob, scale: finetuneAugment.scale };
// Crops of at least a third of the area: small datasets are often small images (Fashion-MNIST's 28 px items
// fill the frame) and an 8% crop of those keeps too little of the object to learn from in a short run.
export const SHORT_AUGMENT: AugmentRecipe = { randAugment: null, reprob: 0, scale: [0.35, 1] };

const lookup = (table: Readonly<Record<string, FinetuneRecipe>>, a: Arch, what: string): FinetuneRecipe => {
  const r = table[a.variant];
  if (!r) throw new RangeError(`${what} has no recipe for ${a.variant}`);
  return r;
};

/** The paper's recipe for an architecture: V2's fine-tuning table, or V1's supervised recipe for V1 models. */
export const finetuneRecipe = (arch: string): FinetuneRecipe => {
  const a = parseArch(arch);
  return a.v2 ? lookup(V2_FINETUNE, a, 'the ConvNeXt V2 paper') : lookup(V1_SUPERVISED, a, 'the ConvNeXt V1 paper');
};

export const scaledLr = (baseLr: number, effectiveBatch: number): number => (baseLr * effectiveBatch) / 256;

/** lr of optimizer step `step` (0-based). */
export function lrAt(step: number, peak: number, warmup: number, total: number, minLr = 0): number {
  if (step < warmup) return (peak * step) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return minLr + (peak - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
