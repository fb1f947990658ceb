// The training form's estimates. Memory: parameters (exact, from the model layout) times what training keeps
// per parameter, plus the activations backward needs (a per-block count of the tensors a ConvNeXt block
// saves, times the batch's feature maps). Time: the throughput an earlier run of the same model, input size
// and engine reached. Both are estimates and say so: the memory one leaves out the framework's own workspace
// and allocator slack, which add a few hundred MiB to a GiB or more.
import { layoutSize } from '../../common/layout.ts';
import { FCMAE_DECODER_DIM, parseArch } from '../../common/variants.ts';

/** Parameters of a ConvNeXt classifier (numClasses > 0), encoder (0), or FCMAE model (with `decoderDepth`). */
export function parameterCount(archName: string, numClasses: number, decoderDepth = 0, decoderDim = FCMAE_DECODER_DIM): number {
  const decoder = decoderDepth > 0 ? { decoder: { dim: decoderDim, depth: decoderDepth } } : {};
  return layoutSize({ arch: parseArch(archName), head: numClasses > 0, numClasses, ...decoder });
}

/**
 * Floats a block keeps for backward per position and channel, as eager PyTorch keeps them: the dwconv and
 * LayerNorm inputs and fc1's (C each), GELU's input and fc2's (4C each), and in V2 GRN's input, normalized
 * response and product (3 x 4C); in V1 layer scale's input (C) instead.
 */
const savedPerBlock = (v2: boolean) => (v2 ? 3 + 8 + 12 : 3 + 8 + 1);

export interface MemoryEstimate {
  parameters: number;
  /** Weights, gradients, two AdamW moments (and the EMA copy). */
  stateBytes: number;
  activationBytes: number;
  totalBytes: number;
}

export function estimateMemory(o: { arch: string; kind: 'pretrain' | 'finetune' | 'eval'; numClasses: number; inputSize: number; batchSize: number; ema: boolean; halfPrecision: boolean; decoderDepth?: number }): MemoryEstimate {
  const a = parseArch(o.arch);
  const parameters = parameterCount(o.arch, o.kind === 'pretrain' ? 0 : o.numClasses, o.kind === 'pretrain' ? (o.decoderDepth ?? 1) : 0);
  const copies = o.kind === 'eval' ? 1 : 4 + (o.ema ? 1 : 0);
  const stateBytes = parameters * 4 * copies;
  const act = o.halfPrecision ? 2 : 4;
  let positions = 0;
  a.depths.forEach((depth, i) => {
    const side = o.inputSize / 4 / 2 ** i;
    positions += depth * side * side * a.dims[i]!;
  });
  // Evaluation keeps no activations for backward: about two live feature maps at a time.
  const perImage = o.kind === 'eval' ? 2 * (o.inputSize / 4) ** 2 * a.dims[0]! * 4 : positions * savedPerBlock(a.v2);
  const activationBytes = o.batchSize * perImage * act;
  return { parameters, stateBytes, activationBytes, totalBytes: stateBytes + activationBytes };
}

/** Seconds for `steps` at an earlier run's throughput (images/s); null without one. */
export function estimateSeconds(steps: number, batchSize: number, imagesPerSec: number | null): number | null {
  return imagesPerSec && imagesPerSec > 0 ? (steps * batchSize) / imagesPerSec : null;
}
