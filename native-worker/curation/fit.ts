// Whether a checkpoint fits a dataset before hours go into embedding it. A checkpoint of a workbench run
// carries its run's config (runDir/config.json beside checkpoints/): a classifier fine-tuned on other
// classes than the dataset's is refused (its features separate another task's classes), as is a file
// whose architecture disagrees with its run. Other files (imports, timm, official, FCMAE encoders) are
// general feature extractors: their head, if any, is ignored.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JobConfig } from '../../common/job.ts';
import { manifestSchema } from '../../common/manifest.ts';
import type { EncoderWeights } from './embedder.ts';

export class FitError extends Error {
  override name = 'FitError';
}

export interface Fit {
  /** The run's input size when the checkpoint comes from a run, else null. */
  runSize: number | null;
  note: string;
}

export function checkFit(file: string, enc: EncoderWeights, dataset: { name: string; classes: readonly string[] }): Fit {
  const configFile = join(dirname(dirname(file)), 'config.json');
  const parsed = existsSync(configFile) ? JobConfig.safeParse(readJson(configFile)) : null;
  if (!parsed?.success) return { runSize: null, note: enc.headClasses ? `a ${enc.headClasses}-class head, ignored: its pooled features are used` : 'an encoder without a classifier head' };
  const run = parsed.data;
  if (run.model.arch !== enc.arch.name) throw new FitError(`${file} holds a ${enc.arch.name} model but its run (${configFile}) trained ${run.model.arch}: not this run's checkpoint`);
  if (run.kind === 'finetune') {
    const m = manifestSchema.safeParse(readJson(run.data.manifest));
    const classes = m.success ? m.data.classes : null;
    if (classes && !sameList(classes, dataset.classes)) {
      throw new FitError(`${file} was fine-tuned on ${classes.length} classes (${preview(classes)}), dataset '${dataset.name}' has ${dataset.classes.length} (${preview(dataset.classes)}): its features separate another task's classes; use a checkpoint fine-tuned on this dataset or a general one (FCMAE, ImageNet)`);
    }
    if (!classes && enc.headClasses !== dataset.classes.length) {
      throw new FitError(`${file} has a ${enc.headClasses}-class head and dataset '${dataset.name}' has ${dataset.classes.length} classes`);
    }
  }
  return { runSize: run.model.inputSize, note: `${run.kind} run at ${run.model.inputSize} px` };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const preview = (xs: readonly string[]) => (xs.length > 5 ? `${xs.slice(0, 5).join(', ')}, ...` : xs.join(', '));

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}
