// The parameters of a ConvNeXt (V1 or V2) and of the FCMAE model around its encoder: names (timm's for the
// network, the official ones for the FCMAE decoder) and shapes. The one definition of the layout: the ONNX
// engine's model builder (native-worker/nn), checkpoint validation (native-worker/checkpoint/validate.ts) and
// the training form's estimates (renderer/lib/estimate.ts) derive from it, and the PyTorch engine's state
// dict is tested against it. Order: torch's state_dict() order for the network (V1's layer scale is the
// block's own parameter, so it comes first), then the FCMAE decoder in the order it is built.
import { type Arch, FCMAE_DECODER_DIM, FCMAE_PATCH_SIZE } from './variants.ts';

/** What a parameter is: decides its initial value (and, with its shape, weight decay). */
export type ParamRole = 'weight' | 'bias' | 'normWeight' | 'normBias' | 'grn' | 'layerScale' | 'headWeight' | 'maskToken';

export interface ParamEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly role: ParamRole;
}

export interface DecoderLayout {
  /** Width and blocks of the FCMAE decoder; default 512 and 1, the paper's. */
  readonly dim?: number;
  readonly depth?: number;
  /** Mask patch in pixels (the prediction has patch * patch * 3 values per patch); default 32. */
  readonly patchSize?: number;
}

export interface LayoutOptions {
  readonly arch: Arch;
  /** head.norm, plus head.fc when numClasses > 0 (timm's num_classes=0 keeps the norm). */
  readonly head: boolean;
  readonly numClasses: number;
  /** An FCMAE model: the network under 'encoder.', then the decoder. */
  readonly decoder?: DecoderLayout;
}

type Add = (name: string, shape: number[], role: ParamRole) => void;

const layerNorm = (add: Add, name: string, dim: number) => {
  add(`${name}.weight`, [dim], 'normWeight');
  add(`${name}.bias`, [dim], 'normBias');
};

function block(add: Add, arch: Arch, b: string, dim: number): void {
  // (out, in) for Linear, (out, in, 1, 1) for the 1x1-conv MLP of the small models.
  const fc = (o: number, i: number) => (arch.convMlp ? [o, i, 1, 1] : [o, i]);
  if (!arch.v2) add(`${b}.gamma`, [dim], 'layerScale');
  add(`${b}.conv_dw.weight`, [dim, 1, 7, 7], 'weight');
  add(`${b}.conv_dw.bias`, [dim], 'bias');
  layerNorm(add, `${b}.norm`, dim);
  add(`${b}.mlp.fc1.weight`, fc(4 * dim, dim), 'weight');
  add(`${b}.mlp.fc1.bias`, [4 * dim], 'bias');
  if (arch.v2) {
    add(`${b}.mlp.grn.weight`, [4 * dim], 'grn');
    add(`${b}.mlp.grn.bias`, [4 * dim], 'grn');
  }
  add(`${b}.mlp.fc2.weight`, fc(dim, 4 * dim), 'weight');
  add(`${b}.mlp.fc2.bias`, [dim], 'bias');
}

/** Stem, then per stage its downsampler (stages 1..3) and blocks, then the head. */
function network(add: Add, o: LayoutOptions): void {
  const { dims, depths } = o.arch;
  add('stem.0.weight', [dims[0]!, 3, 4, 4], 'weight');
  add('stem.0.bias', [dims[0]!], 'bias');
  layerNorm(add, 'stem.1', dims[0]!);
  dims.forEach((dim, i) => {
    if (i > 0) {
      layerNorm(add, `stages.${i}.downsample.0`, dims[i - 1]!);
      add(`stages.${i}.downsample.1.weight`, [dim, dims[i - 1]!, 2, 2], 'weight');
      add(`stages.${i}.downsample.1.bias`, [dim], 'bias');
    }
    for (let j = 0; j < depths[i]!; j++) block(add, o.arch, `stages.${i}.blocks.${j}`, dim);
  });
  const last = dims[dims.length - 1]!;
  if (o.head) layerNorm(add, 'head.norm', last);
  if (o.head && o.numClasses > 0) {
    add('head.fc.weight', [o.numClasses, last], 'headWeight');
    add('head.fc.bias', [o.numClasses], 'bias');
  }
}

/** The FCMAE decoder (official names): 1x1 projection, mask token, ConvNeXt V2 blocks, 1x1 prediction. */
function decoder(add: Add, encoderDim: number, o: DecoderLayout): void {
  const d = o.dim ?? FCMAE_DECODER_DIM;
  add('proj.weight', [d, encoderDim, 1, 1], 'weight');
  add('proj.bias', [d], 'bias');
  add('mask_token', [1, d, 1, 1], 'maskToken');
  for (let i = 0; i < (o.depth ?? 1); i++) {
    const b = `decoder.${i}`;
    add(`${b}.dwconv.weight`, [d, 1, 7, 7], 'weight');
    add(`${b}.dwconv.bias`, [d], 'bias');
    layerNorm(add, `${b}.norm`, d);
    add(`${b}.pwconv1.weight`, [4 * d, d], 'weight');
    add(`${b}.pwconv1.bias`, [4 * d], 'bias');
    add(`${b}.grn.gamma`, [1, 1, 1, 4 * d], 'grn');
    add(`${b}.grn.beta`, [1, 1, 1, 4 * d], 'grn');
    add(`${b}.pwconv2.weight`, [d, 4 * d], 'weight');
    add(`${b}.pwconv2.bias`, [d], 'bias');
  }
  const values = (o.patchSize ?? FCMAE_PATCH_SIZE) ** 2 * 3;
  add('pred.weight', [values, d, 1, 1], 'weight');
  add('pred.bias', [values], 'bias');
}

/** Every parameter of the model `o` describes. */
export function convnextLayout(o: LayoutOptions): ParamEntry[] {
  const out: ParamEntry[] = [];
  const prefix = o.decoder ? 'encoder.' : '';
  network((name, shape, role) => out.push({ name: prefix + name, shape, role }), o);
  if (o.decoder) decoder((name, shape, role) => out.push({ name, shape, role }), o.arch.dims[o.arch.dims.length - 1]!, o.decoder);
  return out;
}

/** The number of values of a shape. */
export const shapeSize = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The number of parameters of the model `o` describes. */
export const layoutSize = (o: LayoutOptions): number => convnextLayout(o).reduce((n, p) => n + shapeSize(p.shape), 0);
