// `cnx pretrain`, `cnx finetune`, `cnx eval`: a job config from options and the paper's recipes, run on
// the chosen engine (ONNX in this process, or the PyTorch engine as a child), with progress on stderr.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type JobConfigInput, devicesProblem, parseJobConfig, processesPerNode } from '../../common/job.ts';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';
import { parseArch } from '../../common/variants.ts';
import { exportManifest, readManifest } from '../data/manifest.ts';
import { EventSink } from '../jobs/events.ts';
import { PRETRAIN_RECIPE, finetuneRecipe, scaledLr } from '../optim/recipes.ts';
import { resolveWorkspace } from '../workspace.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { withCatalog } from './dataset/shared.ts';
import { createProgress } from './progress.ts';
import { runWithSignals } from './run-job.ts';
import { PYTHON_RULE, torchPython } from './torch-reference.ts';

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
  --devices 0,1         train on these GPUs, one process each (data-parallel, PyTorch engine)
  --gpus N              train on N GPUs (any free ones)
  --nproc N             processes per node (data-parallel on CPUs with gloo); --batch is the global batch
  --run-dir DIR         where checkpoints and events go (default <workspace>/runs/<kind>-<time>)
  --workspace DIR       workspace folder (default $CNX_WORKSPACE, else the app-data folder)
  --json                print the events as JSON lines on stdout
  --python PATH         the PyTorch engine's interpreter (${PYTHON_RULE})`;

const TRAINING = `training:
  --steps N | --epochs N  length of the run (one of them is required)
  --lr X                  peak learning rate (default: the recipe's base lr x batch / 256)
  --warmup-steps N        (default: recipe warmup epochs, capped at a tenth of the run)
  --weight-decay X, --clip-grad X, --ema X, --seed N, --workers N
  --checkpoint-every N    steps between checkpoints (default: 10 per run)
  --init FILE             start from these weights (timm/official/FCMAE checkpoint)
  --resume FILE           continue a run from its last.json or a step-N checkpoint`;

const AUGMENT = `augmentation (both engines; default: the paper's recipe for the job kind, docs/augmentation.md):
  --scale LO,HI           RandomResizedCrop area range (default 0.08,1; pretrain 0.2,1)
  --ratio LO,HI           RandomResizedCrop aspect range (default 0.75,1.333)
  --pad-crop N            pad N black pixels and crop at random instead of RandomResizedCrop (small images)
  --hflip P               horizontal flip probability (default 0.5)
  --aa POLICY|none        RandAugment as timm writes it (default rand-m9-mstd0.5-inc1; pretrain none)
  --reprob P, --remode pixel|rand|const, --recount N   random erasing (default 0.25, pixel, 1; pretrain 0)`;

const HELP: Record<Kind, string> = {
  pretrain: `usage: cnx pretrain [options]\n\nFCMAE self-supervised pretraining (mask ratio 0.6, norm-pix loss).\n${COMMON}\n${TRAINING}\n  --mask-ratio X          (default 0.6)\n${AUGMENT}`,
  finetune: `usage: cnx finetune [options]\n\nSupervised fine-tuning with the paper's recipe for the variant.\n${COMMON}\n${TRAINING}\n  --eval-every N          steps between evaluations on the val split\n  --label-smoothing X, --mixup X, --cutmix X, --drop-path X, --layer-decay X, --head-init-scale X\n${AUGMENT}`,
  eval: `usage: cnx eval --weights FILE [options]\n\nTop-1/top-5, per-class accuracy and the confusion matrix on the val (or --split test) split.\n${COMMON}\n  --weights FILE          the classifier to evaluate\n  --split val|test`,
};

