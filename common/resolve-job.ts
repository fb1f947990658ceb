// The one recipe resolver: what a user asks for (kind, model, dataset size, batch, run length, the values
// they set themselves) becomes the fully resolved job config, with every value the recipe filled in named.
// The CLI (`cnx pretrain|finetune|eval`) and the Train form both call it; the engines train from its result
// and look nothing up again.
import type { Augment } from './augment.ts';
import type { JobConfigInput } from './job.ts';
import { type AugmentRecipe, FINETUNE_BETAS, type FinetuneRecipe, PAPER_AUGMENT, PRETRAIN_RECIPE, SHORT_AUGMENT, SHORT_RECIPE, finetuneRecipe, scaledLr } from './recipes.ts';
import { parseArch } from './variants.ts';

export type AugmentOverrides = Partial<Augment>;
export type JobKind = 'pretrain' | 'finetune' | 'eval';
export type RecipeChoice = 'auto' | 'paper' | 'short';
export type RecipeName = 'pretrain' | 'paper' | 'short';

/** Values the user set; anything left undefined comes from the recipe. null for clipGrad/emaDecay: off. */
export interface RecipeOverrides {
  lr?: number;
  warmupSteps?: number;
  weightDecay?: number;
  clipGrad?: number | null;
  emaDecay?: number | null;
  layerDecay?: number;
  labelSmoothing?: number;
  mixup?: number;
  cutmix?: number;
  dropPath?: number;
  headInitScale?: number;
  maskRatio?: number;
  /** data.augment values (common/augment.ts); the recipe sets crop scale, RandAugment and erasing. */
  augment?: AugmentOverrides;
  checkpointEvery?: number;
  evalEvery?: number | null;
}

export interface JobRequest {
  kind: JobKind;
  arch: string;
  inputSize: number;
  batchSize: number;
  numClasses: number;
  /** Images one epoch trains on (labeled ones for fine-tuning). */
  trainImages: number;
  /** Run length; unused for eval jobs. */
  length: { unit: 'steps' | 'epochs'; value: number };
  recipe: RecipeChoice;
  overrides: RecipeOverrides;
  /** Passed through: where the run writes, what it reads, how it runs. */
  runDir: string;
  manifest: string;
  seed: number;
  workers?: number;
  evalSplit: 'val' | 'test';
  device: 'auto' | 'cpu' | 'cuda' | 'mps';
  initWeights: string | null;
  resume?: string | null;
}

/** Where each resolved value came from, for the form's summary and the CLI's log line. */
export type ValueSource = 'recipe' | 'user';

export interface ResolvedJob {
  config: JobConfigInput;
  recipe: RecipeName;
  /** Why this recipe, in a sentence a user can act on. */
  reason: string;
  stepsPerEpoch: number;
  steps: number;
  baseLr: number;
  /** Every value a recipe or the user set, with its origin (names as in RecipeOverrides). */
  values: Record<string, { value: number | string | null; source: ValueSource }>;
}

/** A fine-tune under a tenth of the paper's schedule for its model gets the short recipe. */
export const SHORT_RUN_FRACTION = 0.1;

function pickRecipe(r: JobRequest, epochs: number): { name: RecipeName; reason: string; recipe: FinetuneRecipe; augment: AugmentRecipe | null } {
  // Pretraining's augmentation is its job kind's default (common/augment.ts): the recipe sets none.
  if (r.kind === 'pretrain') return { name: 'pretrain', reason: 'FCMAE pretraining uses the paper\'s pretraining recipe', recipe: finetuneRecipe(r.arch), augment: null };
  const paper = finetuneRecipe(r.arch);
  const source = parseArch(r.arch).v2 ? 'the ConvNeXt V2 paper\'s fine-tuning recipe' : 'the ConvNeXt V1 paper\'s supervised recipe';
  const limit = paper.epochs * SHORT_RUN_FRACTION;
  const asPaper = { name: 'paper' as const, recipe: paper, augment: PAPER_AUGMENT };
  const asShort = { name: 'short' as const, recipe: SHORT_RECIPE, augment: SHORT_AUGMENT };
  if (r.recipe === 'paper') return { ...asPaper, reason: `${source} for ${r.arch}, as chosen` };
  if (r.recipe === 'short') return { ...asShort, reason: 'the short-run recipe, as chosen' };
  const e = Number(epochs.toPrecision(3));
  return epochs < limit
    ? { ...asShort, reason: `${e} epochs is under a tenth of ${source}'s ${paper.epochs}: its regularization would underfit, so the short-run recipe is used` }
    : { ...asPaper, reason: `${e} epochs is at least a tenth of ${source}'s ${paper.epochs}, so that recipe is used` };
}

