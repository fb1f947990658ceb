// ConvNeXt V1 and V2, written once (V2 = V1 + GRN - layer scale), with timm's parameter names and shapes.
// The residual stream is NCHW (for the depthwise conv); LayerNorm, MLP and GRN run on (N*H*W, C) rows so the
// pointwise layers are single Gemms with fused bias.
import { type ParamEntry, type ParamRole, convnextLayout } from '../../common/layout.ts';
import type { Arch } from '../../common/variants.ts';
import * as F from '../engine/functional.ts';
import { type Graph, GraphError, type Value } from '../engine/ir.ts';
import type { Init, ParamSpec } from './params.ts';

export interface ConvNeXtConfig {
  readonly arch: Arch;
  /** Classifier outputs; 0 = no head (an FCMAE encoder). */
  readonly numClasses: number;
  readonly headInitScale?: number;
  /** Name prefix of every parameter ('encoder.' inside FCMAE). */
  readonly prefix?: string;
  /**
   * Small maps' depthwise convs as per-channel matrices (faster on onnxruntime's CPU). Off for exported
   * models, which keep the standard Conv graph other tools expect.
   */
  readonly depthwiseAsMatrix?: boolean;
}

export type Params = ReadonlyMap<string, Value>;

const W = { kind: 'truncNormal', std: 0.02 } as const;
const ZERO: Init = { kind: 'constant', value: 0 };
const ONE: Init = { kind: 'constant', value: 1 };

/** No weight decay for 1-D tensors (biases, norms, layer scale), GRN and the FCMAE mask token (both engines). */
export const isNoDecay = (name: string, shape: readonly number[]): boolean => shape.length === 1 || /\bgrn\b/.test(name) || name === 'mask_token';

export const blockCount = (arch: Arch): number => arch.depths.reduce((a, b) => a + b, 0);

/**
 * Maps of at most this many pixels (8x8) run the depthwise conv as one small matrix per channel. Up to 64
 * pixels the matrices cost about what the conv's 49 taps do; larger maps would pay pixels^2 in time and
 * memory. Measured on 2 cores, atto train step, batch 64: 32 px input 230 -> 122 ms, 64 px 515 -> ~390 ms.
 */
const MATRIX_CONV_PIXELS = 64;

/**
 * The block's 7x7 depthwise conv (padding 3). onnxruntime's CPU conv costs about the same on a 2x2 map as
 * on an 8x8 one (it convolves the padding), so on small maps the conv runs as what it is there: each
 * channel's output is its (h*w) pixels times an (h*w, h*w) matrix of kernel taps. The matrices are the
 * kernel times a constant 0/1 tap-placement matrix, so the gradient reaches the kernel through MatMuls.
 */
function depthwise7x7(x: Value, weight: Value, bias: Value, c: number, h: number, w: number, asMatrix: boolean): Value {
  const pixels = h * w;
  if (!asMatrix || pixels > MATRIX_CONV_PIXELS) return F.conv(x, weight, bias, { pad: 3, group: c });
  const placement = tapPlacementOf(x.graph, h, w);
  const perChannel = F.reshape(F.matmul(F.reshape(weight, [c, 49]), placement), [c, pixels, pixels]); // (C, in, out)
  const rows = F.reshape(F.transpose(x, [1, 0, 2, 3]), [c, -1, pixels]); // (C, N, in)
  const y = F.transpose(F.reshape(F.matmul(rows, perChannel), [c, -1, h, w]), [1, 0, 2, 3]); // -> (N, C, H, W)
  return F.add(y, F.reshape(bias, [1, c, 1, 1]));
}

const placements = new WeakMap<Graph, Map<string, Value>>();

/** One placement constant per map size and graph, shared by the blocks of a stage. */
function tapPlacementOf(g: Graph, h: number, w: number): Value {
  const known = placements.get(g) ?? new Map<string, Value>();
  placements.set(g, known);
  const key = `${h}x${w}`;
  let v = known.get(key);
  if (!v) {
    v = g.constant(tapPlacement(h, w), [49, h * w * h * w], 'float32', `depthwise_taps_${key}`);
    known.set(key, v);
  }
  return v;
}

