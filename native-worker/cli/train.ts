// `cnx pretrain`, `cnx finetune`, `cnx eval`: a job config from options and the paper's recipes, run on
// the chosen engine (ONNX in this process, or the PyTorch engine as a child), with progress on stderr.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type JobConfigInput, parseJobConfig } from '../../common/job.ts';
import { type JobRequest, type RecipeOverrides, resolveJob } from '../../common/resolve-job.ts';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';
import { parseArch } from '../../common/variants.ts';
import { exportManifest, readManifest } from '../data/manifest.ts';
import { EventSink } from '../jobs/events.ts';
import { resolveWorkspace } from '../workspace.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { withCatalog } from './dataset/shared.ts';
import { createProgress } from './progress.ts';
import { runWithSignals } from './run-job.ts';

type Kind = 'pretrain' | 'finetune' | 'eval';

const COMMON = `data (one of):
  --dataset NAME        a dataset in the workspace catalog (its manifest is frozen into the run folder)
  --manifest FILE       a manifest file (cnx dataset export-manifest)
model and run:
  --arch A              convnextv2_atto ... convnextv2_huge, convnext_atto ... convnext_large (default convnextv2_atto)
  --size PX             input size, a multiple of 32 (default 224)
  --batch N             batch size (default 32)
  --engine E            onnx | torch | auto (default auto: torch when a Python with torch and a GPU is found)
  --device D            auto | cpu | cuda | mps (default auto)
  --run-dir DIR         where checkpoints and events go (default <workspace>/runs/<kind>-<time>)
  --workspace DIR       workspace folder (default $CNX_WORKSPACE, else the app-data folder)
  --json                print the events as JSON lines on stdout
  --python PATH         the PyTorch engine's interpreter (default $CNX_PYTHON, else python3)`;

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

const HELP: Record<Kind, string> = {
  pretrain: `usage: cnx pretrain [options]\n\nFCMAE self-supervised pretraining (mask ratio 0.6, norm-pix loss).\n${COMMON}\n${TRAINING}\n  --mask-ratio X          (default 0.6)`,
  finetune: `usage: cnx finetune [options]\n\nSupervised fine-tuning with the recipe that fits the run (see --recipe).\n${COMMON}\n${TRAINING}
  --eval-every N          steps between evaluations (and one at the end) on the eval split
  --eval-split val|test   the split evaluations use (default val; the dataset must have it)
  --label-smoothing X, --mixup X, --cutmix X, --drop-path X, --layer-decay X, --head-init-scale X
  --rand-augment P        timm RandAugment policy (e.g. rand-m9-mstd0.5-inc1) or none
  --reprob X              random erasing probability`,
  eval: `usage: cnx eval --weights FILE [options]\n\nTop-1/top-5, per-class accuracy and the confusion matrix on the val (or --split test) split.\n${COMMON}\n  --weights FILE          the classifier to evaluate\n  --split val|test`,
};

const OPTIONS = {
  dataset: { type: 'string' }, manifest: { type: 'string' }, arch: { type: 'string', default: 'convnextv2_atto' },
  size: { type: 'string', default: '224' }, batch: { type: 'string', default: '32' }, engine: { type: 'string', default: 'auto' },
  device: { type: 'string', default: 'auto' }, 'run-dir': { type: 'string' }, workspace: { type: 'string' }, json: { type: 'boolean' },
  python: { type: 'string' }, steps: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, 'warmup-steps': { type: 'string' },
  'weight-decay': { type: 'string' }, 'clip-grad': { type: 'string' }, ema: { type: 'string' }, seed: { type: 'string', default: '0' },
  workers: { type: 'string' }, 'checkpoint-every': { type: 'string' }, init: { type: 'string' }, resume: { type: 'string' },
  'mask-ratio': { type: 'string' }, 'eval-every': { type: 'string' }, 'label-smoothing': { type: 'string' }, mixup: { type: 'string' },
  cutmix: { type: 'string' }, 'drop-path': { type: 'string' }, 'layer-decay': { type: 'string' }, 'head-init-scale': { type: 'string' },
  weights: { type: 'string' }, split: { type: 'string', default: 'val' }, 'eval-split': { type: 'string' }, threads: { type: 'string', default: '0' },
  recipe: { type: 'string', default: 'auto' }, 'rand-augment': { type: 'string' }, reprob: { type: 'string' },
} as const;

export type TrainValues = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

