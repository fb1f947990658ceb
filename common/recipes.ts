// The paper's recipes (REFERENCE.md): pretraining and per-variant fine-tuning hyper-parameters, the lr
// scaling rule (lr = base_lr * effective_batch / 256) and the per-step schedule (linear warmup from 0, then
// half-cosine to min_lr). Pure data and arithmetic, shared by the engines and the UI's training forms.
import { type VariantName, parseArch } from './variants.ts';

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
  readonly emaDecay: number;
  readonly headInitScale: number;
}

export const PRETRAIN_RECIPE = { baseLr: 1.5e-4, weightDecay: 0.05, betas: [0.9, 0.95] as const, warmupEpochs: 40, epochs: 800, batch: 4096, maskRatio: 0.6 };

const common = { batch: 1024, emaDecay: 0.9999, headInitScale: 0.001 };
// Where the table gives a range (atto-nano: mixup/cutmix 0-0.5, drop path 0-0.1) both engines take the
// official script's values for atto: no mixup/cutmix, drop path 0.1.
const small = (weightDecay: number): FinetuneRecipe => ({
  ...common, baseLr: 2e-4, weightDecay, layerDecay: 0.9, layerDecayType: 'single', warmupEpochs: 0, epochs: 600, labelSmoothing: 0.2, mixup: 0, cutmix: 0, dropPath: 0.1,
});
const PAPER_FINETUNE: Record<Exclude<VariantName, 'small' | 'xlarge'>, FinetuneRecipe> = {
  atto: small(0.3),
  femto: small(0.05),
  pico: small(0.3),
  nano: small(0.3),
  tiny: { ...common, baseLr: 8e-4, weightDecay: 0.05, layerDecay: 0.9, layerDecayType: 'single', warmupEpochs: 40, epochs: 300, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.2 },
  base: { ...common, baseLr: 6.25e-4, weightDecay: 0.05, layerDecay: 0.6, layerDecayType: 'group', warmupEpochs: 20, epochs: 100, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.1 },
  large: { ...common, baseLr: 6.25e-4, weightDecay: 0.05, layerDecay: 0.6, layerDecayType: 'group', warmupEpochs: 20, epochs: 100, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.2 },
  huge: { ...common, baseLr: 1.25e-3, weightDecay: 0.05, layerDecay: 0.75, layerDecayType: 'group', warmupEpochs: 10, epochs: 50, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.3 },
};

// V1 small and xlarge have no V2 recipe: each takes that of the V2 size with its depths and next width (as
// cnx_torch/recipes.py does).
const FINETUNE: Record<VariantName, FinetuneRecipe> = { ...PAPER_FINETUNE, small: PAPER_FINETUNE.base, xlarge: PAPER_FINETUNE.large };

export const finetuneRecipe = (arch: string): FinetuneRecipe => FINETUNE[parseArch(arch).variant];

export const scaledLr = (baseLr: number, effectiveBatch: number): number => (baseLr * effectiveBatch) / 256;

/** lr of optimizer step `step` (0-based). */
export function lrAt(step: number, peak: number, warmup: number, total: number, minLr = 0): number {
  if (step < warmup) return (peak * step) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return minLr + (peak - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

