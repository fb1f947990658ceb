// The files of a run, shared by both engines (see native-worker/torch/cnx_torch/checkpoint.py):
//   runDir/config.json                         the resolved job config
//   runDir/checkpoints/step-N.safetensors       weights: timm names (finetune) or FCMAE names (pretrain)
//   runDir/checkpoints/step-N.state.safetensors optim.<p>.{exp_avg,exp_avg_sq,step}, ema.<p>, rng.*; metadata
//                                              format cnx-state/1 and meta JSON {step, microBatches, kind,
//                                              arch, batchSize, seed, bestTop1, weights}
//   runDir/checkpoints/last.json, best.json    pointers {step, weights, state[, top1]}, replaced atomically
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint/load.ts';
import { readSafetensors } from '../checkpoint/safetensors.ts';
import { type Tensor, CheckpointError, makeTensor } from '../checkpoint/tensor.ts';

export const WEIGHTS_FORMAT = 'cnx-weights/1';
export const STATE_FORMAT = 'cnx-state/1';

export interface StateMeta {
  step: number;
  microBatches: number;
  kind: string;
  arch: string;
  batchSize: number;
  seed: number;
  bestTop1: number | null;
  weights: string;
}

export const weightsName = (step: number) => `step-${step}.safetensors`;
export const stateName = (step: number) => `step-${step}.state.safetensors`;

export function writeJsonAtomic(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.tmp-${basename(path)}-${process.pid}`);
  writeFileSync(tmp, JSON.stringify(value));
  renameSync(tmp, path);
}

/** Writes weights + state for `meta.step` and points last.json at them; returns both paths. */
export async function saveRunCheckpoint(
  folder: string,
  weights: ReadonlyMap<string, Tensor>,
  weightsMetadata: Record<string, string>,
  state: ReadonlyMap<string, Tensor>,
  meta: Omit<StateMeta, 'weights'>,
): Promise<{ path: string; statePath: string }> {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, weightsName(meta.step));
  const statePath = join(folder, stateName(meta.step));
  await saveCheckpoint(path, new Map(weights), { format: WEIGHTS_FORMAT, ...weightsMetadata, step: String(meta.step) });
  await saveCheckpoint(statePath, new Map(state), { format: STATE_FORMAT, meta: JSON.stringify({ ...meta, weights: basename(path) }) });
  writeJsonAtomic(join(folder, 'last.json'), { step: meta.step, weights: basename(path), state: basename(statePath) });
  return { path, statePath };
}

/** The ONNX engine's RNG state (xoshiro128**, four u32) as a state tensor and back. */
export const rngTensor = (s: Uint32Array): Tensor => makeTensor([s.length], BigInt64Array.from(s, (v) => BigInt(v)));

// Trainer state keys and state-file keys, both ways (cnx_torch/checkpoint.py writes the same file keys):
//   <param>.exp_avg, <param>.exp_avg_sq  <->  optim.<param>.exp_avg, optim.<param>.exp_avg_sq
//   <param>.ema                          <->  ema.<param>
const TRAINER_KEY = /^(.+)\.(exp_avg|exp_avg_sq|ema)$/;
const FILE_KEY = /^optim\.(.+)\.(exp_avg|exp_avg_sq)$|^ema\.(.+)$/;

/** The trainer's state as state-file tensors, with each parameter's step count and the RNG state. */
export function stateToFile(state: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>, params: readonly { name: string }[], step: number, rng: Uint32Array): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of state) {
    const [, param, key] = TRAINER_KEY.exec(k)!;
    out.set(key === 'ema' ? `ema.${param}` : `optim.${param}.${key}`, makeTensor([...shapes.get(param!)!], v));
  }
  for (const p of params) out.set(`optim.${p.name}.step`, makeTensor([], Float32Array.of(step)));
  out.set('rng.onnx', rngTensor(rng));
  return out;
}

/** A state file's tensors as the trainer's state (step counts and RNG states are read elsewhere). */
export function stateFromFile(tensors: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, v] of tensors) {
    const m = FILE_KEY.exec(k);
    if (m) out.set(m[3] !== undefined ? `${m[3]}.ema` : `${m[1]}.${m[2]}`, v);
  }
  return out;
}

/** Weights and state files named by a pointer (last.json/best.json), a step-N.state file or a step-N file. */
export function resolveResume(path: string): { weights: string; state: string } {
  const folder = dirname(path);
  if (path.endsWith('.json')) {
    let p: { weights?: unknown; state?: unknown };
    try {
      p = JSON.parse(readFileSync(path, 'utf8')) as typeof p;
    } catch (e) {
      throw new CheckpointError(`${path}: not a readable checkpoint pointer (${(e as Error).message})`);
    }
    if (typeof p.weights !== 'string' || typeof p.state !== 'string') throw new CheckpointError(`${path}: pointer lacks weights/state`);
    return { weights: join(folder, p.weights), state: join(folder, p.state) };
  }
  if (path.endsWith('.state.safetensors')) return { weights: path.replace(/\.state\.safetensors$/, '.safetensors'), state: path };
  if (path.endsWith('.safetensors')) return { weights: path, state: path.replace(/\.safetensors$/, '.state.safetensors') };
  throw new CheckpointError(`${path}: resume expects last.json, step-N.safetensors or step-N.state.safetensors`);
}

/** A state file's float32 tensors, the ONNX engine's RNG state if present, and the meta. */
export async function readRunState(path: string): Promise<{ tensors: Map<string, Float32Array>; rng: Uint32Array | null; meta: StateMeta }> {
  const f = await readSafetensors(path);
  if (f.metadata.format !== STATE_FORMAT) throw new CheckpointError(`${path}: not a training state file (format ${f.metadata.format ?? 'missing'})`);
  let meta: StateMeta;
  try {
    meta = JSON.parse(f.metadata.meta ?? '') as StateMeta;
  } catch (e) {
    throw new CheckpointError(`${path}: unreadable state metadata (${(e as Error).message})`);
  }
  const tensors = new Map<string, Float32Array>();
  let rng: Uint32Array | null = null;
  for (const [k, lazy] of f.tensors) {
    const t = lazy.read();
    // The PyTorch engine's RNG states (rng.cpu, rng.cuda) mean nothing here and are skipped.
    if (k === 'rng.onnx' && t.dtype === 'int64') rng = Uint32Array.from(t.data, Number);
    else if (t.dtype === 'float32') tensors.set(k, t.data);
  }
  return { tensors, rng, meta };
}

/** Weights of a run checkpoint or any importable checkpoint, canonical, as float32 arrays. */
export async function readWeights(path: string): Promise<Map<string, Float32Array>> {
  const c = await loadCheckpoint(path);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of c.tensors) if (t.dtype === 'float32') out.set(k, t.data);
  return out;
}
