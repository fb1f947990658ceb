// The paper's feature analyses (Fig. 3 and 4) on the ONNX engine: per-layer feature cosine distance,
// activation grids, dead and constant channels, and GRN parameter statistics.
//
// Cosine distance of a layer's map X (C channels, each flattened over H*W), per image:
//   d = (1/C^2) * sum_ij (1 - cos(X_i, X_j)) / 2 = (1 - |sum_i X_i/|X_i||^2 / C^2) / 2
// (sum_ij cos_ij is the squared norm of the sum of unit vectors), then averaged over images. A channel that
// is all zeros counts as orthogonal to every other (its unit vector is taken as 0).
import type { Arch } from '../../common/variants.ts';
import * as F from '../engine/functional.ts';
import { Graph, type Value } from '../engine/ir.ts';
import { CompiledGraph, type ProviderChoice, tensor } from '../engine/runtime.ts';
import { convnextFeatures, convnextParams } from '../nn/convnext.ts';
import type { ParamValues } from '../nn/params.ts';

export interface LayerInfo {
  /** 'stages.i.blocks.j' */
  readonly name: string;
  readonly stage: number;
  readonly channels: number;
  /** Block index / (blocks - 1): the paper's normalized layer index. */
  readonly depth: number;
}

export interface LayerStats {
  /** Cosine distance per image of the batch. */
  readonly distance: Float32Array;
  /** Channels whose activations are all ~0 (|x| < 1e-6) over the batch. */
  readonly dead: number;
  /** Channels with no spatial variation (mean over images of their spatial std < 1e-3 x the layer's). */
  readonly constant: number;
}

/** Cosine distance (N,) of maps (N, C, H, W), built from graph ops. */
export function cosineDistance(x: Value): Value {
  const [n, c, h, w] = x.staticShape();
  const flat = F.reshape(x, [n!, c!, h! * w!]); // (N, C, HW)
  const norm = F.add(F.sqrt(F.sumSquare(flat, [2], true)), 1e-12);
  const unit = F.div(flat, norm);
  const total = F.sum(unit, [1]); // (N, HW)
  return F.mul(F.sub(1, F.mul(F.sumSquare(total, [1]), 1 / (c! * c!))), 0.5);
}

export const layersOf = (arch: Arch): LayerInfo[] => {
  const total = arch.depths.reduce((a, b) => a + b, 0);
  const out: LayerInfo[] = [];
  arch.depths.forEach((d, i) => {
    for (let j = 0; j < d; j++) out.push({ name: `stages.${i}.blocks.${j}`, stage: i, channels: arch.dims[i]!, depth: total > 1 ? out.length / (total - 1) : 0 });
  });
  return out;
};

/** A compiled forward pass returning, per block, its cosine distances and (on request) its map. */
export class FeatureProbe {
  private constructor(
    private readonly session: CompiledGraph,
    private readonly specs: ReturnType<typeof convnextParams>,
    readonly arch: Arch,
    readonly n: number,
    readonly size: number,
  ) {}

  static async create(arch: Arch, n: number, size: number, provider: ProviderChoice = 'auto'): Promise<FeatureProbe> {
    const cfg = { arch, numClasses: 0 };
    const specs = convnextParams(cfg);
    const g = new Graph('features');
    const p = new Map(specs.map((s) => [s.name, g.input(s.name, 'float32', s.shape)] as const));
    const { blocks } = convnextFeatures(cfg, p, g.input('image', 'float32', [n, 3, size, size]));
    blocks.forEach((b, k) => {
      g.output(cosineDistance(b), `distance.${k}`);
      g.output(b, `map.${k}`);
    });
    return new FeatureProbe(await CompiledGraph.create(g, { provider }), specs, arch, n, size);
  }