/** (49, in * out) with a 1 where kernel tap t carries input pixel `in` to output pixel `out` (padding 3). */
function tapPlacement(h: number, w: number): Float32Array {
  const pixels = h * w;
  const m = new Float32Array(49 * pixels * pixels);
  for (let oy = 0; oy < h; oy++) {
    for (let ox = 0; ox < w; ox++) {
      for (let dy = -3; dy <= 3; dy++) {
        for (let dx = -3; dx <= 3; dx++) {
          const iy = oy + dy;
          const ix = ox + dx;
          if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
          const tap = (dy + 3) * 7 + (dx + 3);
          m[tap * pixels * pixels + (iy * w + ix) * pixels + (oy * w + ox)] = 1;
        }
      }
    }
  }
  return m;
}

/** timm's initial values: truncated normal weights (the head's scaled), zero biases and GRN, unit norms, layer scale 1e-6. */
function initOf(role: ParamRole, headInitScale: number): Init {
  if (role === 'weight' || role === 'maskToken') return W;
  if (role === 'headWeight') return { ...W, scale: headInitScale };
  if (role === 'normWeight') return ONE;
  if (role === 'layerScale') return { kind: 'constant', value: 1e-6 };
  return ZERO;
}

/** The parameters of a layout (common/layout.ts) with their initializers, names under `prefix`. */
export function paramSpecs(layout: readonly ParamEntry[], headInitScale = 1, prefix = ''): ParamSpec[] {
  return layout.map(({ name, shape, role }) => ({ name: prefix + name, shape, init: initOf(role, headInitScale), noDecay: isNoDecay(name, shape) }));
}

/** Every parameter of the network: a classifier (numClasses > 0) or an encoder without head. */
export function convnextParams(c: ConvNeXtConfig): ParamSpec[] {
  return paramSpecs(convnextLayout({ arch: c.arch, head: c.numClasses > 0, numClasses: c.numClasses }), c.headInitScale, c.prefix);
}

/** FCMAE masking of one stage: `keep` is (N, 1, H, W), 1 where the patch is visible. */
export interface StageMask {
  readonly keep: Value;
}

export interface ForwardOptions {
  /** Per block, a (N, 1, 1, 1) factor: 0 drops the residual branch, 1/(1-p) keeps it (stochastic depth). */
  readonly dropPath?: readonly Value[];
  /** Per stage, the visible-position mask (dense emulation of FCMAE's sparse convs). */
  readonly masks?: readonly StageMask[];
}

export interface Features {
  /** Last stage output (N, C, h, w). */
  readonly features: Value;
  /** Output of every block, in order (analysis taps). */
  readonly blocks: Value[];
  /** Output of every stage. */
  readonly stages: Value[];
}

/** Parameter names inside a block: timm's, or the official ones used by the FCMAE decoder. */
export interface BlockNames {
  readonly dw: string;
  readonly fc1: string;
  readonly fc2: string;
  readonly grnWeight: string;
  readonly grnBias: string;
}
const TIMM_BLOCK: BlockNames = { dw: 'conv_dw', fc1: 'mlp.fc1', fc2: 'mlp.fc2', grnWeight: 'mlp.grn.weight', grnBias: 'mlp.grn.bias' };
export const OFFICIAL_BLOCK: BlockNames = { dw: 'dwconv', fc1: 'pwconv1', fc2: 'pwconv2', grnWeight: 'grn.gamma', grnBias: 'grn.beta' };

export class Model {
  constructor(
    readonly c: ConvNeXtConfig,
    readonly p: Params,
  ) {}

  w(name: string): Value {
    const v = this.p.get((this.c.prefix ?? '') + name);
    if (!v) throw new Error(`ConvNeXt: parameter ${(this.c.prefix ?? '') + name} is missing`);
    return v;
  }

  /** LayerNorm over channels of an NCHW map. */
  channelsFirstNorm(x: Value, name: string): Value {
    const y = F.layerNorm(F.transpose(x, [0, 2, 3, 1]), this.w(`${name}.weight`), this.w(`${name}.bias`)); // (N, H, W, C)
    return F.transpose(y, [0, 3, 1, 2]); // -> (N, C, H, W)
  }

  /** A (out, in[, 1, 1]) weight as the (out, in) matrix Gemm takes with transB. */
  matrix(name: string): Value {
    const wt = this.w(name);
    return wt.rank === 2 ? wt : F.reshape(wt, wt.staticShape().slice(0, 2));
  }

