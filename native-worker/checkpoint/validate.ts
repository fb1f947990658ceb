// What a ConvNeXt checkpoint must hold, in canonical (timm) names and shapes, and the check against it.
//
// Public API:
//   interface ArchSpec { variant, version, head?, numClasses?, decoder? }
//   expectedParams(arch): Map<string, number[]>        every parameter in state_dict order
//   validateParams(tensors, expected, file, origins?)  throws CheckpointError naming the file, the first
//                                                      offending key and both shapes
import { type ConvNeXtVersion, type VariantName, FCMAE_DECODER_DIM, FCMAE_PATCH_SIZE, variantByName } from '../../common/variants.ts';
import { CheckpointError, formatShape, sameShape } from './tensor.ts';

export interface ArchSpec {
  readonly variant: VariantName;
  readonly version: ConvNeXtVersion;
  /** Classifier head: head.norm and head.fc. Default: true, false with `decoder`. */
  readonly head?: boolean;
  /** Rows of head.fc; 0 leaves head.norm alone (timm's num_classes=0). Default 1000. */
  readonly numClasses?: number;
  /** FCMAE pretraining model: the encoder under `encoder.` plus the decoder (official names). Default false. */
  readonly decoder?: boolean;
  /** FCMAE decoder width and number of blocks. Default 512 and 1, the paper's. */
  readonly decoderDim?: number;
  readonly decoderDepth?: number;
}

/** An architecture as found in a file: every field known, the decoder's size only for FCMAE models. */
export type DetectedArch = Required<Omit<ArchSpec, 'decoderDim' | 'decoderDepth'>> & Pick<ArchSpec, 'decoderDim' | 'decoderDepth'>;

/** Canonical parameter names and shapes of `arch`, in the order torch's state_dict() lists them. */
export function expectedParams(arch: ArchSpec): Map<string, number[]> {
  const v = variantByName(arch.variant);
  if (!v.versions.includes(arch.version)) throw new RangeError(`ConvNeXt V${arch.version} has no '${arch.variant}' variant`);
  const decoder = arch.decoder ?? false;
  const head = arch.head ?? !decoder;
  if (decoder && head) throw new RangeError('an FCMAE model (encoder + decoder) has no classifier head');
  const numClasses = arch.numClasses ?? 1000;
  if (!Number.isSafeInteger(numClasses) || numClasses < 0) throw new RangeError(`numClasses must be a count, got ${numClasses}`);

  const out = new Map<string, number[]>();
  const enc = decoder ? 'encoder.' : '';
  const add = (name: string, shape: number[]) => out.set(enc + name, shape);
  const affine = (name: string, c: number) => {
    add(`${name}.weight`, [c]);
    add(`${name}.bias`, [c]);
  };
  // (out, in) for Linear, (out, in, 1, 1) for the 1x1-conv MLP of the small models.
  const mlpWeight = (o: number, i: number) => (v.convMlp ? [o, i, 1, 1] : [o, i]);

  const [d0] = v.dims;
  add('stem.0.weight', [d0, 3, 4, 4]);
  add('stem.0.bias', [d0]);
  affine('stem.1', d0);
  v.dims.forEach((c, i) => {
    if (i > 0) {
      const prev = v.dims[i - 1]!;
      affine(`stages.${i}.downsample.0`, prev);
      add(`stages.${i}.downsample.1.weight`, [c, prev, 2, 2]);
      add(`stages.${i}.downsample.1.bias`, [c]);
    }
    for (let j = 0; j < v.depths[i]!; j++) {
      const b = `stages.${i}.blocks.${j}`;
      // V1's layer scale is the block's own parameter, so state_dict() lists it before the submodules.
      if (arch.version === 1) add(`${b}.gamma`, [c]);
      add(`${b}.conv_dw.weight`, [c, 1, 7, 7]);
      add(`${b}.conv_dw.bias`, [c]);
      affine(`${b}.norm`, c);
      add(`${b}.mlp.fc1.weight`, mlpWeight(4 * c, c));
      add(`${b}.mlp.fc1.bias`, [4 * c]);
      if (arch.version === 2) affine(`${b}.mlp.grn`, 4 * c);
      add(`${b}.mlp.fc2.weight`, mlpWeight(c, 4 * c));
      add(`${b}.mlp.fc2.bias`, [c]);
    }
  });
  const last = v.dims[3];
  if (head) {
    affine('head.norm', last);
    if (numClasses > 0) {
      add('head.fc.weight', [numClasses, last]);
      add('head.fc.bias', [numClasses]);
    }
  }
  if (decoder) {
    const d = arch.decoderDim ?? FCMAE_DECODER_DIM;
    out.set('mask_token', [1, d, 1, 1]);
    out.set('proj.weight', [d, last, 1, 1]);
    out.set('proj.bias', [d]);
    for (let j = 0; j < (arch.decoderDepth ?? 1); j++) {
      const b = `decoder.${j}`;
      out.set(`${b}.dwconv.weight`, [d, 1, 7, 7]);
      out.set(`${b}.dwconv.bias`, [d]);
      out.set(`${b}.norm.weight`, [d]);
      out.set(`${b}.norm.bias`, [d]);
      out.set(`${b}.pwconv1.weight`, [4 * d, d]);
      out.set(`${b}.pwconv1.bias`, [4 * d]);
      out.set(`${b}.grn.gamma`, [1, 1, 1, 4 * d]);
      out.set(`${b}.grn.beta`, [1, 1, 1, 4 * d]);
      out.set(`${b}.pwconv2.weight`, [d, 4 * d]);
      out.set(`${b}.pwconv2.bias`, [d]);
    }
    const patchValues = FCMAE_PATCH_SIZE * FCMAE_PATCH_SIZE * 3;
    out.set('pred.weight', [patchValues, d, 1, 1]);
    out.set('pred.bias', [patchValues]);
  }
  return out;
}

/**
 * Checks `tensors` against `expected`: every expected key present with its shape and float32 data, nothing
 * else. Throws for the first problem in model order (missing or mismatched keys, then unexpected ones);
 * `origins` maps a canonical name to the name it was read under, for the message.
 */
export function validateParams(
  tensors: ReadonlyMap<string, { readonly shape: readonly number[]; readonly dtype?: string }>,
  expected: ReadonlyMap<string, readonly number[]>,
  file: string,
  origins?: ReadonlyMap<string, string>,
): void {
  const problems: string[] = [];
  const from = (name: string) => {
    const o = origins?.get(name);
    return o !== undefined && o !== name ? ` (read from '${o}')` : '';
  };
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) problems.push(`missing parameter '${name}' (expected shape ${formatShape(shape)})`);
    else if (!sameShape(t.shape, shape)) problems.push(`parameter '${name}'${from(name)} has shape ${formatShape(t.shape)}, expected ${formatShape(shape)}`);
    else if (t.dtype !== undefined && t.dtype !== 'float32') problems.push(`parameter '${name}'${from(name)} has dtype ${t.dtype}, expected float32`);
  }
  for (const [name, t] of tensors) {
    if (!expected.has(name)) problems.push(`unexpected parameter '${name}'${from(name)} with shape ${formatShape(t.shape)}`);
  }
  if (problems.length) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
    throw new CheckpointError(`${file}: ${problems[0]}${more}`);
  }
}
