// The options of `cnx pretrain|finetune|eval` and the resolver request they make (common/resolve-job.ts;
// the Train form builds the same request from its fields), with the checks that refuse a run that would
// start but not as asked.
import { resolve } from 'node:path';
import type { JobConfigInput } from '../../common/job.ts';
import type { AugmentOverrides, JobRequest, RecipeOverrides } from '../../common/resolve-job.ts';
import { CliError } from './command.ts';
import { PYTHON_RULE } from './torch-reference.ts';

export type Kind = 'pretrain' | 'finetune' | 'eval';

const COMMON = `data (one of):
  --dataset NAME        a dataset in the workspace catalog (its manifest is frozen into the run folder)
  --manifest FILE       a manifest file (cnx dataset export-manifest)
model and run:
  --arch A              convnextv2_atto ... convnextv2_huge, convnext_atto ... convnext_xlarge (default convnextv2_atto)
  --size PX             input size, a multiple of 32 (default 224)
  --batch N             batch size (default 32)
  --engine E            onnx | torch | auto (default auto: torch when a Python with torch and a GPU is found)
  --device D            auto | cpu | cuda | mps (default auto)
  --devices 0,1         train on these GPUs, one process each (data-parallel, PyTorch engine)
  --gpus N              train on N GPUs (any free ones)
  --nproc N             processes per node (data-parallel on CPUs with gloo); --batch is the global batch
  --run-dir DIR         where checkpoints and events go (default <workspace>/runs/<kind>-<time>)
  --workspace DIR       workspace folder (default $CNX_WORKSPACE, else the app-data folder)
  --json                print the events as JSON lines on stdout
  --python PATH         the PyTorch engine's interpreter (${PYTHON_RULE})`;

const TRAINING = `training:
  --steps N | --epochs N  length of the run (one of them is required)
  --recipe R              auto | paper | short (default auto: the short-run recipe when a fine-tune is
                          under a tenth of the paper's schedule for the model, else the paper's)
  --lr X                  peak learning rate (default: the recipe's base lr x batch / 256)
  --warmup-steps N        (default: recipe warmup epochs, capped at a tenth of the run)
  --weight-decay X, --clip-grad X, --ema X, --seed N, --workers N
  --checkpoint-every N    steps between checkpoints (default: 10 per run)
  --init FILE             start from these weights (timm/official/FCMAE checkpoint)
  --resume FILE           continue a run from its last.json or a step-N checkpoint`;

const AUGMENT = `augmentation (both engines; default: the recipe's, docs/augmentation.md):
  --scale LO,HI           RandomResizedCrop area range (paper 0.08,1; short recipe 0.35,1; pretrain 0.2,1)
  --ratio LO,HI           RandomResizedCrop aspect range (default 0.75,1.333)
  --pad-crop N            pad N black pixels and crop at random instead of RandomResizedCrop (small images)
  --hflip P               horizontal flip probability (default 0.5)
  --aa POLICY|none        RandAugment as timm writes it (paper rand-m9-mstd0.5-inc1; short recipe and pretrain none)
  --reprob P, --remode pixel|rand|const, --recount N   random erasing (paper 0.25, pixel, 1; short recipe and pretrain 0)`;

const FINETUNE_ONLY = `  --eval-every N          steps between evaluations (and one at the end) on the eval split
  --eval-split val|test   the split evaluations use (default val; the dataset must have it)
  --label-smoothing X, --mixup X, --cutmix X, --drop-path X, --layer-decay X, --head-init-scale X`;

export const HELP: Record<Kind, string> = {
  pretrain: `usage: cnx pretrain [options]\n\nFCMAE self-supervised pretraining (mask ratio 0.6, norm-pix loss).\n${COMMON}\n${TRAINING}\n  --mask-ratio X          (default 0.6)\n${AUGMENT}`,
  finetune: `usage: cnx finetune [options]\n\nSupervised fine-tuning with the recipe that fits the run (see --recipe).\n${COMMON}\n${TRAINING}\n${FINETUNE_ONLY}\n${AUGMENT}`,
  eval: `usage: cnx eval --weights FILE [options]\n\nTop-1/top-5, per-class accuracy and the confusion matrix on the val (or --split test) split.\n${COMMON}\n  --weights FILE          the classifier to evaluate\n  --split val|test`,
};

