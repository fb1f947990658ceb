// The ConvNeXt variant table (REFERENCE.md) and architecture names as timm spells them.

export const VARIANTS = {
  atto: { depths: [2, 2, 6, 2], dims: [40, 80, 160, 320] },
  femto: { depths: [2, 2, 6, 2], dims: [48, 96, 192, 384] },
  pico: { depths: [2, 2, 6, 2], dims: [64, 128, 256, 512] },
  nano: { depths: [2, 2, 8, 2], dims: [80, 160, 320, 640] },
  tiny: { depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] },
  base: { depths: [3, 3, 27, 3], dims: [128, 256, 512, 1024] },
  large: { depths: [3, 3, 27, 3], dims: [192, 384, 768, 1536] },
  huge: { depths: [3, 3, 27, 3], dims: [352, 704, 1408, 2816] },
} as const satisfies Record<string, { depths: readonly number[]; dims: readonly number[] }>;

export type VariantName = keyof typeof VARIANTS;

/** Variants that timm builds with 1x1 convs for the MLP (fc weights shaped (out, in, 1, 1)). */
const CONV_MLP: ReadonlySet<VariantName> = new Set(['atto', 'femto', 'pico', 'nano']);

export interface Arch {
  /** timm's name, e.g. 'convnextv2_atto' or 'convnext_tiny'. */
  readonly name: string;
  readonly v2: boolean;
  readonly variant: VariantName;
  readonly depths: readonly number[];
  readonly dims: readonly number[];
  readonly convMlp: boolean;
}

/** Parses 'convnextv2_<variant>' (V2, atto..huge) or 'convnext_<variant>' (V1, atto..large). */
export function parseArch(name: string): Arch {
  const m = /^convnext(v2)?_(\w+)$/.exec(name);
  const variant = m?.[2] as VariantName | undefined;
  if (!m || !variant || !(variant in VARIANTS) || (!m[1] && variant === 'huge')) {
    const v2 = Object.keys(VARIANTS).map((v) => `convnextv2_${v}`);
    const v1 = Object.keys(VARIANTS).filter((v) => v !== 'huge').map((v) => `convnext_${v}`);
    throw new Error(`unknown architecture '${name}'; expected one of ${[...v2, ...v1].join(', ')}`);
  }
  const { depths, dims } = VARIANTS[variant];
  return { name, v2: !!m[1], variant, depths, dims, convMlp: CONV_MLP.has(variant) };
}
