// What a ConvNeXt checkpoint must hold, in canonical (timm) names and shapes, and the check against it.
//
// Public API:
//   interface ArchSpec { variant, version, head?, numClasses?, decoder? }
//   expectedParams(arch): Map<string, number[]>        every parameter, in common/layout.ts's order
//   validateParams(tensors, expected, file, origins?)  throws CheckpointError naming the file, the first
//                                                      offending key and both shapes
import { convnextLayout } from '../../common/layout.ts';
import { type ConvNeXtVersion, type VariantName, FCMAE_DECODER_DIM, parseArch, timmModelName, variantByName } from '../../common/variants.ts';
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

/** Canonical parameter names and shapes of `arch` (common/layout.ts), with the checks a file's description needs. */
export function expectedParams(arch: ArchSpec): Map<string, number[]> {
  const v = variantByName(arch.variant);
  if (!v.versions.includes(arch.version)) throw new RangeError(`ConvNeXt V${arch.version} has no '${arch.variant}' variant`);
  const decoder = arch.decoder ?? false;
  const head = arch.head ?? !decoder;
  if (decoder && head) throw new RangeError('an FCMAE model (encoder + decoder) has no classifier head');
  const numClasses = arch.numClasses ?? 1000;
  if (!Number.isSafeInteger(numClasses) || numClasses < 0) throw new RangeError(`numClasses must be a count, got ${numClasses}`);

  const layout = convnextLayout({
    arch: parseArch(timmModelName(arch.variant, arch.version)),
    head,
    numClasses,
    ...(decoder ? { decoder: { dim: arch.decoderDim ?? FCMAE_DECODER_DIM, depth: arch.decoderDepth ?? 1 } } : {}),
  });
  return new Map(layout.map((p) => [p.name, [...p.shape]]));
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
