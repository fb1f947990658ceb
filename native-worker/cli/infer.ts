// `cnx infer`: logits (and pooled features) of a classifier checkpoint for images in a .npy file.
import { writeNpy } from '../data/npy.ts';
import { infer, loadModel } from '../jobs/inference.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { readImages, required } from './model-io.ts';
import { ENGINE_HELP, viaTorch } from './torch-reference.ts';

const HELP = `usage: cnx infer --arch A --weights W --input x.npy --output logits.npy [--features f.npy] [--provider auto|cpu|cuda|webgpu]

x: float32 (N, 3, H, W), already normalized; H and W multiples of 32. W: safetensors (timm or official names)
or an official .pt/.pth. logits: float32 (N, K); features: the pooled, head-normed pre-logits (N, C).
${ENGINE_HELP}`;

export const inferCommand: Command = {
  summary: 'logits and features of a classifier for a batch of images (.npy)',
  async run(args) {
    const o = parseOptions(args, { arch: { type: 'string' }, weights: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, features: { type: 'string' }, provider: { type: 'string', default: 'auto' }, engine: { type: 'string', default: 'onnx' }, python: { type: 'string' }, device: { type: 'string' } }, HELP);
    if (!o) return 0;
    const v = o.values;
    required(v, ['arch', 'weights', 'input', 'output'], HELP);
    const x = readImages(v.input!);
    if (v.engine === 'torch') {
      viaTorch('infer', ['--arch', v.arch!, '--weights', v.weights!, '--input', v.input!], { 'logits.npy': v.output, 'features.npy': v.features }, v);
      return 0;
    }
    if (v.engine !== 'onnx') throw new CliError(`--engine must be onnx or torch, got '${v.engine}'`);
    const model = await loadModel(v.weights!, v.arch!);
    const r = await infer(model, x.data, x.shape, v.provider as 'auto');
    const n = x.shape[0]!;
    writeNpy(v.output!, { dtype: 'float32', shape: [n, r.numClasses], data: r.logits });
    if (v.features) writeNpy(v.features, { dtype: 'float32', shape: [n, r.dim], data: r.features });
    return 0;
  },
};