const OPTIONS = {
  dataset: { type: 'string' }, manifest: { type: 'string' }, arch: { type: 'string', default: 'convnextv2_atto' },
  size: { type: 'string', default: '224' }, batch: { type: 'string', default: '32' }, engine: { type: 'string', default: 'auto' },
  device: { type: 'string', default: 'auto' }, devices: { type: 'string' }, gpus: { type: 'string' }, nproc: { type: 'string' }, 'run-dir': { type: 'string' }, workspace: { type: 'string' }, json: { type: 'boolean' },
  python: { type: 'string' }, steps: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, 'warmup-steps': { type: 'string' },
  'weight-decay': { type: 'string' }, 'clip-grad': { type: 'string' }, ema: { type: 'string' }, seed: { type: 'string', default: '0' },
  workers: { type: 'string' }, 'checkpoint-every': { type: 'string' }, init: { type: 'string' }, resume: { type: 'string' },
  'mask-ratio': { type: 'string' }, 'eval-every': { type: 'string' }, 'label-smoothing': { type: 'string' }, mixup: { type: 'string' },
  cutmix: { type: 'string' }, 'drop-path': { type: 'string' }, 'layer-decay': { type: 'string' }, 'head-init-scale': { type: 'string' },
  weights: { type: 'string' }, split: { type: 'string', default: 'val' }, threads: { type: 'string', default: '0' },
  scale: { type: 'string' }, ratio: { type: 'string' }, 'pad-crop': { type: 'string' }, hflip: { type: 'string' }, aa: { type: 'string' },
  reprob: { type: 'string' }, remode: { type: 'string' }, recount: { type: 'string' },
} as const;

type AugmentInput = NonNullable<JobConfigInput['data']['augment']>;

/** data.augment from the command line: only what was given, the rest is the job kind's recipe. */
function augmentOptions(v: Partial<Record<keyof typeof OPTIONS, string | boolean>>, num: (k: keyof typeof OPTIONS) => number | undefined): AugmentInput {
  const pair = (k: 'scale' | 'ratio'): [number, number] | undefined => {
    const s = v[k];
    if (typeof s !== 'string') return undefined;
    const parts = s.split(',').map(Number);
    if (parts.length !== 2 || !parts.every(Number.isFinite)) throw new CliError(`--${k} must be two numbers LO,HI, got '${s}'`);
    return [parts[0]!, parts[1]!];
  };
  const a: AugmentInput = {};
  const scale = pair('scale');
  const ratio = pair('ratio');
  if (scale) a.scale = scale;
  if (ratio) a.ratio = ratio;
  if (v['pad-crop'] !== undefined) a.padCrop = num('pad-crop')!;
  if (v.hflip !== undefined) a.hflip = num('hflip')!;
  if (typeof v.aa === 'string') a.randAugment = v.aa === 'none' ? null : v.aa;
  if (v.reprob !== undefined) a.reprob = num('reprob')!;
  if (typeof v.remode === 'string') a.remode = v.remode as AugmentInput['remode'] & string;
  if (v.recount !== undefined) a.recount = num('recount')!;
  return a;
}

const TORCH_RUNNER = join(dirname(fileURLToPath(import.meta.url)), '..', 'torch', 'run_job.py');

export const pretrainCommand = trainCommand('pretrain', 'FCMAE pretraining on a dataset');
export const finetuneCommand = trainCommand('finetune', 'supervised fine-tuning on a dataset');
export const evalCommand = trainCommand('eval', 'evaluate a classifier on a dataset split');

