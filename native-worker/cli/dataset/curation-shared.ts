// What embed and issues share: the weights option (a file, or a run's last.json / best.json) and turning
// the curation modules' user errors into CliErrors.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CheckpointError } from '../../checkpoint/tensor.ts';
import { FitError } from '../../curation/fit.ts';
import { resolveResume } from '../../jobs/run-files.ts';
import { CliError } from '../command.ts';

export function requireWeights(value: string | undefined, help: string): string {
  if (!value) throw new CliError(`give --weights FILE\n\n${help}`);
  const file = resolve(value);
  if (!existsSync(file)) throw new CliError(`${file}: no such checkpoint file`);
  if (!file.endsWith('.json')) return file;
  try {
    return resolveResume(file).weights;
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

export async function curationErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof FitError || e instanceof CheckpointError || (e instanceof RangeError && /multiple of 32/.test(e.message))) throw new CliError(e.message);
    throw e;
  }
}
