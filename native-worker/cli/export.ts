// `cnx export`: a checkpoint as a standalone ONNX inference model (+ metadata JSON), as timm/official
// safetensors, or as a Hugging Face / timm model folder (model.safetensors + config.json).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { folderConfigJson } from '../checkpoint/hf-folder.ts';
import { saveCheckpoint } from '../checkpoint/load.ts';
import { toOfficial } from '../checkpoint/layout.ts';
import { EXPORT_OPSETS } from '../engine/onnx.ts';
import { type LoadedModel, type OnnxExportOptions, exportOnnx, loadModel } from '../jobs/inference.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { required, writeJson } from './model-io.ts';

const HELP = `usage: cnx export [--arch A] --weights W --output model.onnx|model.safetensors|DIR [--format onnx|timm|official|hf]
                  [--size 224] [--labels labels.txt|a,b,c] [--crop-pct 0.875] [--batch dynamic|N] [--fp16-weights] [--opset 20]

onnx: a standalone inference model (input 'image' float32 (N, 3, size, size), outputs 'logits' and 'features')
with <output>.json beside it: labels, input size, resize/crop and mean/std. --batch N fixes the batch size
(default: any); --fp16-weights stores the weights as float16 (half the file; computed in float32); --opset picks
the ONNX opset (${EXPORT_OPSETS.join(', ')}). timm/official: safetensors.
hf: a folder timm.create_model('local-dir:DIR', pretrained=True) loads (or one to upload to the Hugging Face
hub): model.safetensors (timm names) and config.json (architecture, num_classes, label_names, input size,
crop, mean/std). Labels and preprocessing of a model folder given as --weights are kept unless overridden.
--arch (e.g. convnextv2_atto) is read from the checkpoint when left out; given, it must match.`;

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

export const exportCommand: Command = {
  summary: 'export a checkpoint to ONNX (+ metadata) or timm/official safetensors',
  async run(args) {
    const o = parseOptions(args, {
      arch: { type: 'string' }, weights: { type: 'string' }, output: { type: 'string' }, format: { type: 'string' },
      size: { type: 'string', default: '224' }, labels: { type: 'string' }, 'crop-pct': { type: 'string', default: '0.875' },
      batch: { type: 'string', default: 'dynamic' }, 'fp16-weights': { type: 'boolean' }, opset: { type: 'string', default: '20' },
    }, HELP);
    if (!o) return 0;
    const v = o.values;
    required(v, ['weights', 'output'], HELP);
    const format = v.format ?? (v.output!.endsWith('.onnx') ? 'onnx' : 'timm');
    const model = await loadModel(v.weights!, v.arch).catch((e: Error) => {
      throw new CliError(e.message);
    });
    if (format === 'timm' || format === 'official') {
      // An FCMAE checkpoint exports its encoder: the weights a fine-tuning elsewhere starts from.
      const { tensors: all, arch } = model.checkpoint;
      const encoder = arch.decoder ? new Map([...all].flatMap(([k, t]) => (k.startsWith('encoder.') ? [[k.slice('encoder.'.length), t] as const] : []))) : all;
      const encoderArch = arch.decoder ? { ...arch, decoder: false, head: false } : arch;
      const tensors = format === 'timm' ? encoder : toOfficial(encoder, encoderArch);
      await saveCheckpoint(v.output!, tensors, { arch: model.arch.name, layout: format, source: basename(v.weights!), ...(arch.decoder ? { content: 'FCMAE encoder' } : {}) });
      return 0;
    }
    if (format === 'hf') {
      await writeModelFolder(model, v.output!, { size: Number(v.size), labels: v.labels, cropPct: Number(v['crop-pct']), sizeGiven: args.includes('--size') });
      return 0;
    }
    if (format !== 'onnx') throw new CliError(`--format must be onnx, timm, official or hf, got '${format}'`);
    const size = Number(v.size);
    if (!Number.isInteger(size) || size < 32 || size % 32) throw new CliError(`--size must be a multiple of 32, got '${v.size}'`);
    // A timm folder's own class names, unless --labels says otherwise.
    const labels = !v.labels && model.checkpoint.folder?.labels ? [...model.checkpoint.folder.labels] : readLabels(v.labels, model.numClasses);
    const cropPct = Number(v['crop-pct']);
    const onnx = onnxOptions(v.batch!, !!v['fp16-weights'], v.opset!);
    const meta = {
      arch: model.arch.name, numClasses: model.numClasses, labels, inputSize: size,
      resize: Math.round(size / cropPct), cropPct, interpolation: 'bicubic', ...IMAGENET,
      inputs: { image: 'float32 (N, 3, H, W), RGB, scaled to [0,1] then normalized with mean/std' },
      outputs: { logits: `float32 (N, ${model.numClasses})`, features: 'float32 (N, C): pooled, normed pre-logits' },
      batch: onnx.batch, weights: onnx.weights, opset: onnx.opset,
    };
    const bytes = exportOnnx(model, size, { labels: JSON.stringify(labels), input_size: String(size), mean: JSON.stringify(IMAGENET.mean), std: JSON.stringify(IMAGENET.std) }, onnx);
    const tmp = `${v.output}.tmp-${process.pid}`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, v.output!);
    writeJson(join(dirname(v.output!), `${basename(v.output!)}.json`), meta);
    return 0;
  },
};

