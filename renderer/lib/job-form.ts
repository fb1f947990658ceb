// The training form's model: what the user picks (kind, V1/V2 and variant, dataset, run length, recipe
// values, where the weights start), how it resolves with the paper's recipes (common/recipes.ts, the same
// numbers as `cnx pretrain|finetune`), what is wrong with it and why, and the runs.create request it becomes.
// The job config schema of common/job.ts checks the result too, so the form cannot disagree with the service.
import type { EngineChoice, RunCreate, SystemInfo } from '../../common/api.ts';
import { type EraseMode, parseRandAugment } from '../../common/augment.ts';
import { JobConfig, type JobConfigInput } from '../../common/job.ts';
import { PRETRAIN_RECIPE, finetuneRecipe } from '../../common/recipes.ts';
import { type AugmentOverrides, type JobKind, type JobRequest, type RecipeChoice, type RecipeOverrides, type ResolvedJob, resolveJob } from '../../common/resolve-job.ts';
import { type ConvNeXtVersion, type VariantName, VARIANTS, timmModelName, variantByName } from '../../common/variants.ts';

export type TrainKind = JobKind;
export type Device = 'auto' | 'cpu' | 'cuda' | 'mps';

/** Where the weights come from: fresh, a checkpoint of one of our runs, or a file the user imports. */
export type InitSource = { source: 'scratch' } | { source: 'run'; runId: string; step: number; path: string } | { source: 'file'; path: string };

/**
 * The form's fields. Recipe values are overrides: null leaves them to the recipe the resolver picks
 * (common/resolve-job.ts, as `cnx pretrain|finetune` does), and the form shows what that resolves to.
 */
export interface TrainForm {
  kind: TrainKind;
  version: ConvNeXtVersion;
  variant: VariantName;
  dataset: string;
  name: string;
  engine: EngineChoice;
  device: Device;
  /** CUDA GPU indices to train on, one process each (data-parallel); empty: the device's default GPU. */
  gpus: number[];
  /** Processes on this machine: data-parallel on CPUs (gloo) when above one; with GPUs, one per GPU. */
  processes: number;
  inputSize: number;
  batchSize: number;
  lengthUnit: 'steps' | 'epochs';
  length: number;
  /** auto: the short-run recipe for short fine-tunes, else the paper's. */
  recipe: RecipeChoice;
  lr: number | null;
  warmupSteps: number | null;
  weightDecay: number | null;
  /** null: no clipping. */
  clipGrad: number | null;
  /** null: EMA off. */
  emaDecay: number | null;
  maskRatio: number | null;
  layerDecay: number | null;
  labelSmoothing: number | null;
  mixup: number | null;
  cutmix: number | null;
  dropPath: number | null;
  /** Training augmentation (data.augment, common/augment.ts), null for the recipe's: RandomResizedCrop's smallest area share. */
  scaleMin: number | null;
  /** Pad-crop padding in pixels instead of RandomResizedCrop; null: RandomResizedCrop (no recipe pads). */
  padCrop: number | null;
  hflip: number | null;
  /** A timm RandAugment policy, 'none', or null for the recipe's. */
  randAugment: string | null;
  reprob: number | null;
  remode: EraseMode | null;
  recount: number | null;
  checkpointEvery: number | null;
  evalEvery: number | null;
  evalSplit: 'val' | 'test';
  seed: number;
  workers: number;
  init: InitSource;
}

/** What the form needs to know about the chosen dataset (from datasets.stats). */
export interface DatasetFacts {
  name: string;
  classes: number;
  /** Usable training images, labeled or not (pretraining uses all). */
  trainImages: number;
  /** Labeled training images (fine-tuning uses only these). */
  labeledTrain: number;
  val: number;
  test: number;
}

export function archOf(f: Pick<TrainForm, 'version' | 'variant'>): string {
  return timmModelName(f.variant, f.version);
}

const AUGMENT_FIELDS = ['scaleMin', 'padCrop', 'hflip', 'randAugment', 'reprob', 'remode', 'recount'] as const;

