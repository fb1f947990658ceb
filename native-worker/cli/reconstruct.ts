// `cnx reconstruct`: FCMAE predictions of an FCMAE checkpoint for given images and masks.
import { writeNpy } from '../data/npy.ts';
import { loadModel, noDecoderMessage, reconstruct } from '../jobs/inference.ts';
import { writeReconstructionPngs } from '../jobs/reconstruction-images.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { readImages, readNpyOrFail, required, writeJson } from './model-io.ts';

const HELP = `usage: cnx reconstruct --arch A --weights fcmae.safetensors --input x.npy --mask m.npy --output pred.npy [--loss-output loss.json] [--images DIR] [--no-norm-pix-loss]

x: float32 (N, 3, S, S), normalized, S a multiple of 32; m: (N, S/32, S/32), 1 = removed patch (float32 or int64).
pred: the raw decoder output (N, L, 32*32*3), pixel order (row, col, channel) in each patch.
DIR gets <i>-original.png, <i>-masked.png, <i>-reconstruction.png and <i>-pasted.png (visible patches kept).`;

export const reconstructCommand: Command = {
  summary: 'FCMAE reconstruction (decoder output and loss) for images and masks',
  async run(args) {
    const o = parseOptions(args, { arch: { type: 'string' }, weights: { type: 'string' }, input: { type: 'string' }, mask: { type: 'string' }, output: { type: 'string' }, 'loss-output': { type: 'string' }, 'no-norm-pix-loss': { type: 'boolean' }, images: { type: 'string' }, provider: { type: 'string', default: 'auto' } }, HELP);
    if (!o) return 0;
    const v = o.values;
    required(v, ['arch', 'weights', 'input', 'mask', 'output'], HELP);
    const x = readImages(v.input!);
    const m = readNpyOrFail(v.mask!);
    const [n, , s] = x.shape;
    const g = s! / 32;
    if (m.shape.length !== 3 || m.shape[0] !== n || m.shape[1] !== g || m.shape[2] !== g) {
      throw new CliError(`${v.mask}: mask must be shaped (${n}, ${g}, ${g}) for images (${x.shape.join(', ')}), got (${m.shape.join(', ')})`);
    }
    const mask = m.dtype === 'int64' ? Float32Array.from(m.data as BigInt64Array, Number) : (m.data as Float32Array);
    const model = await loadModel(v.weights!, v.arch!);
    if (model.kind !== 'fcmae') throw new CliError(noDecoderMessage(v.weights!));
    const r = await reconstruct(model, x.data, x.shape, mask, !v['no-norm-pix-loss'], v.provider as 'auto');
    writeNpy(v.output!, { dtype: 'float32', shape: r.predShape, data: r.pred });
    if (v['loss-output']) writeJson(v['loss-output'], { loss: r.loss });
    if (v.images) await writeReconstructionPngs({ images: x.data, n: n!, size: s!, pred: r.pred, mask, patch: r.patchSize, normPixLoss: !v['no-norm-pix-loss'] }, v.images);
    return 0;
  },
};
