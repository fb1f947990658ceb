// cnx dataset embed: pooled features of every usable image with one checkpoint, stored in the workspace.
import { embedDataset } from '../../curation/dataset.ts';
import type { ProviderChoice } from '../../engine/runtime.ts';
import { resolveWorkspace } from '../../workspace.ts';
import { type Command, parseOptions } from '../command.ts';
import { createProgress } from '../progress.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, numberOption, positional, printJson, withCatalog, workspaceOption } from './shared.ts';
import { curationErrors, requireWeights } from './curation-shared.ts';

const help = `usage: cnx dataset embed <name> --weights FILE [options]

Computes the pooled features (global average of the last stage, through the head's LayerNorm when the
checkpoint has one) of every usable image on the ONNX engine and stores them as float16 in the workspace,
one set per (dataset, weights, size). Interrupted runs continue where they stopped; images whose files
changed are embedded again. Weights: any checkpoint the workbench reads (a run's, timm, official, FCMAE).
  --weights FILE    the checkpoint (a run's step-N.safetensors, or last.json / best.json)
  --size N          input size, a multiple of 32 (default: the run's size, else 224)
  --batch N         images per forward pass (default 64)
  --provider P      auto | cpu | cuda | webgpu (default auto)
  --threads N       onnxruntime CPU threads (default: one per core)
${WORKSPACE_HELP}
${JSON_HELP}`;

export const embedOptions = {
  weights: { type: 'string' }, size: { type: 'string' }, batch: { type: 'string' }, provider: { type: 'string' }, threads: { type: 'string' },
} as const;

/** The embed options as embedDataset wants them. */
export function embedSettings(v: { size?: string; batch?: string; provider?: string; threads?: string }) {
  const size = v.size === undefined ? undefined : numberOption(v.size, 'size', 224, (n) => Number.isInteger(n) && n >= 32 && n % 32 === 0);
  return {
    ...(size ? { size } : {}),
    batch: numberOption(v.batch, 'batch', 64, (n) => Number.isInteger(n) && n >= 1 && n <= 4096),
    provider: (v.provider ?? 'auto') as ProviderChoice,
    threads: numberOption(v.threads, 'threads', 0, (n) => Number.isInteger(n) && n >= 0),
  };
}

/** What embed and issues both read from their arguments: the dataset, the weights, the embedding settings. */
export function embedTarget(parsed: { values: { weights?: string; size?: string; batch?: string; provider?: string; threads?: string; workspace?: string }; positionals: string[] }, help: string) {
  const name = positional(parsed.positionals, 0, 'the dataset name', help);
  noExtraPositionals(parsed.positionals, 1, help);
  return { name, weights: requireWeights(parsed.values.weights, help), settings: embedSettings(parsed.values), workspace: resolveWorkspace(parsed.values.workspace) };
}

export const embedCommand: Command = {
  summary: 'embed every usable image with a checkpoint (stored per dataset and weights)',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption, ...embedOptions }, help);
    if (!parsed) return 0;
    const v = parsed.values;
    const { name, weights, settings, workspace } = embedTarget(parsed, help);
    const progress = createProgress();
    const r = await withCatalog(workspace, (catalog) => curationErrors(() => embedDataset(catalog, workspace, name, weights, { ...settings, progress: (line, f) => progress.update(line, f) })));
    progress.done();
    const summary = { dataset: r.meta.dataset, weights: r.meta.weights, arch: r.meta.arch, size: r.meta.size, dim: r.meta.dim, images: r.embeddings.ids.length, computed: r.computed, reused: r.reused, seconds: round(r.seconds), dir: r.dir, note: r.note };
    if (v.json) printJson(summary);
    else console.log(`${summary.images} images embedded with ${summary.arch} at ${summary.size} px (${summary.computed} computed, ${summary.reused} reused) in ${summary.seconds} s: ${summary.dir}\n(${summary.note})`);
    return 0;
  },
};

const round = (s: number) => Math.round(s * 100) / 100;