export const OPTIONS = {
  dataset: { type: 'string' }, manifest: { type: 'string' }, arch: { type: 'string', default: 'convnextv2_atto' },
  size: { type: 'string', default: '224' }, batch: { type: 'string', default: '32' }, engine: { type: 'string', default: 'auto' },
  device: { type: 'string', default: 'auto' }, devices: { type: 'string' }, gpus: { type: 'string' }, nproc: { type: 'string' },
  'run-dir': { type: 'string' }, workspace: { type: 'string' }, json: { type: 'boolean' },
  python: { type: 'string' }, steps: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, 'warmup-steps': { type: 'string' },
  'weight-decay': { type: 'string' }, 'clip-grad': { type: 'string' }, ema: { type: 'string' }, seed: { type: 'string', default: '0' },
  workers: { type: 'string' }, 'checkpoint-every': { type: 'string' }, init: { type: 'string' }, resume: { type: 'string' },
  'mask-ratio': { type: 'string' }, 'eval-every': { type: 'string' }, 'label-smoothing': { type: 'string' }, mixup: { type: 'string' },
  cutmix: { type: 'string' }, 'drop-path': { type: 'string' }, 'layer-decay': { type: 'string' }, 'head-init-scale': { type: 'string' },
  weights: { type: 'string' }, split: { type: 'string', default: 'val' }, 'eval-split': { type: 'string' }, threads: { type: 'string', default: '0' },
  recipe: { type: 'string', default: 'auto' },
  scale: { type: 'string' }, ratio: { type: 'string' }, 'pad-crop': { type: 'string' }, hflip: { type: 'string' }, aa: { type: 'string' },
  reprob: { type: 'string' }, remode: { type: 'string' }, recount: { type: 'string' },
} as const;

export type TrainValues = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** What the manifest tells the resolver: classes and images per split. */
export interface ManifestFacts {
  classes: number;
  splits: Record<'train' | 'val' | 'test', number>;
}

/** Options that set a recipe value, the value they set, and the kinds they apply to. */
const NUMERIC_OVERRIDES: readonly [keyof TrainValues, keyof RecipeOverrides, readonly Kind[]][] = [
  ['lr', 'lr', ['pretrain', 'finetune']], ['warmup-steps', 'warmupSteps', ['pretrain', 'finetune']], ['weight-decay', 'weightDecay', ['pretrain', 'finetune']],
  ['clip-grad', 'clipGrad', ['pretrain', 'finetune']], ['ema', 'emaDecay', ['pretrain', 'finetune']], ['checkpoint-every', 'checkpointEvery', ['pretrain', 'finetune']],
  ['mask-ratio', 'maskRatio', ['pretrain']], ['eval-every', 'evalEvery', ['finetune']], ['label-smoothing', 'labelSmoothing', ['finetune']],
  ['mixup', 'mixup', ['finetune']], ['cutmix', 'cutmix', ['finetune']], ['drop-path', 'dropPath', ['finetune']], ['layer-decay', 'layerDecay', ['finetune']],
  ['head-init-scale', 'headInitScale', ['finetune']],
];

const numberOf = (v: TrainValues, k: keyof TrainValues): number | undefined => {
  const s = v[k];
  if (s === undefined) return undefined;
  const x = Number(s);
  if (typeof s !== 'string' || !Number.isFinite(x)) throw new CliError(`--${k} must be a number, got '${String(s)}'`);
  return x;
};

/** data.augment values given on the command line; the rest is the recipe's. */
export function augmentOptions(v: TrainValues): AugmentOverrides {
  const pair = (k: 'scale' | 'ratio'): [number, number] | undefined => {
    const s = v[k];
    if (s === undefined) return undefined;
    const parts = s.split(',').map(Number);
    if (parts.length !== 2 || !parts.every(Number.isFinite)) throw new CliError(`--${k} must be two numbers LO,HI, got '${s}'`);
    return [parts[0]!, parts[1]!];
  };
  const a: AugmentOverrides = {};
  const scale = pair('scale');
  const ratio = pair('ratio');
  if (scale) a.scale = scale;
  if (ratio) a.ratio = ratio;
  if (v['pad-crop'] !== undefined) a.padCrop = numberOf(v, 'pad-crop')!;
  if (v.hflip !== undefined) a.hflip = numberOf(v, 'hflip')!;
  if (v.aa !== undefined) a.randAugment = v.aa === 'none' ? null : v.aa;
  if (v.reprob !== undefined) a.reprob = numberOf(v, 'reprob')!;
  if (v.remode !== undefined) a.remode = v.remode as AugmentOverrides['remode'] & string;
  if (v.recount !== undefined) a.recount = numberOf(v, 'recount')!;
  return a;
}

