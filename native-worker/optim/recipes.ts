// The paper's recipes (REFERENCE.md) and the rules they rest on, for the ONNX engine. The PyTorch engine's
// cnx_torch/recipes.py follows the same rules; tests hold the two to the same numbers.
//   lr = base_lr * effective_batch / 256; per step: linear warmup from 0, then half-cosine to min_lr.
//   Layer-wise lr decay, official layer ids on timm names: "single" (every block its own layer; stem and
//   downsampler i share the id of the first block they feed, sum(depths[:i]) + 1; head sum(depths) + 1) or
//   "group" (12 groups for base/large/huge). Scale of id i: decay ** (layers + 1 - i).
import { type VariantName, parseArch } from '../../common/variants.ts';

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
const FINETUNE: Record<VariantName, FinetuneRecipe> = {
  atto: small(0.3),
  femto: small(0.05),
  pico: small(0.3),
  nano: small(0.3),
  tiny: { ...common, baseLr: 8e-4, weightDecay: 0.05, layerDecay: 0.9, layerDecayType: 'single', warmupEpochs: 40, epochs: 300, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.2 },
  base: { ...common, baseLr: 6.25e-4, weightDecay: 0.05, layerDecay: 0.6, layerDecayType: 'group', warmupEpochs: 20, epochs: 100, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.1 },
  large: { ...common, baseLr: 6.25e-4, weightDecay: 0.05, layerDecay: 0.6, layerDecayType: 'group', warmupEpochs: 20, epochs: 100, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.2 },
  huge: { ...common, baseLr: 1.25e-3, weightDecay: 0.05, layerDecay: 0.75, layerDecayType: 'group', warmupEpochs: 10, epochs: 50, labelSmoothing: 0.1, mixup: 0.8, cutmix: 1, dropPath: 0.3 },
};

export const finetuneRecipe = (arch: string): FinetuneRecipe => FINETUNE[parseArch(arch).variant];

export const scaledLr = (baseLr: number, effectiveBatch: number): number => (baseLr * effectiveBatch) / 256;

/** lr of optimizer step `step` (0-based). */
export function lrAt(step: number, peak: number, warmup: number, total: number, minLr = 0): number {
  if (step < warmup) return (peak * step) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return minLr + (peak - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

export const layerCount = (depths: readonly number[], type: 'single' | 'group'): number =>
  type === 'single' ? depths.reduce((a, b) => a + b, 0) : 12;

/** Official layer id of a timm-named parameter. */
export function layerId(name: string, depths: readonly number[], type: 'single' | 'group'): number {
  const [top, s, kind, b] = name.split('.');
  const stage = Number(s);
  const before = depths.slice(0, stage).reduce((a, c) => a + c, 0);
  if (type === 'single') {
    if (top === 'stem') return 1;
    if (top === 'stages') return kind === 'downsample' ? before + 1 : before + Number(b) + 1;
    return layerCount(depths, type) + 1;
  }
  if (top === 'stem') return 0;
  if (top === 'stages') {
    if (kind === 'downsample') return ({ 1: 2, 2: 3, 3: 12 } as Record<number, number>)[stage]!;
    return stage === 2 ? 3 + Math.floor(Number(b) / 3) : ({ 0: 1, 1: 2, 3: 12 } as Record<number, number>)[stage]!;
  }
  return layerCount(depths, type) + 1;
}

/** lr multiplier of a parameter under layer-wise decay. */
export const layerScale = (name: string, depths: readonly number[], decay: number, type: 'single' | 'group'): number =>
  decay ** (layerCount(depths, type) + 1 - layerId(name, depths, type));

/** Label-smoothed one-hot rows (N, K): 1 - s + s/K on the class, s/K elsewhere. */
export function smoothOneHot(labels: ArrayLike<number>, k: number, smoothing: number): Float32Array {
  const off = smoothing / k;
  const t = new Float32Array(labels.length * k).fill(off);
  for (let i = 0; i < labels.length; i++) t[i * k + labels[i]!] = 1 - smoothing + off;
  return t;
}
