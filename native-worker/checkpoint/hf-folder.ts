// Hugging Face / timm model folders: `config.json` (timm's fields: architecture, num_classes, label_names,
// pretrained_cfg with input_size, mean, std, crop_pct, interpolation) beside the weights, found in timm's
// order of preference (model.safetensors, then pytorch_model.bin, ...). What timm.create_model reads from
// such a folder (its 'local-dir:' and 'hf-hub:' sources) is what we write.
//
// Public API:
//   interface FolderConfig { architecture, numClasses, labels, inputSize, mean, std, cropPct, interpolation }
//   readModelFolder(dir): { weights: string; config: FolderConfig }      throws CheckpointError naming the file
//   folderConfigJson(c: FolderConfig & { numFeatures }): object         timm's config.json layout
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CheckpointError } from './tensor.ts';

export const FOLDER_WEIGHTS = ['model.safetensors', 'pytorch_model.bin', 'pytorch_model.pth', 'model.pth'] as const;

export interface FolderConfig {
  readonly architecture: string;
  readonly numClasses: number;
  /** Class names by head index; null when the config has none. */
  readonly labels: readonly string[] | null;
  readonly inputSize: number | null;
  readonly mean: readonly number[] | null;
  readonly std: readonly number[] | null;
  readonly cropPct: number | null;
  readonly interpolation: string | null;
}

const triple = z.array(z.number().finite()).length(3);
const Config = z.object({
  architecture: z.string().min(1),
  num_classes: z.number().int().min(0).optional(),
  // timm writes a list, or an {index: name} object when indices have gaps.
  label_names: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
  pretrained_cfg: z.object({
    num_classes: z.number().int().min(0).optional(),
    input_size: z.array(z.number().int().positive()).length(3).optional(),
    mean: triple.optional(),
    std: triple.optional(),
    crop_pct: z.number().positive().optional(),
    interpolation: z.string().optional(),
    label_names: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
  }).passthrough().default({}),
}).passthrough();

function labelList(names: string[] | Record<string, string> | undefined, file: string): string[] | null {
  if (!names) return null;
  if (Array.isArray(names)) return names;
  const out: string[] = [];
  for (const [k, v] of Object.entries(names)) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0) throw new CheckpointError(`${file}: label_names key '${k}' is not a class index`);
    out[i] = v;
  }
  return Array.from(out, (v, i) => v ?? String(i));
}

export function readModelFolder(dir: string): { weights: string; config: FolderConfig } {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new CheckpointError(`${dir}: a model folder needs config.json (timm's architecture, num_classes, pretrained_cfg)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = Config.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new CheckpointError(`${file}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  const c = parsed.data;
  const p = c.pretrained_cfg;
  const weights = FOLDER_WEIGHTS.map((w) => join(dir, w)).find((w) => existsSync(w));
  if (!weights) throw new CheckpointError(`${dir}: no weights file (looked for ${FOLDER_WEIGHTS.join(', ')})`);
  const numClasses = c.num_classes ?? p.num_classes ?? 0;
  const labels = labelList(c.label_names ?? p.label_names, file);
  if (labels && labels.length !== numClasses) throw new CheckpointError(`${file}: ${labels.length} label names for ${numClasses} classes`);
  return {
    weights,
    config: {
      architecture: c.architecture.split('.')[0]!, // 'convnextv2_atto.fcmae_ft_in1k' names a tag too
      numClasses, labels, inputSize: p.input_size?.[1] ?? null, mean: p.mean ?? null, std: p.std ?? null,
      cropPct: p.crop_pct ?? null, interpolation: p.interpolation ?? null,
    },
  };
}

/** timm's config.json for a ConvNeXt classifier (what save_for_hf writes and create_model reads back). */
export function folderConfigJson(c: FolderConfig & { readonly numFeatures: number }): Record<string, unknown> {
  const size = c.inputSize ?? 224;
  return {
    architecture: c.architecture,
    num_classes: c.numClasses,
    num_features: c.numFeatures,
    global_pool: 'avg',
    ...(c.labels ? { label_names: c.labels } : {}),
    pretrained_cfg: {
      input_size: [3, size, size], crop_pct: c.cropPct ?? 0.875, interpolation: c.interpolation ?? 'bicubic',
      mean: c.mean ?? [0.485, 0.456, 0.406], std: c.std ?? [0.229, 0.224, 0.225],
      num_classes: c.numClasses, first_conv: 'stem.0', classifier: 'head.fc',
    },
  };
}
