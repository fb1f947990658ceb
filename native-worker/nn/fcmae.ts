// FCMAE: a ConvNeXt V2 encoder with FCMAE's sparse convs emulated densely (mask before and after each
// depthwise conv, GRN over visible positions), a one-block ConvNeXt V2 decoder, and the norm-pix loss over
// masked patches. Mask convention: (N, L) with L = (H/32)*(W/32) patches, 0 = keep, 1 = remove.
import { convnextLayout } from '../../common/layout.ts';
import { type Arch, FCMAE_DECODER_DIM, FCMAE_PATCH_SIZE } from '../../common/variants.ts';
import * as F from '../engine/functional.ts';
import type { Value } from '../engine/ir.ts';
import { Model, OFFICIAL_BLOCK, type Params, convnextFeatures, paramSpecs } from './convnext.ts';
import type { ParamSpec } from './params.ts';
import type { Rng } from './random.ts';

export interface FcmaeConfig {
  readonly arch: Arch;
  readonly inputSize: number;
  readonly patchSize: number;
  readonly maskRatio: number;
  readonly decoderDim: number;
  readonly decoderDepth: number;
  readonly normPixLoss: boolean;
}

export const FCMAE_DEFAULTS = { patchSize: FCMAE_PATCH_SIZE, maskRatio: 0.6, decoderDim: FCMAE_DECODER_DIM, decoderDepth: 1, normPixLoss: true } as const;

/** Checks what the dense emulation needs: the input a multiple of the patch, the patch the net's stride. */
export function checkFcmae(c: FcmaeConfig): void {
  if (c.patchSize !== 32) throw new Error(`FCMAE: patch size must be 32 (the encoder's total stride), got ${c.patchSize}`);
  if (c.inputSize % c.patchSize) throw new Error(`FCMAE: input size ${c.inputSize} is not a multiple of ${c.patchSize}`);
  if (!(c.maskRatio > 0 && c.maskRatio < 1)) throw new Error(`FCMAE: mask ratio must be in (0, 1), got ${c.maskRatio}`);
  if (c.decoderDepth < 1) throw new Error(`FCMAE: decoder depth must be at least 1`);
  const l = (c.inputSize / c.patchSize) ** 2;
  const keep = Math.floor(l * (1 - c.maskRatio));
  if (keep < 1 || keep === l) {
    throw new Error(`FCMAE: at ${c.inputSize} px there are ${l} patches and mask ratio ${c.maskRatio} keeps ${keep}; the encoder must see some patches and the loss needs some removed (use a larger input, e.g. 64 or 96 px)`);
  }
}

export const patchesPerSide = (c: FcmaeConfig): number => c.inputSize / c.patchSize;

/** Encoder (`encoder.` + timm names, no head), then the decoder with the official names. */
export function fcmaeParams(c: FcmaeConfig): ParamSpec[] {
  return paramSpecs(convnextLayout({ arch: c.arch, head: false, numClasses: 0, decoder: { dim: c.decoderDim, depth: c.decoderDepth, patchSize: c.patchSize } }));
}

/** A (N, L) mask per sample: random noise -> argsort -> the first int(L*(1-ratio)) kept (0), the rest 1. */
export function randomMask(rng: Rng, n: number, l: number, ratio: number): Float32Array {
  const keep = Math.floor(l * (1 - ratio));
  const mask = new Float32Array(n * l).fill(1);
  for (let s = 0; s < n; s++) {
    const noise = Array.from({ length: l }, () => rng.uniform());
    const order = noise.map((_, i) => i).sort((a, b) => noise[a]! - noise[b]!);
    for (let k = 0; k < keep; k++) mask[s * l + order[k]!] = 0;
  }
  return mask;
}

/** (N, 1, g, g) -> (N, 1, g*r, g*r) by repeating every cell r x r times. */
function upsample(m: Value, r: number): Value {
  if (r === 1) return m;
  const [n, , g] = m.staticShape();
  const tiled = F.expand(F.reshape(m, [n!, 1, g!, 1, g!, 1]), [n!, 1, g!, r, g!, r]);
  return F.reshape(tiled, [n!, 1, g! * r, g! * r]);
}

/** (N, 3, H, W) -> (N, L, p*p*3), pixel order (row, col, channel) inside each patch. */
export function patchify(image: Value, p: number): Value {
  const [n, ch, h, w] = image.staticShape();
  const [gh, gw] = [h! / p, w! / p];
  const x = F.reshape(image, [n!, ch!, gh, p, gw, p]);
  return F.reshape(F.transpose(x, [0, 2, 4, 3, 5, 1]), [n!, gh * gw, p * p * ch!]); // (N, gh, gw, p, p, 3)
}

export interface FcmaeOutputs {
  readonly loss: Value;
  /** Raw decoder output (N, L, p*p*3). */
  readonly pred: Value;
}

/** The FCMAE forward pass and loss. `mask` is (N, L), 1 = removed. */
export function fcmaeForward(c: FcmaeConfig, p: Params, image: Value, mask: Value): FcmaeOutputs {
  const g = image.graph;
  const [n] = image.staticShape();
  const side = patchesPerSide(c);
  const grid = F.reshape(mask, [n!, 1, side, side]); // (N, L) -> (N, 1, g, g)
  const masks = c.arch.dims.map((_, i) => ({ keep: F.sub(1, upsample(grid, 8 >> i)) }));
  const { features } = convnextFeatures({ arch: c.arch, numClasses: 0, prefix: 'encoder.' }, p, image, { masks });

  const decoder = new Model({ arch: { ...c.arch, v2: true }, numClasses: 0 }, p);
  const pred = g.scope('decoder', () => {
    let x = F.conv(features, decoder.w('proj.weight'), decoder.w('proj.bias')); // (N, D, g, g)
    x = F.add(F.mul(x, F.sub(1, grid)), F.mul(decoder.w('mask_token'), grid));
    for (let i = 0; i < c.decoderDepth; i++) x = decoder.block(x, `decoder.${i}`, undefined, undefined, OFFICIAL_BLOCK);
    const out = F.conv(x, decoder.w('pred.weight'), decoder.w('pred.bias')); // (N, p*p*3, g, g)
    return F.reshape(F.transpose(out, [0, 2, 3, 1]), [n!, side * side, c.patchSize * c.patchSize * 3]);
  });

  const loss = g.scope('loss', () => {
    let target = patchify(image, c.patchSize);
    if (c.normPixLoss) {
      const d = target.staticShape()[2]!;
      const mean = F.mean(target, [-1], true);
      const centered = F.sub(target, mean);
      const variance = F.mul(F.sum(F.mul(centered, centered), [-1], true), 1 / (d - 1)); // unbiased
      target = F.div(centered, F.sqrt(F.add(variance, 1e-6)));
    }
    const diff = F.sub(pred, target);
    const perPatch = F.mean(F.mul(diff, diff), [-1]); // (N, L)
    return F.div(F.sumAll(F.mul(perPatch, mask)), F.sumAll(mask));
  });
  return { loss, pred };
}