function trainCommand(kind: Kind, summary: string): Command {
  return {
    summary,
    async run(args) {
      const o = parseOptions(args, OPTIONS, HELP[kind]);
      if (!o) return 0;
      const v = o.values;
      const num = (k: keyof typeof v, fallback?: number): number | undefined => {
        const s = v[k];
        if (s === undefined) return fallback;
        const x = Number(s);
        if (typeof s !== 'string' || !Number.isFinite(x)) throw new CliError(`--${k} must be a number, got '${String(s)}'`);
        return x;
      };
      const arch = v.arch!;
      try {
        parseArch(arch);
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
      const batch = num('batch')!;
      const trainCount = manifest.items.filter((i) => i.split === 'train').length;
      const perEpoch = Math.max(1, Math.floor(trainCount / batch));
      const recipe = finetuneRecipe(arch);
      const config: JobConfigInput = {
        version: 1, kind, runDir,
        model: {
          arch, numClasses: kind === 'pretrain' ? 0 : manifest.classes.length, inputSize: num('size')!,
          ...(kind === 'finetune' ? { dropPathRate: num('drop-path', recipe.dropPath)!, headInitScale: num('head-init-scale', recipe.headInitScale)! } : {}),
        },
        data: { manifest: manifestPath, batchSize: batch, seed: num('seed')!, evalSplit: v.split === 'test' ? 'test' : 'val', ...(v.workers ? { workers: num('workers')! } : {}), augment: augmentOptions(v, num) },
        device: v.device as 'auto',
        ...parallelOptions(v.devices, v.gpus, num('nproc')),
        ...(kind === 'pretrain' && v['mask-ratio'] ? { fcmae: { maskRatio: num('mask-ratio')! } } : {}),
        ...(v.resume ? { resume: resolve(v.resume) } : {}),
      };
      if (kind === 'eval') {
        if (!v.weights) throw new CliError(`missing --weights\n\n${HELP.eval}`);
        config.init = { weights: resolve(v.weights) };
      } else {
        const steps = num('steps') ?? (v.epochs ? Math.round(num('epochs')! * perEpoch) : undefined);
        if (!steps) throw new CliError(`give the run length with --steps or --epochs\n\n${HELP[kind]}`);
        const pre = kind === 'pretrain';
        const warmupEpochs = pre ? PRETRAIN_RECIPE.warmupEpochs : recipe.warmupEpochs;
        config.optim = {
          lr: num('lr', scaledLr(pre ? PRETRAIN_RECIPE.baseLr : recipe.baseLr, batch))!,
          totalSteps: steps,
          warmupSteps: num('warmup-steps', Math.min(Math.round(warmupEpochs * perEpoch), Math.floor(steps / 10)))!,
          weightDecay: num('weight-decay', pre ? PRETRAIN_RECIPE.weightDecay : recipe.weightDecay)!,
          betas: pre ? [...PRETRAIN_RECIPE.betas] : [0.9, 0.999],
          clipGrad: num('clip-grad') ?? null,
          emaDecay: num('ema') ?? null,
          ...(pre ? {} : { labelSmoothing: num('label-smoothing', recipe.labelSmoothing)!, mixup: num('mixup', recipe.mixup)!, cutmix: num('cutmix', recipe.cutmix)!, layerDecay: num('layer-decay', recipe.layerDecay)! }),
        };
        config.checkpointEverySteps = num('checkpoint-every', Math.max(1, Math.round(steps / 10)))!;
        if (v['eval-every']) config.evalEverySteps = num('eval-every')!;
        if (v.init) config.init = { weights: resolve(v.init) };
      }
      try {
        parseJobConfig(config);
      } catch (e) {
        throw new CliError(`invalid option: ${(e as Error).message}`);
      }
      const parallel = processesPerNode(parseJobConfig(config)) > 1;
      const engine = v.engine === 'auto' ? (parallel ? 'torch' : await autoEngine(v.python)) : v.engine;
      if (engine !== 'onnx' && engine !== 'torch') throw new CliError(`--engine must be onnx, torch or auto, got '${engine}'`);
      if (parallel && engine === 'onnx') throw new CliError('--devices/--gpus/--nproc above one need the PyTorch engine (--engine torch)');
      if (config.devices) {
        const problem = devicesProblem(config.devices, await cudaGpuCount(v.python));
        if (problem) throw new CliError(problem);
      }
      return run(config, engine, v, runDir);
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

/** `--devices 0,1` (GPU indices) or `--gpus N` (a count) and `--nproc N` as job config fields. */
function parallelOptions(devices: string | undefined, gpus: string | undefined, nproc: number | undefined): Pick<JobConfigInput, 'devices' | 'nproc'> {
  if (devices && gpus) throw new CliError('give --devices 0,1 or --gpus N, not both');
  const ints = (s: string, what: string) => s.split(',').map((x) => {
    if (!/^\d+$/.test(x.trim())) throw new CliError(`${what} must be ${what === '--gpus' ? 'a count' : 'GPU indices like 0,1'}, got '${s}'`);
    return Number(x);
  });
  return {
    ...(devices ? { devices: ints(devices, '--devices') } : gpus ? { devices: ints(gpus, '--gpus')[0]! } : {}),
    ...(nproc !== undefined ? { nproc } : {}),
  };
}

/** How many CUDA GPUs the PyTorch engine's Python sees (what cnx doctor lists); 0 without torch. */
async function cudaGpuCount(python: string | undefined): Promise<number> {
  const py = python ?? process.env.CNX_PYTHON ?? 'python3';
  return new Promise((res) => {
    const child = spawn(py, ['-c', 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.on('error', () => res(0));
    child.on('close', () => res(Number(out.trim()) || 0));
  });
}

/** torch when a Python with torch and a CUDA/MPS device answers, else onnx. */
async function autoEngine(python: string | undefined): Promise<'onnx' | 'torch'> {
  let py: string;
  try {
    py = torchPython(python);
  } catch {
    return 'onnx';
  }
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
  const python = torchPython(v.python);
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