const TORCH_RUNNER = join(dirname(fileURLToPath(import.meta.url)), '..', 'torch', 'run_job.py');

export const pretrainCommand = trainCommand('pretrain', 'FCMAE pretraining on a dataset');
export const finetuneCommand = trainCommand('finetune', 'supervised fine-tuning on a dataset');
export const evalCommand = trainCommand('eval', 'evaluate a classifier on a dataset split');

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
  ['head-init-scale', 'headInitScale', ['finetune']], ['reprob', 'reprob', ['finetune']],
];

/** The resolver's request for the options given (the Train form builds the same request from its fields). */
export function cliJobRequest(kind: Kind, v: TrainValues, facts: ManifestFacts, paths: { runDir: string; manifest: string }): JobRequest {
  const num = (k: keyof TrainValues): number | undefined => {
    const s = v[k];
    if (s === undefined) return undefined;
    const x = Number(s);
    if (typeof s !== 'string' || !Number.isFinite(x)) throw new CliError(`--${k} must be a number, got '${String(s)}'`);
    return x;
  };
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
  if (kind === 'finetune') {
    if (v['rand-augment'] !== undefined) overrides.randAugment = v['rand-augment'] === 'none' ? null : v['rand-augment'];
  }
  return {
    kind, arch: v.arch ?? 'convnextv2_atto', inputSize: num('size') ?? 224, batchSize: num('batch') ?? 32, numClasses: facts.classes,
    trainImages: facts.splits.train, length: steps !== undefined ? { unit: 'steps', value: steps } : { unit: 'epochs', value: epochs ?? 0 },
    recipe, overrides, runDir: paths.runDir, manifest: paths.manifest, seed: num('seed') ?? 0, ...(v.workers ? { workers: num('workers')! } : {}),
    evalSplit, device: (v.device ?? 'auto') as JobRequest['device'],
    initWeights: kind === 'eval' ? (v.weights ? resolve(v.weights) : null) : v.init ? resolve(v.init) : null, resume: v.resume ? resolve(v.resume) : null,
  };
}

/** Refuses what would run but not as asked: no run length, no weights to evaluate, evaluations of a split that is empty. */
function checkRequest(kind: Kind, v: TrainValues, facts: ManifestFacts, dataset: string | undefined): void {
  if (kind === 'eval' && !v.weights) throw new CliError(`missing --weights\n\n${HELP.eval}`);
  if (kind !== 'eval' && v.steps === undefined && v.epochs === undefined) throw new CliError(`give the run length with --steps or --epochs\n\n${HELP[kind]}`);
  const split = kind === 'eval' ? (v.split ?? 'val') : (v['eval-split'] ?? v.split ?? 'val');
  if (kind === 'finetune' && v['eval-every'] !== undefined && !facts.splits[split as 'val' | 'test']) {
    const name = dataset ?? 'NAME';
    const other = split === 'val' && facts.splits.test ? ', or evaluate on the test split with --eval-split test' : '';
    throw new CliError(`--eval-every ${v['eval-every']}: the dataset has no ${split} images to evaluate on. Split some off with \`cnx dataset split ${name} --val 0.1\`${other}`);
  }
}

