// The job config (version 1) that both engines run: the ONNX engine (native-worker/jobs) and the PyTorch
// engine (native-worker/torch/cnx_torch/config.py, which validates the same fields the same way).
// Unknown fields are errors; `lr` is the peak learning rate itself.
import { z } from 'zod';
import { parseArch } from './variants.ts';

const absPath = z.string().min(1).refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p), 'must be an absolute path');
const num = (lo?: number, hi?: number) => {
  let s = z.number().finite();
  if (lo !== undefined) s = s.min(lo);
  if (hi !== undefined) s = s.max(hi);
  return s;
};
const int = (lo: number) => z.number().int().min(lo);

export const ModelConfig = z.strictObject({
  arch: z.string().refine((a) => {
    try {
      parseArch(a);
      return true;
    } catch {
      return false;
    }
  }, 'unknown architecture (e.g. convnextv2_atto, convnext_tiny)'),
  numClasses: int(0),
  dropPathRate: num(0, 1).default(0),
  headInitScale: num(0).default(1),
  inputSize: int(32).refine((s) => s % 32 === 0, 'must be a multiple of 32 (the network stride)').default(224),
});

export const FcmaeJobConfig = z.strictObject({
  maskRatio: num(0, 1).refine((r) => r < 1, 'must be below 1 (some patches must stay visible)').default(0.6),
  patchSize: z.literal(32).default(32),
  decoderDim: int(1).default(512),
  decoderDepth: int(1).default(1),
  normPixLoss: z.boolean().default(true),
});

export const DataConfig = z.strictObject({
  manifest: absPath,
  batchSize: int(1),
  workers: int(0).default(2),
  seed: int(0).default(0),
  evalSplit: z.enum(['val', 'test']).default('val'),
});

/** timm's RandAugment policy string: rand-m9-mstd0.5-inc1 (magnitude, layers n, magnitude std, prob p, ...). */
export const RANDAUGMENT_POLICY = /^rand(-(m|n|mstd|mmax|p|inc)\d+(\.\d+)?)+$/;

/** Training-image augmentation of a fine-tune beyond crop and flip (the resolver fills it from the recipe). */
export const AugmentConfig = z.strictObject({
  randAugment: z.string().regex(RANDAUGMENT_POLICY, 'must be a timm RandAugment policy such as rand-m9-mstd0.5-inc1, or null').nullable().default('rand-m9-mstd0.5-inc1'),
  reprob: num(0, 1).default(0.25),
  /** RandomResizedCrop's range of the crop's share of the image area. */
  scale: z.tuple([num(0, 1), num(0, 1)]).refine(([lo, hi]) => lo > 0 && lo <= hi, 'must be [lo, hi] with 0 < lo <= hi <= 1').default([0.08, 1]),
});

export const OptimConfig = z
  .strictObject({
    lr: z.number().finite().positive(),
    totalSteps: int(1),
    weightDecay: num(0).default(0.05),
    betas: z.tuple([num(0, 1), num(0, 1)]).refine(([a, b]) => a < 1 && b < 1, 'must be two numbers in [0, 1)').default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    layerDecay: z.number().gt(0).max(1).nullable().default(null),
    layerDecayType: z.enum(['single', 'group']).nullable().default(null),
    clipGrad: z.number().positive().nullable().default(null),
    warmupSteps: int(0).default(0),
    minLr: num(0).default(0),
    accumSteps: int(1).default(1),
    labelSmoothing: num(0, 1).default(0),
    mixup: num(0).default(0),
    cutmix: num(0).default(0),
    emaDecay: num(0, 1).nullable().default(null),
  })
  .superRefine((o, ctx) => {
    if (o.warmupSteps > o.totalSteps) ctx.addIssue({ code: 'custom', path: ['warmupSteps'], message: `exceeds totalSteps (${o.totalSteps})` });
    if (o.minLr > o.lr) ctx.addIssue({ code: 'custom', path: ['minLr'], message: `exceeds lr (${o.lr})` });
  });

export const JobConfig = z
  .strictObject({
    version: z.literal(1),
    kind: z.enum(['pretrain', 'finetune', 'eval']),
    runDir: absPath,
    model: ModelConfig,
    fcmae: FcmaeJobConfig.default(FcmaeJobConfig.parse({})),
    data: DataConfig,
    optim: OptimConfig.optional(),
    augment: AugmentConfig.default(AugmentConfig.parse({})),
    init: z.strictObject({ weights: absPath.nullable().default(null) }).default({ weights: null }),
    resume: absPath.nullable().default(null),
    device: z.enum(['auto', 'cpu', 'cuda', 'mps']).default('auto'),
    precision: z.enum(['fp32', 'bf16', 'fp16']).default('fp32'),
    channelsLast: z.boolean().default(true),
    compile: z.boolean().default(false),
    checkpointEverySteps: int(1).optional(),
    evalEverySteps: int(1).nullable().default(null),
    logEverySteps: int(1).default(1),
  })
  .superRefine((c, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const training = c.kind !== 'eval';
    if (training && !c.optim) issue(['optim'], 'is required for pretrain and finetune jobs');
    if (training && c.checkpointEverySteps === undefined) issue(['checkpointEverySteps'], 'is required for pretrain and finetune jobs');
    if (c.kind === 'eval' && !c.init.weights) issue(['init', 'weights'], 'an eval job needs the weights to evaluate');
    if (c.kind === 'eval' && c.resume) issue(['resume'], 'an eval job cannot resume');
    if (c.kind !== 'pretrain' && c.model.numClasses < 1) issue(['model', 'numClasses'], `a ${c.kind} job needs at least one class`);
    if (c.kind === 'pretrain') {
      const patches = (c.model.inputSize / 32) ** 2;
      const keep = Math.floor(patches * (1 - c.fcmae.maskRatio));
      if (keep < 1 || keep === patches) issue(['model', 'inputSize'], `FCMAE at ${c.model.inputSize} px has ${patches} patches and mask ratio ${c.fcmae.maskRatio} keeps ${keep}: the encoder must see some patches and the loss needs some removed (use 64 px or more)`);
    }
    if (c.kind === 'pretrain' && c.optim) {
      if (c.optim.layerDecay !== null) issue(['optim', 'layerDecay'], 'layer-wise lr decay applies to fine-tuning only');
      for (const k of ['mixup', 'cutmix', 'labelSmoothing'] as const) if (c.optim[k]) issue(['optim', k], 'applies to fine-tuning only');
    }
  });

export type JobConfig = z.infer<typeof JobConfig>;
export type JobConfigInput = z.input<typeof JobConfig>;

/** Parses a decoded JSON config; the error names the first bad field by its dotted path. */
export function parseJobConfig(raw: unknown): JobConfig {
  const r = JobConfig.safeParse(raw);
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  throw new JobConfigError(first.path.join('.'), first.message);
}

export class JobConfigError extends Error {
  override name = 'JobConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
}