/** The recipe fields, all back to the recipe. */
export const RECIPE_FIELDS = ['lr', 'warmupSteps', 'weightDecay', 'layerDecay', 'labelSmoothing', 'mixup', 'cutmix', 'dropPath', 'maskRatio', ...AUGMENT_FIELDS] as const;
export type RecipeField = (typeof RECIPE_FIELDS)[number];
export const recipeDefaults = (): Pick<TrainForm, RecipeField> => Object.fromEntries(RECIPE_FIELDS.map((k) => [k, null])) as Pick<TrainForm, RecipeField>;

export function defaultForm(kind: TrainKind = 'pretrain', variant: VariantName = 'atto'): TrainForm {
  // V2 where the size exists in V2 (small and xlarge are V1 only).
  const version: ConvNeXtVersion = variantByName(variant).versions.includes(2) ? 2 : 1;
  return {
    kind,
    version,
    variant,
    dataset: '',
    name: '',
    engine: 'auto',
    device: 'auto',
    gpus: [],
    processes: 1,
    inputSize: 224,
    batchSize: 32,
    lengthUnit: 'epochs',
    length: kind === 'pretrain' ? PRETRAIN_RECIPE.epochs : finetuneRecipe(timmModelName(variant, version)).epochs,
    recipe: 'auto',
    ...recipeDefaults(),
    emaDecay: null,
    clipGrad: null,
    checkpointEvery: null,
    evalEvery: null,
    evalSplit: 'val',
    seed: 0,
    workers: 2,
    init: { source: 'scratch' },
  };
}

const PLACEHOLDER_DIR = '/workspace/runs/new';

/** The resolver's request for the form (the CLI builds the same request from its options). */
export function formRequest(f: TrainForm, facts: DatasetFacts | null): JobRequest {
  const pre = f.kind === 'pretrain';
  const overrides: RecipeOverrides = { clipGrad: f.clipGrad, emaDecay: f.emaDecay };
  for (const k of ['lr', 'warmupSteps', 'weightDecay', 'layerDecay', 'labelSmoothing', 'mixup', 'cutmix', 'dropPath', 'maskRatio', 'checkpointEvery'] as const) {
    const value = f[k];
    if (value !== null) overrides[k] = value;
  }
  if (f.kind !== 'eval') overrides.augment = augmentOverrides(f);
  if (f.kind === 'finetune' && f.evalEvery !== null) overrides.evalEvery = f.evalEvery;
  return {
    kind: f.kind, arch: archOf(f), inputSize: f.inputSize, batchSize: f.batchSize, numClasses: facts?.classes ?? 0,
    trainImages: facts ? (pre ? facts.trainImages : facts.labeledTrain) : 0, length: { unit: f.lengthUnit, value: f.length },
    recipe: f.recipe, overrides, runDir: PLACEHOLDER_DIR, manifest: `${PLACEHOLDER_DIR}/manifest.json`, seed: f.seed, workers: f.workers,
    evalSplit: f.evalSplit, device: f.device, initWeights: f.init.source === 'scratch' ? null : f.init.path,
  };
}

/** The augmentation fields the user set, as data.augment values. */
function augmentOverrides(f: TrainForm): AugmentOverrides {
  const a: AugmentOverrides = {};
  if (f.scaleMin !== null) a.scale = [f.scaleMin, 1];
  if (f.padCrop !== null) a.padCrop = f.padCrop;
  if (f.hflip !== null) a.hflip = f.hflip;
  if (f.randAugment !== null) a.randAugment = ['', 'none'].includes(f.randAugment.trim()) ? null : f.randAugment.trim();
  if (f.reprob !== null) a.reprob = f.reprob;
  if (f.remode !== null) a.remode = f.remode;
  if (f.recount !== null) a.recount = f.recount;
  return a;
}

/** The numbers the form leaves to the recipe, worked out, with the recipe and why. */
export interface Resolved extends ResolvedJob {
  arch: string;
  lr: number;
  warmupSteps: number;
  checkpointEvery: number;
}

export function resolve(f: TrainForm, facts: DatasetFacts | null): Resolved {
  const r = resolveJob(formRequest(f, facts));
  const o = r.config.optim;
  return { ...r, arch: archOf(f), lr: o?.lr ?? 0, warmupSteps: o?.warmupSteps ?? 0, checkpointEvery: r.config.checkpointEverySteps ?? 1 };
}

