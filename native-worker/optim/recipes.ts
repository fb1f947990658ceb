// The rules the paper's recipes rest on, for the ONNX engine; the recipe tables, lr scaling and schedule live
// in common/recipes.ts (the UI's forms default to them) and are re-exported here. The PyTorch engine's
// cnx_torch/recipes.py follows the same rules; tests hold the two to the same numbers.
//   Layer-wise lr decay, official layer ids on timm names: "single" (every block its own layer; stem and
//   downsampler i share the id of the first block they feed, sum(depths[:i]) + 1; head sum(depths) + 1) or
//   "group" (12 groups for base/large/huge). Scale of id i: decay ** (layers + 1 - i).
export { type FinetuneRecipe, PRETRAIN_RECIPE, finetuneRecipe, lrAt, scaledLr } from '../../common/recipes.ts';

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