/** The job config and its explanation for a request (the caller validates it with parseJobConfig). */
export function resolveJob(r: JobRequest): ResolvedJob {
  const pre = r.kind === 'pretrain';
  const stepsPerEpoch = Math.max(1, Math.floor(r.trainImages / Math.max(1, r.batchSize)));
  const steps = r.length.unit === 'epochs' ? Math.max(1, Math.round(r.length.value * stepsPerEpoch)) : Math.max(1, Math.round(r.length.value));
  const picked = pickRecipe(r, steps / stepsPerEpoch);
  const { recipe, augment } = picked;
  const values: ResolvedJob['values'] = {};
  const o = r.overrides;
  const take = <K extends keyof RecipeOverrides>(k: K, fallback: NonNullable<RecipeOverrides[K]> | null): NonNullable<RecipeOverrides[K]> | null => {
    const user = o[k] !== undefined;
    const value = (user ? o[k] : fallback) as NonNullable<RecipeOverrides[K]> | null;
    values[k] = { value: value as number | string | null, source: user ? 'user' : 'recipe' };
    return value;
  };
  const baseLr = pre ? PRETRAIN_RECIPE.baseLr : recipe.baseLr;
  const warmupEpochs = pre ? PRETRAIN_RECIPE.warmupEpochs : recipe.warmupEpochs;
  const config: JobConfigInput = {
    version: 1,
    kind: r.kind,
    runDir: r.runDir,
    model: { arch: r.arch, numClasses: pre ? 0 : r.numClasses, inputSize: r.inputSize },
    data: { manifest: r.manifest, batchSize: r.batchSize, seed: r.seed, evalSplit: r.evalSplit, ...(r.workers !== undefined ? { workers: r.workers } : {}) },
    device: r.device,
    init: { weights: r.initWeights },
    ...(r.resume ? { resume: r.resume } : {}),
  };
  if (r.kind === 'finetune') config.model = { ...config.model, dropPathRate: take('dropPath', recipe.dropPath)!, headInitScale: take('headInitScale', recipe.headInitScale)! };
  if (pre) config.fcmae = { maskRatio: take('maskRatio', PRETRAIN_RECIPE.maskRatio)! };
  if (r.kind === 'eval') return { config, recipe: picked.name, reason: 'evaluation trains nothing', stepsPerEpoch, steps: 0, baseLr, values: {} };
  config.optim = {
    lr: take('lr', scaledLr(baseLr, r.batchSize))!,
    totalSteps: steps,
    warmupSteps: take('warmupSteps', Math.min(Math.round(warmupEpochs * stepsPerEpoch), Math.floor(steps / 10)))!,
    weightDecay: take('weightDecay', pre ? PRETRAIN_RECIPE.weightDecay : recipe.weightDecay)!,
    betas: pre ? [...PRETRAIN_RECIPE.betas] : [...FINETUNE_BETAS],
    clipGrad: take('clipGrad', null),
    // EMA stays off unless asked for: at the paper's 0.9999 it needs ~10k steps to matter.
    emaDecay: take('emaDecay', null),
  };
  config.checkpointEverySteps = take('checkpointEvery', Math.max(1, Math.round(steps / 10)))!;
  if (!pre) {
    Object.assign(config.optim, {
      labelSmoothing: take('labelSmoothing', recipe.labelSmoothing)!,
      mixup: take('mixup', recipe.mixup)!,
      cutmix: take('cutmix', recipe.cutmix)!,
      layerDecay: take('layerDecay', recipe.layerDecay)!,
      layerDecayType: recipe.layerDecayType,
    });
    const evalEvery = take('evalEvery', null);
    if (evalEvery !== null) config.evalEverySteps = evalEvery;
  }
  config.data = { ...config.data, augment: resolveAugment(augment ?? {}, o.augment ?? {}, values) };
  return { config, recipe: picked.name, reason: picked.reason, stepsPerEpoch, steps, baseLr, values };
}

/**
 * data.augment: what the recipe sets (a fine-tune's crop scale, RandAugment and erasing) under what the user
 * set; the rest takes the job kind's defaults when the config is parsed. Each value is noted with its origin.
 */
function resolveAugment(recipe: Partial<AugmentRecipe>, user: AugmentOverrides, values: ResolvedJob['values']): AugmentOverrides {
  const out: AugmentOverrides = { ...(recipe as AugmentOverrides), ...user };
  for (const [k, v] of Object.entries(out)) {
    if (v === undefined) continue;
    values[`augment.${k}`] = { value: Array.isArray(v) ? v.join('–') : (v as number | string | null), source: k in user ? 'user' : 'recipe' };
  }
  if (out.scale) out.scale = [out.scale[0], out.scale[1]];
  return out;
}