export interface Problem {
  /** The form field it is about ('' for the form as a whole). */
  field: string;
  severity: 'error' | 'warning';
  message: string;
}

/** Job config fields (as zod reports them) to the form field that sets them. */
const CONFIG_FIELD: Record<string, string> = {
  'model.arch': 'variant',
  'model.inputSize': 'inputSize',
  'model.numClasses': 'dataset',
  'model.dropPathRate': 'dropPath',
  'data.batchSize': 'batchSize',
  'data.workers': 'workers',
  'data.seed': 'seed',
  'optim.lr': 'lr',
  'optim.totalSteps': 'length',
  'optim.warmupSteps': 'warmupSteps',
  'optim.weightDecay': 'weightDecay',
  'optim.layerDecay': 'layerDecay',
  'optim.clipGrad': 'clipGrad',
  'optim.emaDecay': 'emaDecay',
  'optim.labelSmoothing': 'labelSmoothing',
  'optim.mixup': 'mixup',
  'optim.cutmix': 'cutmix',
  'fcmae.maskRatio': 'maskRatio',
  devices: 'gpus',
  nproc: 'processes',
  'data.augment.scale': 'scaleMin',
  'data.augment.padCrop': 'padCrop',
  'data.augment.hflip': 'hflip',
  'data.augment.randAugment': 'randAugment',
  'data.augment.reprob': 'reprob',
  'data.augment.remode': 'remode',
  'data.augment.recount': 'recount',
  checkpointEverySteps: 'checkpointEvery',
  evalEverySteps: 'evalEvery',
  'init.weights': 'init',
};

/** A form field for a dotted config path (as the service's errors name them, with or without 'config.'). */
export function formFieldOf(configPath: string): string {
  const p = configPath.replace(/^config\./, '');
  return CONFIG_FIELD[p] ?? '';
}

/** The job config draft (runs.create's config) the form describes. */
export function buildConfig(f: TrainForm, facts: DatasetFacts | null): JobConfigInput {
  return {
    ...resolveJob(formRequest(f, facts)).config,
    ...(f.gpus.length ? { devices: [...f.gpus] } : {}),
    ...(f.processes > 1 && !f.gpus.length ? { nproc: f.processes } : {}),
  };
}

const finite = (v: number | null) => v === null || Number.isFinite(v);
/** An override is fine when left to the recipe (null) or a number that passes `ok`. */
const set = (v: number | null, ok: (x: number) => boolean) => v === null || (Number.isFinite(v) && ok(v));

/** Why evaluations cannot run, and the two fixes (the form offers the first as a button). */
export function noEvalSplit(facts: DatasetFacts, split: 'val' | 'test'): string {
  const other = split === 'val' && facts.test > 0 ? ', or evaluate on the test split' : '';
  return `'${facts.name}' has no ${split} images to evaluate on: split some off (cnx dataset split ${facts.name} --val 0.1)${other}`;
}

/**
 * Everything wrong with the form, each problem on the field that fixes it and saying why. Errors block the
 * start; warnings explain a choice that will run but probably not as meant.
 */
