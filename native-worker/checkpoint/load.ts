// Loading and saving model checkpoints: the format is read from the file's bytes, the layout and variant
// from its keys and shapes; what comes back is canonical (timm names and shapes) and validated.
//
// Public API:
//   type CheckpointFormat = 'safetensors' | 'torch'
//   interface LoadedCheckpoint { format, layout, variant, arch, tensors, metadata, notes, entries }
//   loadCheckpoint(path, options?): Promise<LoadedCheckpoint>     a file, or a timm folder (config.json + weights);
//                                                                 options.entry: 'model' | 'model_ema' | ...
//   saveCheckpoint(path, tensors, metadata?): Promise<void>       safetensors, atomic
//   sniffFormat(bytes, file): CheckpointFormat                    throws for legacy torch and unknown files
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { VariantName } from '../../common/variants.ts';
import { type FolderConfig, readModelFolder } from './hf-folder.ts';
import { type DetectOptions, type Naming, detectLayout, toCanonical } from './layout.ts';
import { parseSafetensors, writeSafetensors } from './safetensors.ts';
import { type LazyTensor, type TensorMap, CheckpointError } from './tensor.ts';
import { parseTorchZip } from './torchzip.ts';
import { type DetectedArch, expectedParams, validateParams } from './validate.ts';

export type CheckpointFormat = 'safetensors' | 'torch';

export interface LoadedCheckpoint {
  readonly format: CheckpointFormat;
  /** The naming the file used (the tensors are canonical either way). */
  readonly layout: Naming;
  readonly variant: VariantName;
  /** Variant, version, head and decoder as found; `tensors` match expectedParams(arch) exactly. */
  readonly arch: DetectedArch;
  readonly tensors: TensorMap;
  /** safetensors `__metadata__`, or a torch file's top-level scalars (epoch, args as JSON). */
  readonly metadata: Record<string, string>;
  /** What was unwrapped, ignored or missing (e.g. "no classifier head"). */
  readonly notes: readonly string[];
  /** A torch file's top-level dict keys ('model', 'optimizer', 'epoch', ...); [] for safetensors. */
  readonly entries: readonly string[];
  /** A Hugging Face / timm model folder's config.json: class names and preprocessing. */
  readonly folder?: FolderConfig;
}

const startsWith = (bytes: Uint8Array, ...sig: number[]) => sig.every((b, i) => bytes[i] === b);
// torch.save's pre-1.6 format opens with a pickled magic number (LONG1 0x1950a86a20f9469cfc6c).
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** The checkpoint format of a file from its first bytes. */
export function sniffFormat(bytes: Uint8Array, file: string): CheckpointFormat {
  if (startsWith(bytes, 0x50, 0x4b, 0x03, 0x04) || startsWith(bytes, 0x50, 0x4b, 0x05, 0x06)) return 'torch';
  const legacy = 'is in the legacy (pre-1.6) torch.save format, which is not supported; re-save it with a current PyTorch: torch.save(torch.load(f), f)';
  if (startsWith(bytes, ...LEGACY_MAGIC)) throw new CheckpointError(`${file} ${legacy}`);
  if (bytes.byteLength > 262 && new TextDecoder('latin1').decode(bytes.subarray(257, 262)) === 'ustar') throw new CheckpointError(`${file} ${legacy}`);
  if (bytes[0] === 0x80) throw new CheckpointError(`${file} is a bare pickle, not a torch.save zip archive; refusing to read it`);
  // safetensors: an 8-byte length, then the JSON header (parseSafetensors checks the length).
  if (bytes.byteLength > 8 && bytes[8] === 0x7b) return 'safetensors';
  throw new CheckpointError(`${file}: not a checkpoint (neither safetensors nor a torch.save zip archive)`);
}

export async function loadCheckpoint(path: string, options: DetectOptions = {}): Promise<LoadedCheckpoint> {
  if ((await stat(path).catch(() => null))?.isDirectory()) return loadModelFolder(path, options);
  const bytes = await readFile(path);
  const format = sniffFormat(bytes, path);
  let source: { tensors: Map<string, LazyTensor>; metadata: Record<string, string>; root?: unknown };
  if (format === 'safetensors') source = parseSafetensors(bytes, path);
  else source = parseTorchZip(bytes, path);
  const report = detectLayout(source.tensors, path, options);
  const { tensors, origins } = toCanonical(source.tensors, report, path);
  validateParams(tensors, expectedParams(report.arch), path, origins);
  const entries = 'root' in source && source.root instanceof Map ? [...source.root.keys()].filter((k): k is string => typeof k === 'string') : [];
  return { format, layout: report.naming, variant: report.arch.variant, arch: report.arch, tensors, metadata: source.metadata, notes: report.notes, entries };
}

/** A timm folder: its weights file, checked against what config.json says the model is. */
async function loadModelFolder(dir: string, options: DetectOptions): Promise<LoadedCheckpoint> {
  const { weights, config } = readModelFolder(dir);
  const c = await loadCheckpoint(weights, options);
  const found = `${c.arch.version === 2 ? 'convnextv2' : 'convnext'}_${c.variant}`;
  const file = `${dir}/config.json`;
  if (config.architecture !== found) throw new CheckpointError(`${file}: architecture '${config.architecture}', but ${basename(weights)} holds ${found}`);
  if (config.numClasses !== c.arch.numClasses) throw new CheckpointError(`${file}: num_classes ${config.numClasses}, but ${basename(weights)} has a ${c.arch.numClasses}-class head`);
  return { ...c, folder: config, notes: [...c.notes, `model folder: config.json and ${basename(weights)}`] };
}

/** Writes canonical tensors as safetensors (F32/I64, sorted, atomic). */
export async function saveCheckpoint(path: string, tensors: TensorMap, metadata: Readonly<Record<string, string>> = {}): Promise<void> {
  await writeSafetensors(path, tensors, metadata);
}