/** `--devices 0,1` (GPU indices) or `--gpus N` (a count) and `--nproc N` as job config fields. */
export function parallelOptions(v: TrainValues): Pick<JobConfigInput, 'devices' | 'nproc'> {
  if (v.devices && v.gpus) throw new CliError('give --devices 0,1 or --gpus N, not both');
  const ints = (s: string, what: string) => s.split(',').map((x) => {
    if (!/^\d+$/.test(x.trim())) throw new CliError(`${what} must be ${what === '--gpus' ? 'a count' : 'GPU indices like 0,1'}, got '${s}'`);
    return Number(x);
  });
  const nproc = numberOf(v, 'nproc');
  return {
    ...(v.devices ? { devices: ints(v.devices, '--devices') } : v.gpus ? { devices: ints(v.gpus, '--gpus')[0]! } : {}),
    ...(nproc !== undefined ? { nproc } : {}),
  };
}

/** The resolver's request for the options given (the Train form builds the same request from its fields). */
export function cliJobRequest(kind: Kind, v: TrainValues, facts: ManifestFacts, paths: { runDir: string; manifest: string }): JobRequest {
  const num = (k: keyof TrainValues) => numberOf(v, k);
  const recipe = v.recipe ?? 'auto';
  if (recipe !== 'auto' && recipe !== 'paper' && recipe !== 'short') throw new CliError(`--recipe must be auto, paper or short, got '${recipe}'`);
  const evalSplit = (kind === 'eval' ? v.split : (v['eval-split'] ?? v.split ?? 'val')) ?? 'val';
  if (evalSplit !== 'val' && evalSplit !== 'test') throw new CliError(`--${kind === 'eval' ? 'split' : 'eval-split'} must be val or test, got '${evalSplit}'`);
  const steps = num('steps');
  const epochs = num('epochs');
  const overrides: RecipeOverrides = {};
  for (const [option, key, kinds] of NUMERIC_OVERRIDES) {
    const x = num(option);
    if (x !== undefined && kinds.includes(kind)) (overrides as Record<string, number>)[key] = x;
  }
  if (kind !== 'eval') overrides.augment = augmentOptions(v);
  return {
    kind, arch: v.arch ?? 'convnextv2_atto', inputSize: num('size') ?? 224, batchSize: num('batch') ?? 32, numClasses: facts.classes,
    trainImages: facts.splits.train, length: steps !== undefined ? { unit: 'steps', value: steps } : { unit: 'epochs', value: epochs ?? 0 },
    recipe, overrides, runDir: paths.runDir, manifest: paths.manifest, seed: num('seed') ?? 0, ...(v.workers ? { workers: num('workers')! } : {}),
    evalSplit, device: (v.device ?? 'auto') as JobRequest['device'],
    initWeights: kind === 'eval' ? (v.weights ? resolve(v.weights) : null) : v.init ? resolve(v.init) : null, resume: v.resume ? resolve(v.resume) : null,
  };
}

/** Refuses what would run but not as asked: no run length, no weights to evaluate, evaluations of a split that is empty. */
export function checkRequest(kind: Kind, v: TrainValues, facts: ManifestFacts, dataset: string | undefined): void {
  if (kind === 'eval' && !v.weights) throw new CliError(`missing --weights\n\n${HELP.eval}`);
  if (kind !== 'eval' && v.steps === undefined && v.epochs === undefined) throw new CliError(`give the run length with --steps or --epochs\n\n${HELP[kind]}`);
  const split = kind === 'eval' ? (v.split ?? 'val') : (v['eval-split'] ?? v.split ?? 'val');
  if (kind === 'finetune' && v['eval-every'] !== undefined && !facts.splits[split as 'val' | 'test']) {
    const name = dataset ?? 'NAME';
    const other = split === 'val' && facts.splits.test ? ', or evaluate on the test split with --eval-split test' : '';
    throw new CliError(`--eval-every ${v['eval-every']}: the dataset has no ${split} images to evaluate on. Split some off with \`cnx dataset split ${name} --val 0.1\`${other}`);
  }
}
