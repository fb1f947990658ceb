// `cnx grad`: the gradient of mean cross-entropy w.r.t. every parameter, as safetensors with timm names.
import { saveCheckpoint } from '../checkpoint/load.ts';
import { makeTensor } from '../checkpoint/tensor.ts';
import { loadModel, lossGradients } from '../jobs/inference.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { readImages, readNpyOrFail, required, writeJson } from './model-io.ts';
import { ENGINE_HELP, viaTorch } from './torch-reference.ts';

const HELP = `usage: cnx grad --arch A --weights W --input x.npy --labels y.npy --output grads.safetensors [--loss-output loss.json]

x: float32 (N, 3, H, W), normalized; y: int64 (N) class indices. Drop path off, no label smoothing.
${ENGINE_HELP}`;

export const gradCommand: Command = {
  summary: 'gradients of mean cross-entropy w.r.t. every parameter (safetensors)',
  async run(args) {
    const o = parseOptions(args, { arch: { type: 'string' }, weights: { type: 'string' }, input: { type: 'string' }, labels: { type: 'string' }, output: { type: 'string' }, 'loss-output': { type: 'string' }, provider: { type: 'string', default: 'auto' }, engine: { type: 'string', default: 'onnx' }, python: { type: 'string' }, device: { type: 'string' } }, HELP);
    if (!o) return 0;
    const v = o.values;
    required(v, ['arch', 'weights', 'input', 'labels', 'output'], HELP);
    const x = readImages(v.input!);
    const y = readNpyOrFail(v.labels!);
    if (y.dtype !== 'int64' || y.shape.length !== 1) throw new CliError(`${v.labels}: labels must be int64 shaped (N), got ${y.dtype} (${y.shape.join(', ')})`);
    if (v.engine === 'torch') {
      viaTorch('grad', ['--arch', v.arch!, '--weights', v.weights!, '--input', v.input!, '--labels', v.labels!], { 'grads.safetensors': v.output, 'loss.json': v['loss-output'] }, v);
      return 0;
    }
    if (v.engine !== 'onnx') throw new CliError(`--engine must be onnx or torch, got '${v.engine}'`);
    const model = await loadModel(v.weights!, v.arch!);
    const r = await lossGradients(model, x.data, x.shape, Array.from(y.data as BigInt64Array, Number), v.provider as 'auto');
    await saveCheckpoint(v.output!, new Map([...r.grads].map(([k, g]) => [k, makeTensor([...g.shape], g.data)])), { content: 'gradients of mean cross-entropy', arch: v.arch! });
    if (v['loss-output']) writeJson(v['loss-output'], { loss: r.loss });
    return 0;
  },
};