export function checkForm(f: TrainForm, facts: DatasetFacts | null, system: SystemInfo | null): Problem[] {
  const out: Problem[] = [];
  const error = (field: string, message: string) => out.push({ field, severity: 'error', message });
  const warn = (field: string, message: string) => out.push({ field, severity: 'warning', message });
  const pre = f.kind === 'pretrain';
  const variant = VARIANTS.find((v) => v.name === f.variant);
  if (!variant) error('variant', `unknown variant '${f.variant}'`);
  else if (!variant.versions.includes(f.version)) error('variant', `ConvNeXt V${f.version} has no ${f.variant} model (huge exists only in V2, small and xlarge only in V1); pick the other version or another size`);
  if (pre && f.version === 1) warn('version', 'FCMAE was designed for V2: without GRN, V1 pretrained this way suffers feature collapse (paper, Fig. 3) and fine-tunes worse');

  if (!f.dataset) error('dataset', 'choose the dataset to train on (import one under Datasets first)');
  else if (facts) {
    if (!pre && facts.classes < 1) error('dataset', `'${facts.name}' has no labels; ${f.kind === 'eval' ? 'evaluation' : 'fine-tuning'} needs class folders or a CSV with labels (FCMAE pretraining works on unlabeled images)`);
    else if (!pre && facts.classes === 1) warn('dataset', `'${facts.name}' has a single class: accuracy will be trivially 100%`);
    const usable = pre ? facts.trainImages : facts.labeledTrain;
    if (f.kind !== 'eval' && usable < f.batchSize) error('batchSize', `'${facts.name}' has ${usable} ${pre ? '' : 'labeled '}training images, fewer than one batch of ${f.batchSize}; lower the batch size or add images`);
    const evalImages = f.evalSplit === 'val' ? facts.val : facts.test;
    if (f.kind === 'eval' && evalImages === 0) error('evalSplit', `'${facts.name}' has no ${f.evalSplit} images to evaluate on; split some off under Datasets`);
    if (f.kind === 'finetune' && evalImages === 0 && f.evalEvery !== null) error('evalEvery', noEvalSplit(facts, f.evalSplit));
    else if (f.kind === 'finetune' && evalImages === 0) warn('evalSplit', `'${facts.name}' has no ${f.evalSplit} images: the run will report no accuracy or confusion matrix (split some off under Datasets)`);
  }

  if (!Number.isInteger(f.inputSize) || f.inputSize < 32 || f.inputSize % 32 !== 0) error('inputSize', 'must be a multiple of 32 (at least 32): ConvNeXt downsamples by 32 and FCMAE masks 32 px patches');
  if (!Number.isInteger(f.batchSize) || f.batchSize < 1) error('batchSize', 'must be a whole number of images, at least 1');
  if (!Number.isInteger(f.processes) || f.processes < 1) error('processes', 'must be a whole number of processes, at least 1');
  const ranks = f.gpus.length || f.processes;
  if (ranks > 1 && f.batchSize % ranks) error('batchSize', `the batch is the global batch, split over ${ranks} processes: use a multiple of ${ranks}`);
  if (f.kind !== 'eval') {
    if (!(f.length > 0) || !Number.isFinite(f.length)) error('length', `the run length must be a positive number of ${f.lengthUnit}`);
    else if (f.lengthUnit === 'steps' && !Number.isInteger(f.length)) error('length', 'steps must be a whole number');
    if (f.lr !== null && !(f.lr > 0 && Number.isFinite(f.lr))) error('lr', 'must be a positive number (leave empty for the recipe: base lr x batch / 256)');
    if (f.warmupSteps !== null && !(Number.isInteger(f.warmupSteps) && f.warmupSteps >= 0)) error('warmupSteps', 'must be a whole number of steps, 0 or more');
    if (!set(f.weightDecay, (x) => x >= 0)) error('weightDecay', 'must be 0 or more (empty: the recipe\'s)');
    if (!finite(f.clipGrad) || (f.clipGrad !== null && f.clipGrad <= 0)) error('clipGrad', 'must be a positive gradient norm, or empty for no clipping');
    if (f.emaDecay !== null && !(f.emaDecay >= 0 && f.emaDecay < 1)) error('emaDecay', 'must be in [0, 1), e.g. 0.9999; empty turns EMA off');
    if (f.checkpointEvery !== null && !(Number.isInteger(f.checkpointEvery) && f.checkpointEvery >= 1)) error('checkpointEvery', 'must be a whole number of steps, at least 1');
    augmentProblems(f, error);
  }
  if (pre && !set(f.maskRatio, (x) => x > 0 && x < 1)) error('maskRatio', 'must be between 0 and 1 (the paper masks 0.6 of the patches); some patches must stay visible');
  if (f.kind === 'finetune') {
    if (!set(f.layerDecay, (x) => x > 0 && x <= 1)) error('layerDecay', 'must be in (0, 1]; 1 turns layer-wise decay off');
    if (!set(f.labelSmoothing, (x) => x >= 0 && x < 1)) error('labelSmoothing', 'must be in [0, 1)');
    if (!set(f.mixup, (x) => x >= 0)) error('mixup', 'must be 0 (off) or a positive Beta parameter');
    if (!set(f.cutmix, (x) => x >= 0)) error('cutmix', 'must be 0 (off) or a positive Beta parameter');
    if (!set(f.dropPath, (x) => x >= 0 && x < 1)) error('dropPath', 'must be in [0, 1)');
    if (f.evalEvery !== null && !(Number.isInteger(f.evalEvery) && f.evalEvery >= 1)) error('evalEvery', 'must be a whole number of steps (empty: evaluate at the end)');
    if (f.init.source === 'scratch') warn('init', 'fine-tuning from scratch: the paper fine-tunes an FCMAE-pretrained encoder; pick a pretraining run\'s checkpoint to start from it');
  }
  if (f.kind === 'eval' && f.init.source === 'scratch') error('init', 'evaluation needs the weights of a classifier: pick a fine-tuning run\'s checkpoint or a checkpoint file');
  if (f.init.source === 'file' && !/^(\/|[A-Za-z]:[\\/]|\\\\)/.test(f.init.path)) error('init', 'give the absolute path of a .safetensors or .pt checkpoint file');
  if (f.init.source === 'run' && !f.init.path) error('init', 'pick a checkpoint of the run');

  if (system) {
    if (f.engine === 'torch' && !system.engines.torch.available) error('engine', `the PyTorch engine is not available: ${system.engines.torch.error ?? `no torch under ${system.engines.torch.interpreter}`} (set the Python path under Settings)`);
    if (f.engine === 'onnx' && !system.engines.onnx.available) error('engine', `the ONNX engine is not available${system.engines.onnx.notes.length ? `: ${system.engines.onnx.notes.join('; ')}` : ''}`);
    const cuda = system.gpus.filter((g) => g.backend === 'cuda').length;
    const missing = f.gpus.find((g) => g >= cuda);
    if (missing !== undefined) error('gpus', `GPU ${missing} is not on this machine (found ${cuda} CUDA GPU${cuda === 1 ? '' : 's'})`);
    if ((f.gpus.length > 1 || f.processes > 1) && f.engine === 'onnx') error('engine', 'a data-parallel run (several GPUs or processes) needs the PyTorch engine');
    if ((f.device === 'cuda' || f.device === 'mps') && !system.gpus.some((g) => g.backend === f.device)) error('device', `no ${f.device === 'cuda' ? 'CUDA' : 'Apple MPS'} device on this machine (found ${system.gpus.length ? system.gpus.map((g) => g.name).join(', ') : 'none'}); use auto or cpu`);
  }

  // The job config schema gets the last word: any field it refuses that the checks above missed.
  if (!out.some((p) => p.severity === 'error')) {
    const parsed = JobConfig.safeParse(buildConfig(f, facts));
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const path = issue.path.map(String).join('.');
        error(formFieldOf(path), `${path}: ${issue.message}`);
      }
    }
  }
  return out;
}