function onnxOptions(batch: string, fp16: boolean, opset: string): OnnxExportOptions {
  const n = Number(batch);
  if (batch !== 'dynamic' && !(Number.isInteger(n) && n >= 1)) throw new CliError(`--batch must be 'dynamic' or a positive integer, got '${batch}'`);
  if (!(EXPORT_OPSETS as readonly number[]).includes(Number(opset))) throw new CliError(`--opset must be one of ${EXPORT_OPSETS.join(', ')}, got '${opset}'`);
  return { batch: batch === 'dynamic' ? 'dynamic' : n, weights: fp16 ? 'float16' : 'float32', opset: Number(opset) };
}

/** A timm model folder: the classifier under timm names and timm's config.json. */
async function writeModelFolder(model: LoadedModel, dir: string, o: { size: number; labels: string | undefined; cropPct: number; sizeGiven: boolean }): Promise<void> {
  const { tensors, arch, folder } = model.checkpoint;
  if (!arch.head || arch.decoder) throw new CliError(`${model.file}: a model folder holds a classifier (timm loads its head); this checkpoint has none: export it as --format timm, or fine-tune it first`);
  const labels = o.labels ? readLabels(o.labels, model.numClasses) : (folder?.labels ?? null);
  mkdirSync(dir, { recursive: true });
  await saveCheckpoint(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const config = folderConfigJson({
    architecture: model.arch.name, numClasses: model.numClasses, numFeatures: tensors.get('head.norm.weight')!.shape[0]!, labels,
    inputSize: o.sizeGiven || !folder?.inputSize ? o.size : folder.inputSize, mean: folder?.mean ?? IMAGENET.mean, std: folder?.std ?? IMAGENET.std,
    cropPct: folder?.cropPct ?? o.cropPct, interpolation: folder?.interpolation ?? 'bicubic',
  });
  writeJson(join(dir, 'config.json'), config);
}

function readLabels(spec: string | undefined, k: number): string[] {
  if (!spec) return Array.from({ length: k }, (_, i) => String(i));
  // A labels file (one per line) when the spec names one, else a comma-separated list.
  const labels = spec.endsWith('.txt') && existsSync(spec) ? readLines(spec) : spec.split(',');
  if (labels.length !== k) throw new CliError(`--labels gives ${labels.length} labels for a ${k}-class head`);
  return labels;
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
  } catch (e) {
    throw new CliError(`${path}: cannot read labels (${(e as Error).message})`);
  }
}
