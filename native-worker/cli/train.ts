// `cnx pretrain`, `cnx finetune`, `cnx eval`: a job config resolved from the options (train-options.ts and
// common/resolve-job.ts), run on the chosen engine (ONNX in this process, or the PyTorch engine as a child),
// with progress on stderr.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type JobConfigInput, devicesProblem, parseJobConfig, processesPerNode } from '../../common/job.ts';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';
import { resolveJob } from '../../common/resolve-job.ts';
import { parseArch } from '../../common/variants.ts';
import { exportManifest, readManifest } from '../data/manifest.ts';
import { EventSink } from '../jobs/events.ts';
import { resolveWorkspace } from '../workspace.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { withCatalog } from './dataset/shared.ts';
import { createProgress } from './progress.ts';
import { runWithSignals } from './run-job.ts';
import { torchPython } from './torch-reference.ts';
import { HELP, type Kind, type ManifestFacts, OPTIONS, type TrainValues, checkRequest, cliJobRequest, parallelOptions } from './train-options.ts';

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
      const facts = manifestFacts(manifest.classes.length, manifest.items);
      checkRequest(kind, v, facts, v.dataset);
      const resolved = resolveJob(cliJobRequest(kind, v, facts, { runDir, manifest: manifestPath }));
      const config: JobConfigInput = { ...resolved.config, ...parallelOptions(v) };
      const engine = await chooseEngine(config, v);
      if (kind !== 'eval') process.stderr.write(`recipe: ${resolved.reason}\n`);
      return run(config, engine, v, runDir);
    },
  };
}

function manifestFacts(classes: number, items: readonly { split: string }[]): ManifestFacts {
  const splits = { train: 0, val: 0, test: 0 };
  for (const i of items) if (i.split in splits) splits[i.split as keyof typeof splits]++;
  return { classes, splits };
}

/** The engine asked for (auto: torch for data-parallel runs or where a GPU answers), after checking the config. */
async function chooseEngine(config: JobConfigInput, v: TrainValues): Promise<'onnx' | 'torch'> {
  let parallel: boolean;
  try {
    parallel = processesPerNode(parseJobConfig(config)) > 1;
  } catch (e) {
    throw new CliError(`invalid option: ${(e as Error).message}`);
  }
  const engine = v.engine === 'auto' ? (parallel ? 'torch' : await autoEngine(v.python)) : v.engine;
  if (engine !== 'onnx' && engine !== 'torch') throw new CliError(`--engine must be onnx, torch or auto, got '${engine}'`);
  if (parallel && engine === 'onnx') throw new CliError('--devices/--gpus/--nproc above one need the PyTorch engine (--engine torch)');
  if (config.devices) {
    const problem = devicesProblem(config.devices, await cudaGpuCount(v.python));
    if (problem) throw new CliError(problem);
  }
  return engine;
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

/** How many CUDA GPUs the PyTorch engine's Python sees (what cnx doctor lists); 0 without torch. */
async function cudaGpuCount(python: string | undefined): Promise<number> {
  let py: string;
  try {
    py = torchPython(python);
  } catch {
    return 0;
  }
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
