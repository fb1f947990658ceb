// What the model commands share: reading their .npy inputs with clear errors, writing JSON outputs.
import { writeFileSync, renameSync } from 'node:fs';
import { basename } from 'node:path';
import { readNpy } from '../data/npy.ts';
import { CliError } from './command.ts';

export function readImages(path: string): { data: Float32Array; shape: number[] } {
  const a = readNpyOrFail(path);
  if (a.dtype !== 'float32') throw new CliError(`${path}: images must be float32, got ${a.dtype}`);
  if (a.shape.length !== 4 || a.shape[1] !== 3) throw new CliError(`${path}: images must be shaped (N, 3, H, W), got (${a.shape.join(', ')})`);
  return { data: a.data as Float32Array, shape: [...a.shape] };
}

export function readNpyOrFail(path: string) {
  try {
    return readNpy(path);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

export function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

export function required(values: Record<string, unknown>, names: readonly string[], help: string): void {
  const missing = names.filter((n) => values[n] === undefined);
  if (missing.length) throw new CliError(`missing ${missing.map((m) => `--${m}`).join(', ')}\n\n${help}`);
}

/** --checkpoint (one or more) and their --name labels (default: the file names without extension). */
export function namedCheckpoints(values: { checkpoint?: unknown; name?: unknown }, help: string): { checkpoints: string[]; names: string[] } {
  const checkpoints = (values.checkpoint as string[] | undefined) ?? [];
  if (!checkpoints.length) throw new CliError(`give at least one --checkpoint\n\n${help}`);
  const names = (values.name as string[] | undefined) ?? checkpoints.map((f) => basename(f).replace(/\.[^.]+$/, ''));
  if (names.length !== checkpoints.length) throw new CliError(`give one --name per --checkpoint (${checkpoints.length}), got ${names.length}`);
  return { checkpoints, names };
}