function trainCommand(kind: Kind, summary: string): Command {
  return {
    summary,
    async run(args) {
      const o = parseOptions(args, OPTIONS, HELP[kind]);
      if (!o) return 0;
      const v = o.values as TrainValues;
      try {
        parseArch(v.arch!);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const workspace = resolveWorkspace(v.workspace);
      const runDir = resolve(v['run-dir'] ?? join(workspace, 'runs', `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
      mkdirSync(runDir, { recursive: true });
      const manifestPath = await manifestFor(v.dataset, v.manifest, v.workspace, runDir);
      const manifest = await readManifest(manifestPath).catch((e: Error) => {
        throw new CliError(e.message);
      });
      const splits = { train: 0, val: 0, test: 0 };
      for (const i of manifest.items) if (i.split in splits) splits[i.split as keyof typeof splits]++;
      const facts = { classes: manifest.classes.length, splits };
      checkRequest(kind, v, facts, v.dataset);
      const resolved = resolveJob(cliJobRequest(kind, v, facts, { runDir, manifest: manifestPath }));
      try {
        parseJobConfig(resolved.config);
      } catch (e) {
        throw new CliError(`invalid option: ${(e as Error).message}`);
      }
      const engine = v.engine === 'auto' ? await autoEngine(v.python) : v.engine;
      if (engine !== 'onnx' && engine !== 'torch') throw new CliError(`--engine must be onnx, torch or auto, got '${engine}'`);
      if (kind !== 'eval') process.stderr.write(`recipe: ${resolved.reason}\n`);
      return run(resolved.config, engine, v, runDir);
    },
  };
}

/** The manifest a run reads: a catalog dataset frozen into the run folder, or a given file. */
async function manifestFor(dataset: string | undefined, manifest: string | undefined, workspace: string | undefined, runDir: string): Promise<string> {
  if (!!dataset === !!manifest) throw new CliError('give the data with exactly one of --dataset NAME or --manifest FILE');
  if (manifest) {
    if (!existsSync(manifest)) throw new CliError(`${manifest}: no such manifest file`);
    return resolve(manifest);
  }
  const file = join(runDir, 'manifest.json');
  await withCatalog(workspace, (catalog) => exportManifest(catalog, dataset!, file));
  return file;
}

/** torch when a Python with torch and a CUDA/MPS device answers, else onnx. */
async function autoEngine(python: string | undefined): Promise<'onnx' | 'torch'> {
  const py = python ?? process.env.CNX_PYTHON ?? 'python3';
  const probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() or (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()) else 3)";
  return new Promise((res) => {
    const child = spawn(py, ['-c', probe], { stdio: 'ignore' });
    child.on('error', () => res('onnx'));
    child.on('exit', (code) => res(code === 0 ? 'torch' : 'onnx'));
  });
}

async function run(config: JobConfigInput, engine: 'onnx' | 'torch', v: { json?: boolean; python?: string; threads?: string }, runDir: string): Promise<number> {
  const progress = createProgress();
  let failed = false;
  let last: JobEvent | null = null;
  const show = (e: JobEvent) => {
    last = e;
    if (v.json) {
      process.stdout.write(`${JSON.stringify(e)}\n`);
      return;
    }
    if (e.type === 'progress') progress.update(`step ${e.step}/${e.totalSteps}  epoch ${e.epoch.toFixed(2)}  ${(e.imagesPerSec ?? 0).toFixed(1)} img/s`);
    else if (e.type === 'metrics' && e.values.loss !== undefined) progress.update(`step ${e.step}  loss ${e.values.loss?.toFixed(4)}  lr ${e.values.lr?.toExponential(2)}`);
    else if (e.type === 'eval') progress.done(`eval @${e.step} (${e.weights}): top-1 ${((e.top1 ?? 0) * 100).toFixed(2)}%  top-5 ${((e.top5 ?? 0) * 100).toFixed(2)}%  (${e.images} images)`);
    else if (e.type === 'checkpoint') progress.done(`checkpoint @${e.step}: ${e.path}`);
    else if (e.type === 'started') progress.done(`${e.kind} ${e.arch} on the ${e.engine} engine (${e.device}), ${(e.params / 1e6).toFixed(2)}M parameters; run folder ${runDir}`);
    else if (e.type === 'log' && e.level !== 'debug') progress.done(`${e.level}: ${e.message}`);
    else if (e.type === 'error') {
      failed = true;
      progress.done(`error: ${e.message}`);
    } else if (e.type === 'done') progress.done(`done: ${e.status}`);
  };
  const configPath = join(runDir, 'job.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  if (engine === 'onnx') {
    const lines = { write: (s: string) => (s.split('\n').filter(Boolean).forEach((l) => show(parseEventLine(l)!)), true) };
    const status = await runWithSignals(config, new EventSink(lines), Number(v.threads) || 0);
    return status === 'failed' || failed ? 1 : 0;
  }
  const python = v.python ?? process.env.CNX_PYTHON ?? 'python3';
  const child = spawn(python, [TORCH_RUNNER, configPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const forward = () => child.kill('SIGTERM');
  process.on('SIGINT', forward);
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    for (const l of parts) {
      const e = parseEventLine(l);
      if (e) show(e);
    }
  });
  const code = await new Promise<number>((res) => {
    child.on('error', (e) => {
      progress.done(`error: cannot start the PyTorch engine with ${python}: ${e.message}`);
      res(1);
    });
    child.on('exit', (c) => res(c ?? 1));
  });
  process.off('SIGINT', forward);
  if (!last || (last as JobEvent).type !== 'done') progress.done(`the PyTorch engine exited (${code}) without finishing the job`);
  return code === 0 && !failed ? 0 : 1;
}
