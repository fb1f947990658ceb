// The ConvNeXt model sizes (the papers' model tables, plus timm's V1 small and xlarge), read from
// common/variants.json: the one table, which the PyTorch engine (cnx_torch/models.py) reads too.
//
// Public API:
//   type VariantName = 'atto' | ... | 'huge'
//   interface Variant { name, depths, dims, convMlp, versions }
//   VARIANTS: readonly Variant[]          in size order
//   variantByName(name): Variant           throws RangeError for an unknown name
//   timmModelName(name, version): string   'convnextv2_atto', 'convnext_tiny', ...
//   FCMAE_DECODER_DIM, FCMAE_PATCH_SIZE    the FCMAE decoder width and patch size
import table from './variants.json' with { type: 'json' };

export type VariantName = keyof typeof table.variants;
export type ConvNeXtVersion = 1 | 2;

export interface Variant {
  readonly name: VariantName;
  /** Blocks per stage. */
  readonly depths: readonly [number, number, number, number];
  /** Channels per stage. */
  readonly dims: readonly [number, number, number, number];
  /** timm builds the block MLP from 1x1 convs (weights (out, in, 1, 1)) for the small models, Linear otherwise. */
  readonly convMlp: boolean;
  /** ConvNeXt versions that define this size (huge exists only in V2, small and xlarge only in V1). */
  readonly versions: readonly ConvNeXtVersion[];
}

const four = (xs: readonly number[], what: string): [number, number, number, number] => {
  if (xs.length !== 4 || !xs.every((x) => Number.isSafeInteger(x) && x > 0)) throw new Error(`common/variants.json: ${what} must be four positive integers`);
  return [xs[0]!, xs[1]!, xs[2]!, xs[3]!];
};

export const VARIANTS: readonly Variant[] = Object.entries(table.variants).map(([name, v]) => ({
  name: name as VariantName,
  depths: four(v.depths, `${name}.depths`),
  dims: four(v.dims, `${name}.dims`),
  convMlp: v.convMlp,
  versions: v.versions.filter((x): x is ConvNeXtVersion => x === 1 || x === 2),
}));

export function variantByName(name: string): Variant {
  const v = VARIANTS.find((x) => x.name === name);
  if (!v) throw new RangeError(`unknown ConvNeXt variant '${name}' (known: ${VARIANTS.map((x) => x.name).join(', ')})`);
  return v;
}

/** The timm model name of a variant, e.g. convnextv2_atto or convnext_tiny. */
export function timmModelName(name: VariantName, version: ConvNeXtVersion): string {
  return `${version === 2 ? 'convnextv2' : 'convnext'}_${name}`;
}

/** FCMAE decoder: one block of this width after a 1x1 projection. */
export const FCMAE_DECODER_DIM = 512;
/** FCMAE mask patch in pixels: the network's total stride. */
export const FCMAE_PATCH_SIZE = 32;

/** A model to build: a variant in one version, named as timm names it. */
export interface Arch {
  /** timm's name, e.g. 'convnextv2_atto' or 'convnext_tiny'. */
  readonly name: string;
  readonly v2: boolean;
  readonly variant: VariantName;
  readonly depths: readonly number[];
  readonly dims: readonly number[];
  readonly convMlp: boolean;
}

/** Parses 'convnextv2_<variant>' (V2, atto..huge) or 'convnext_<variant>' (V1, atto..xlarge). */
export function parseArch(name: string): Arch {
  const m = /^convnext(v2)?_(\w+)$/.exec(name);
  const version: ConvNeXtVersion = m?.[1] ? 2 : 1;
  const v = VARIANTS.find((x) => x.name === m?.[2] && x.versions.includes(version));
  if (!m || !v) {
    const known = VARIANTS.flatMap((x) => x.versions.map((ver) => timmModelName(x.name, ver)));
    throw new Error(`unknown architecture '${name}'; expected one of ${known.join(', ')}`);
  }
  return { name, v2: version === 2, variant: v.name, depths: v.depths, dims: v.dims, convMlp: v.convMlp };
}

/** 'V1' or 'V2' for a timm model name. */
export const versionLabel = (name: string): 'V1' | 'V2' => (parseArch(name).v2 ? 'V2' : 'V1');