function augmentProblems(f: TrainForm, error: (field: string, message: string) => void): void {
  if (!set(f.scaleMin, (x) => x > 0 && x <= 1)) error('scaleMin', 'must be in (0, 1]: the smallest share of the image a random crop keeps (empty: the recipe\'s)');
  if (!set(f.padCrop, (x) => Number.isInteger(x) && x >= 0)) error('padCrop', 'must be a whole number of pixels, or empty for RandomResizedCrop');
  if (!set(f.hflip, (x) => x >= 0 && x <= 1)) error('hflip', 'must be a probability in [0, 1]');
  if (!set(f.reprob, (x) => x >= 0 && x <= 1)) error('reprob', 'must be a probability in [0, 1]');
  if (!set(f.recount, (x) => Number.isInteger(x) && x >= 1)) error('recount', 'must be a whole number of boxes, at least 1');
  const policy = f.randAugment?.trim() ?? '';
  try {
    if (policy && policy !== 'none') parseRandAugment(policy);
  } catch (e) {
    error('randAugment', (e as Error).message);
  }
}

/** The runs.create request for a valid form (the service re-validates and owns runDir and the manifest). */
export function buildRunCreate(f: TrainForm, facts: DatasetFacts | null): RunCreate {
  const { runDir: _runDir, resume: _resume, data, ...config } = buildConfig(f, facts);
  const { manifest: _manifest, ...dataWithoutManifest } = data;
  return {
    config: { ...config, data: dataWithoutManifest },
    dataset: f.dataset,
    engine: f.engine,
    ...(f.name.trim() ? { name: f.name.trim() } : {}),
  };
}