  /** Per block: distances per image and channel statistics; `keepMaps` returns those blocks' maps too. */
  /** `rows`: how many of the n images are real (the rest pad the last batch; channel counts ignore them). */
  async run(weights: ParamValues, images: Float32Array, keepMaps: ReadonlySet<number> = new Set(), rows = this.n): Promise<{ stats: LayerStats[]; maps: Map<number, Float32Array> }> {
    const feeds: Record<string, ReturnType<typeof tensor>> = { image: tensor('float32', images, [this.n, 3, this.size, this.size]) };
    for (const s of this.specs) {
      const w = weights.get(s.name);
      if (!w) throw new Error(`weights lack ${s.name}`);
      feeds[s.name] = tensor('float32', w, s.shape);
    }
    const out = await this.session.run(feeds);
    const stats: LayerStats[] = [];
    const maps = new Map<number, Float32Array>();
    layersOf(this.arch).forEach((_, k) => {
      const map = out[`map.${k}`]!;
      const data = map.data as Float32Array;
      stats.push({ distance: Float32Array.from(out[`distance.${k}`]!.data as Float32Array), ...channelStats(data, map.dims as number[], rows) });
      if (keepMaps.has(k)) maps.set(k, Float32Array.from(data));
    });
    return { stats, maps };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function channelStats(x: Float32Array, [, c, h, w]: number[], n: number): { dead: number; constant: number } {
  const hw = h! * w!;
  const spatialStd = new Float64Array(c!);
  const maxAbs = new Float64Array(c!);
  for (let s = 0; s < n; s++) {
    for (let k = 0; k < c!; k++) {
      const base = (s * c! + k) * hw;
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < hw; i++) {
        const v = x[base + i]!;
        sum += v;
        sq += v * v;
        if (Math.abs(v) > maxAbs[k]!) maxAbs[k] = Math.abs(v);
      }
      const mean = sum / hw;
      spatialStd[k]! += Math.sqrt(Math.max(0, sq / hw - mean * mean)) / n;
    }
  }
  const layerStd = spatialStd.reduce((a, b) => a + b, 0) / c!;
  let dead = 0;
  let constant = 0;
  for (let k = 0; k < c!; k++) {
    if (maxAbs[k]! < 1e-6) dead++;
    else if (spatialStd[k]! < 1e-3 * layerStd) constant++;
  }
  return { dead, constant };
}

export interface GrnStats {
  readonly layer: string;
  readonly weight: { mean: number; std: number; min: number; max: number; nearZero: number };
  readonly bias: { mean: number; std: number; min: number; max: number; nearZero: number };
}

const summary = (v: Float32Array) => {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std, min: Math.min(...v), max: Math.max(...v), nearZero: v.filter((x) => Math.abs(x) < 1e-3).length / v.length };
};

/** Statistics of every block's GRN gamma (weight) and beta (bias); empty for V1. */
export function grnStats(arch: Arch, weights: ParamValues): GrnStats[] {
  if (!arch.v2) return [];
  return layersOf(arch).map((l) => ({
    layer: l.name,
    weight: summary(weights.get(`${l.name}.mlp.grn.weight`)!),
    bias: summary(weights.get(`${l.name}.mlp.grn.bias`)!),
  }));
}

/** An 8x8 grid of the first 64 channels of image `s`'s map, each channel scaled to its own min..max. */
export function activationGrid(map: Float32Array, [, c, h, w]: readonly number[], s: number, count = 64): { width: number; height: number; gray: Uint8Array } {
  const side = Math.ceil(Math.sqrt(Math.min(count, c!)));
  const pad = 1;
  const width = side * (w! + pad) - pad;
  const height = side * (h! + pad) - pad;
  const gray = new Uint8Array(width * height).fill(255);
  for (let k = 0; k < Math.min(count, c!); k++) {
    const base = (s * c! + k) * h! * w!;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < h! * w!; i++) {
      lo = Math.min(lo, map[base + i]!);
      hi = Math.max(hi, map[base + i]!);
    }
    const [gy, gx] = [Math.floor(k / side), k % side];
    for (let y = 0; y < h!; y++) {
      for (let x = 0; x < w!; x++) {
        const v = hi > lo ? (map[base + y * w! + x]! - lo) / (hi - lo) : 0;
        gray[(gy * (h! + pad) + y) * width + gx * (w! + pad) + x] = Math.round(v * 255);
      }
    }
  }
  return { width, height, gray };
}
