// `cnx reconstruct-images`: FCMAE reconstructions of chosen dataset images under a chosen mask (ratio and
// seed), by one or more checkpoints (the same masks for each, so they show training progress), as grids with a
// per-patch error heatmap and a JSON summary. The Reconstructions view runs it as a task.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Manifest, sealManifest } from '../../common/manifest.ts';
import { type ProviderChoice } from '../engine/runtime.ts';
import { Reconstructor, loadModel, noDecoderMessage } from '../jobs/inference.ts';
import { reconstructionGrid } from '../jobs/reconstruction-images.ts';
import { FCMAE_DEFAULTS, type FcmaeConfig, checkFcmae, randomMask } from '../nn/fcmae.ts';
import { Rng } from '../nn/random.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { namedCheckpoints } from './model-io.ts';
import { loadImages, manifestOf } from './dataset-images.ts';
import { createProgress } from './progress.ts';

const HELP = `usage: cnx reconstruct-images --checkpoint F [--checkpoint F2 ...] [--name N ...] (--manifest FILE | --dataset NAME)
                          --out DIR [--split val] [--images 4 | --path REL ...] [--pick-seed 0] [--size 224]
                          [--mask-ratio 0.6] [--mask-seed 0] [--no-norm-pix-loss] [--provider auto] [--workspace DIR] [--json]

FCMAE checkpoints (encoder + decoder) reconstruct the same images under the same random masks:
  reconstruction-<k>.png   a row per image: original | masked | reconstruction | reconstruction + visible | error
                           (the error heatmap: mean squared error of each removed patch, dark blue to yellow)
  reconstructions.json     the images, the mask, each checkpoint's loss and per-patch errors
Images: --path (dataset-relative, repeatable), else --images picked at random (--pick-seed) from --split.`;

const MAX_IMAGES = 16;

export const reconstructImagesCommand: Command = {
  summary: 'FCMAE reconstructions of dataset images at a chosen mask ratio and seed, across checkpoints',
  async run(args) {
    const o = parseOptions(args, {
      checkpoint: { type: 'string', multiple: true }, name: { type: 'string', multiple: true }, manifest: { type: 'string' }, dataset: { type: 'string' },
      out: { type: 'string' }, split: { type: 'string', default: 'val' }, images: { type: 'string', default: '4' }, path: { type: 'string', multiple: true },
      'pick-seed': { type: 'string', default: '0' }, size: { type: 'string', default: '224' }, 'mask-ratio': { type: 'string', default: String(FCMAE_DEFAULTS.maskRatio) },
      'mask-seed': { type: 'string', default: '0' }, 'no-norm-pix-loss': { type: 'boolean' }, provider: { type: 'string', default: 'auto' },
      workspace: { type: 'string' }, json: { type: 'boolean' },
    }, HELP);
    if (!o) return 0;
    const v = o.values;
    if (!v.out) throw new CliError(`give --out\n\n${HELP}`);
    const { checkpoints, names } = namedCheckpoints(v, HELP);
    const [count, size, ratio, maskSeed, pickSeed] = [Number(v.images), Number(v.size), Number(v['mask-ratio']), Number(v['mask-seed']), Number(v['pick-seed'])];
    if (!Number.isInteger(count) || count < 1 || count > MAX_IMAGES) throw new CliError(`--images must be 1..${MAX_IMAGES}`);
    if (!Number.isInteger(maskSeed) || maskSeed < 0 || !Number.isInteger(pickSeed) || pickSeed < 0) throw new CliError('--mask-seed and --pick-seed must be non-negative integers');
    const normPixLoss = !v['no-norm-pix-loss'];
    const out = resolve(v.out);
    mkdirSync(out, { recursive: true });
    const manifest = choose(await manifestOf(v.manifest, v.dataset, v.workspace, out), (v.path as string[] | undefined) ?? [], v.split ?? 'val', count, pickSeed);
    const n = manifest.items.length;
    const [{ images }] = (await loadImages(manifest, n, size)) as [{ images: Float32Array; rows: number }];
    const progress = createProgress();
    const results: object[] = [];
    let mask: Float32Array | null = null;
    for (const [k, file] of checkpoints.entries()) {
      progress.update(`${names[k]}: reconstructing ${n} images`, k / checkpoints.length);
      const model = await loadModel(file).catch((e: Error) => {
        throw new CliError(e.message);
      });
      const ck = model.checkpoint.arch;
      if (!ck.decoder) throw new CliError(noDecoderMessage(file));
      const c: FcmaeConfig = { ...FCMAE_DEFAULTS, arch: model.arch, inputSize: size, maskRatio: ratio, decoderDim: ck.decoderDim ?? FCMAE_DEFAULTS.decoderDim, decoderDepth: ck.decoderDepth ?? FCMAE_DEFAULTS.decoderDepth, normPixLoss };
      try {
        checkFcmae(c);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const l = (size / c.patchSize) ** 2;
      // One mask for every checkpoint: the same question asked of each.
      mask ??= randomMask(new Rng(maskSeed), n, l, ratio);
      const rec = await Reconstructor.create(c, n, v.provider as ProviderChoice);
      try {
        const r = await rec.run(model.weights, images, mask);
        const grid = `reconstruction-${k + 1}.png`;
        const errors = await reconstructionGrid({ images, n, size, pred: r.pred, mask, patch: c.patchSize, normPixLoss }, join(out, grid), n, true);
        results.push({ name: names[k], checkpoint: file, arch: model.arch.name, loss: r.loss, grid, patchErrors: errors.map((e) => Array.from(e, (x) => (Number.isNaN(x) ? null : x))) });
      } finally {
        await rec.release();
      }
    }
    progress.done();
    const summary = {
      size, maskRatio: ratio, maskSeed, patchesPerSide: size / 32,
      images: manifest.items.map((i) => ({ path: i.path, label: i.label === null ? null : (manifest.classes[i.label] ?? null) })),
      checkpoints: results,
    };
    writeFileSync(join(out, 'reconstructions.json'), JSON.stringify(summary, null, 2));
    if (v.json) console.log(JSON.stringify({ out, files: ['reconstructions.json', ...results.map((_, k) => `reconstruction-${k + 1}.png`)] }));
    else console.log(`wrote ${results.length} reconstruction grid(s) of ${n} images to ${out}`);
    return 0;
  },
};

/** The named items (in the order given), else `count` of the split picked at random by `seed`. */
function choose(m: Manifest, paths: readonly string[], split: string, count: number, seed: number): Manifest {
  let items: Manifest['items'];
  if (paths.length) {
    if (paths.length > MAX_IMAGES) throw new CliError(`at most ${MAX_IMAGES} --path`);
    const byPath = new Map(m.items.map((i) => [i.path, i]));
    items = paths.map((p) => {
      const item = byPath.get(p);
      if (!item) throw new CliError(`${p}: not an image of dataset '${m.dataset}'`);
      return item;
    });
  } else {
    const pool = m.items.filter((i) => i.split === split);
    if (!pool.length) throw new CliError(`the dataset has no ${split} images (use --split)`);
    items = new Rng(seed).shuffle([...pool]).slice(0, count);
  }
  return sealManifest({ version: 1, dataset: m.dataset, createdAt: m.createdAt, root: m.root, classes: m.classes, items: items.map((i) => ({ ...i, split: 'val' as const })) });
}