  block(x: Value, name: string, dropPath: Value | undefined, keep: Value | undefined, names: BlockNames = TIMM_BLOCK): Value {
    // The batch may be symbolic (exported models): reshapes use -1 for it.
    const [, c, h, wd] = x.shape;
    if (typeof c !== 'number' || typeof h !== 'number' || typeof wd !== 'number') throw new GraphError(`${name}: channels and size must be static, got ${x}`);
    const w = (k: string) => this.w(`${name}.${k}`);
    let y = depthwise7x7(x, w(`${names.dw}.weight`), w(`${names.dw}.bias`), c, h, wd, this.c.depthwiseAsMatrix ?? true);
    if (keep) y = F.mul(y, keep);
    y = F.reshape(F.transpose(y, [0, 2, 3, 1]), [-1, c]); // (N, C, H, W) -> (N*H*W, C)
    y = F.layerNorm(y, w('norm.weight'), w('norm.bias'));
    y = F.gelu(F.gemm(y, this.matrix(`${name}.${names.fc1}.weight`), w(`${names.fc1}.bias`), false, true)); // (N*H*W, 4C)
    if (this.c.arch.v2) y = this.grn(y, [-1, h * wd, 4 * c], w(names.grnWeight), w(names.grnBias), keep);
    y = F.gemm(y, this.matrix(`${name}.${names.fc2}.weight`), w(`${names.fc2}.bias`), false, true); // (N*H*W, C)
    if (!this.c.arch.v2) y = F.mul(y, w('gamma'));
    y = F.transpose(F.reshape(y, [-1, h, wd, c]), [0, 3, 1, 2]); // -> (N, C, H, W)
    if (dropPath) y = F.mul(y, dropPath);
    const out = F.add(x, y);
    return keep ? F.mul(out, keep) : out;
  }

  /** GRN on rows (N*H*W, C) viewed as (N, H*W, C); the L2 norm runs over visible positions only. */
  grn(rows: Value, view: readonly number[], weight: Value, bias: Value, keep: Value | undefined): Value {
    const x = F.reshape(rows, view);
    // The official layout stores GRN parameters as (1, 1, 1, C); broadcast them as (C).
    const [gamma, beta] = [weight, bias].map((p) => (p.rank === 1 ? p : F.reshape(p, [view[2]!])));
    const visible = keep ? F.mul(x, F.reshape(keep, [-1, view[1]!, 1])) : x;
    const gx = F.sqrt(F.sumSquare(visible, [1], true)); // (N, 1, C)
    const nx = F.div(gx, F.add(F.mean(gx, [-1], true), 1e-6));
    // gamma * (x * nx) + beta + x, as x * (gamma * nx + 1) + beta: two passes over x instead of four.
    const y = F.add(F.mul(x, F.add(F.mul(gamma!, nx), 1)), beta!);
    return F.reshape(y, [-1, view[2]!]);
  }
}

/** The backbone: stem, four stages with downsamplers; returns the last map and the per-block taps. */
export function convnextFeatures(c: ConvNeXtConfig, p: Params, image: Value, o: ForwardOptions = {}): Features {
  const m = new Model(c, p);
  const g = image.graph;
  const blocks: Value[] = [];
  const stages: Value[] = [];
  let x = g.scope('stem', () => m.channelsFirstNorm(F.conv(image, m.w('stem.0.weight'), m.w('stem.0.bias'), { stride: 4 }), 'stem.1'));
  let k = 0;
  c.arch.depths.forEach((depth, i) => {
    const keep = o.masks?.[i]?.keep;
    if (i > 0) {
      x = g.scope(`stages.${i}.downsample`, () =>
        F.conv(m.channelsFirstNorm(x, `stages.${i}.downsample.0`), m.w(`stages.${i}.downsample.1.weight`), m.w(`stages.${i}.downsample.1.bias`), { stride: 2 }),
      );
    }
    if (keep) x = F.mul(x, keep);
    for (let j = 0; j < depth; j++, k++) {
      const name = `stages.${i}.blocks.${j}`;
      x = g.scope(name, () => m.block(x, name, o.dropPath?.[k], keep));
      blocks.push(x);
    }
    stages.push(x);
  });
  return { features: x, blocks, stages };
}

/** Global average pool -> LayerNorm -> Linear. Returns the pooled pre-logits and the logits. */
export function convnextHead(c: ConvNeXtConfig, p: Params, features: Value): { pooled: Value; logits: Value } {
  const m = new Model(c, p);
  return features.graph.scope('head', () => {
    const pooled = F.layerNorm(F.mean(features, [2, 3]), m.w('head.norm.weight'), m.w('head.norm.bias')); // (N, C)
    return { pooled, logits: F.gemm(pooled, m.w('head.fc.weight'), m.w('head.fc.bias'), false, true) };
  });
}
