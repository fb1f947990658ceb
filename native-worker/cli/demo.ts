// `cnx demo`: a short fine-tuning run on the ONNX engine with a synthetic texture task, to see the engine
// train on a fresh install (no data, no Python).
import { TEXTURE_CLASSES, textureBatch } from '../data/synthetic.ts';
import { createTrainer } from '../jobs/trainer.ts';
import { Rng } from '../nn/random.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { smoothOneHot } from '../optim/recipes.ts';

const HELP = `usage: cnx demo [--arch convnextv2_atto] [--steps 100] [--batch 16] [--size 32] [--lr 1e-3] [--threads N]

Fine-tunes a freshly initialized ConvNeXt on a synthetic four-class texture task (${TEXTURE_CLASSES.join(', ')})
with the ONNX engine on the CPU, printing loss and accuracy as it learns.`;

export const demo: Command = {
  summary: 'train a small ConvNeXt on synthetic textures (engine demo)',
  async run(args) {
    const o = parseOptions(args, {
      arch: { type: 'string', default: 'convnextv2_atto' },
      steps: { type: 'string', default: '100' },
      batch: { type: 'string', default: '16' },
      size: { type: 'string', default: '32' },
      lr: { type: 'string', default: '1e-3' },
      threads: { type: 'string', default: '0' },
    }, HELP);
    if (!o) return 0;
    const num = (k: keyof typeof o.values, min: number) => {
      const v = Number(o.values[k]);
      if (!Number.isFinite(v) || v < min) throw new CliError(`--${k} must be a number >= ${min}, got '${o.values[k]}'`);
      return v;
    };
    const [steps, batch, size, lr, threads] = [num('steps', 1), num('batch', 1), num('size', 32), num('lr', 0), num('threads', 0)];
    if (size % 32) throw new CliError(`--size must be a multiple of 32, got ${size}`);
    const k = TEXTURE_CLASSES.length;
    const t0 = performance.now();
    const trainer = await createTrainer({ kind: 'finetune', arch: o.values.arch!, batch, size, numClasses: k, seed: 0, threads, headInitScale: 0.001 });
    console.log(`built ${o.values.arch} training step (${trainer.graph.nodes.length} graph nodes) in ${Math.round(performance.now() - t0)} ms`);
    const rng = new Rng(1);
    let [lossSum, correct, seen] = [0, 0, 0];
    for (let i = 1; i <= steps; i++) {
      const b = textureBatch(rng, batch, size);
      const r = await trainer.step(lr, { image: b.image, target: smoothOneHot(b.labels, k, 0) });
      lossSum += r.loss;
      b.labels.forEach((l, j) => {
        const row = r.logits!.subarray(j * k, (j + 1) * k);
        correct += row.indexOf(Math.max(...row)) === l ? 1 : 0;
      });
      seen += batch;
      if (i % 10 === 0 || i === steps) {
        console.log(`step ${String(i).padStart(4)}  loss ${(lossSum / 10).toFixed(4)}  accuracy ${(correct / seen).toFixed(3)}  ${r.ms.toFixed(0)} ms/step`);
        [lossSum, correct, seen] = [0, 0, 0];
      }
    }
    return 0;
  },
};
