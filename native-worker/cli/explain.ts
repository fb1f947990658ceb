// `cnx explain`: top-5 classes and a Grad-CAM overlay of images (files, or picked from a dataset) by one or
// more classifier checkpoints, computed by the ONNX engine's autodiff. Per image a JSON and one overlay PNG a model.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { prepareImage } from '../analysis/explain-image.ts';
import { ExplainerCache, type ExplainModel, explainWith } from '../analysis/explain.ts';
import type { ProviderChoice } from '../engine/runtime.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { serveExplain } from './explain-serve.ts';
import { manifestOf, pickImages } from './dataset-images.ts';

const HELP = `usage: cnx explain --weights W [--weights W2 ...] --images a.jpg [b.png ...] --out DIR
                   [--name A --name B ...] [--labels FILE ...] [--size 224] [--class K] [--json]
                   [--dataset NAME [--split val] [--count 4] --workspace DIR] [--provider cpu|auto|cuda|webgpu]

For each image (files given to --images, and/or --count images of a catalogued dataset's split, one per class
in turn) and each classifier checkpoint (any supported format or a timm model folder):
  <k>-<image>.json      top-5 classes with probabilities (class names from --labels FILE, a model folder's
                        config.json, or the run folder the checkpoint lies in), the explained class, and the
                        Grad-CAM of the last stage as an h x w grid in [0, 1]
  <k>-<image>-<m>.png   the map (bilinearly upsampled, jet colours) over the image as the model saw it
                        (resized to size/0.875, center-cropped)
  explain.json          the list of images and models
Grad-CAM: gradient of the class logit (default: each model's top-1; --class K for all) w.r.t. the last stage's
map A; channel weights = spatial mean of the gradient; CAM = ReLU(sum_c w_c A_c) / max. A map that ReLU leaves
all zero (no positive evidence) is written as zeros with camMax 0.
--serve: the app's worker; JSON lines in (common/explain-protocol.ts) and out, models kept loaded.`;

const PROVIDERS: readonly ProviderChoice[] = ['auto', 'cpu', 'cuda', 'webgpu'];
const slug = (name: string) => name.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 60);

export const explainCommand: Command = {
  summary: 'top-5 classes and Grad-CAM overlays of images by one or more classifiers',
  async run(args) {
    const o = parseOptions(args, {
      weights: { type: 'string', multiple: true }, name: { type: 'string', multiple: true }, labels: { type: 'string', multiple: true }, images: { type: 'string', multiple: true },
      out: { type: 'string' }, size: { type: 'string', default: '224' }, class: { type: 'string' }, json: { type: 'boolean' }, provider: { type: 'string', default: 'cpu' },
      dataset: { type: 'string' }, split: { type: 'string', default: 'val' }, count: { type: 'string', default: '4' }, workspace: { type: 'string' }, serve: { type: 'boolean' },
    }, HELP);
    if (!o) return 0;
    const v = o.values;
    if (v.serve) return serveExplain();
    const weights = v.weights ?? [];
    if (!weights.length) throw new CliError(`give at least one --weights\n\n${HELP}`);
    if (!v.out) throw new CliError(`give --out DIR\n\n${HELP}`);
    const names = v.name ?? weights.map((w) => basename(w).replace(/\.[^.]+$/, ''));
    if (names.length !== weights.length) throw new CliError(`give one --name per --weights (${weights.length}), got ${names.length}`);
    const labels = v.labels ?? [];
    if (labels.length > weights.length) throw new CliError(`give at most one --labels per --weights (${weights.length}), got ${labels.length}`);
    const size = Number(v.size);
    if (!(Number.isInteger(size) && size >= 32 && size % 32 === 0)) throw new CliError(`--size must be a positive multiple of 32, got '${v.size}'`);
    const target = v.class === undefined ? undefined : Number(v.class);
    if (target !== undefined && !(Number.isInteger(target) && target >= 0)) throw new CliError(`--class must be a class index, got '${v.class}'`);
    const provider = v.provider as ProviderChoice;
    if (!PROVIDERS.includes(provider)) throw new CliError(`--provider must be one of ${PROVIDERS.join(', ')}, got '${v.provider}'`);
    const out = resolve(v.out);
    mkdirSync(out, { recursive: true });
    const images = await imageList([...(v.images ?? []), ...o.positionals], v, out);
    const cache = new ExplainerCache({ provider, max: weights.length });
    try {
      const models: ExplainModel[] = [];
      for (const [i, w] of weights.entries()) {
        if (!existsSync(w)) throw new CliError(`${w}: no such checkpoint file or model folder`);
        models.push(await cache.get(w, size, labels[i]).catch((e: Error) => {
          throw new CliError(e.message);
        }));
        if (target !== undefined && target >= models[i]!.numClasses) throw new CliError(`--class ${target}: ${w} has ${models[i]!.numClasses} classes`);
      }
      const files = await explainAll(images, models, names, { out, size, target });
      const index = { size, images: images.map((i) => i.file), models: models.map((m, j) => ({ name: names[j], file: m.file, arch: m.arch, numClasses: m.numClasses, classes: m.classes !== null })), files };
      writeFileSync(join(out, 'explain.json'), `${JSON.stringify(index, null, 2)}\n`);
      if (v.json) console.log(JSON.stringify({ out, files: ['explain.json', ...files.flatMap((f) => [f.json, ...f.overlays])] }));
      else console.log(`wrote ${files.length} explanation(s) by ${models.length} model(s) to ${out}`);
    } finally {
      await cache.release();
    }
    return 0;
  },
};

/** The image files: given ones (must exist) then --count picked from --dataset's --split. */
async function imageList(given: string[], v: { dataset?: string; split?: string; count?: string; workspace?: string }, out: string): Promise<{ file: string; label: string | null }[]> {
  const list: { file: string; label: string | null }[] = [];
  for (const f of given) {
    if (!existsSync(f)) throw new CliError(`${f}: no such image file`);
    list.push({ file: resolve(f), label: null });
  }
  if (v.dataset) {
    const count = Number(v.count);
    if (!(Number.isInteger(count) && count >= 1)) throw new CliError(`--count must be a positive integer, got '${v.count}'`);
    const split = v.split === 'train' || v.split === 'test' ? v.split : 'val';
    const m = await pickImages(await manifestOf(undefined, v.dataset, v.workspace, out), split, count);
    for (const item of m.items) list.push({ file: join(m.root, item.path), label: item.label === null ? null : (m.classes[item.label] ?? null) });
  }
  if (!list.length) throw new CliError(`give images with --images FILE ... or --dataset NAME\n\n${HELP}`);
  return list;
}

async function explainAll(images: { file: string; label: string | null }[], models: ExplainModel[], names: string[], o: { out: string; size: number; target: number | undefined }) {
  const files: { image: string; json: string; overlays: string[] }[] = [];
  for (const [k, img] of images.entries()) {
    const prepared = await prepareImage(img.file, o.size).catch((e: Error) => {
      throw new CliError(`${img.file}: cannot read the image (${e.message})`);
    });
    const base = `${k + 1}-${slug(basename(img.file))}`;
    const results = [];
    const overlays: string[] = [];
    for (const [j, m] of models.entries()) {
      const r = await explainWith(m, prepared, o.target);
      const overlay = `${base}-${j + 1}.png`;
      writeFileSync(join(o.out, overlay), r.overlay);
      overlays.push(overlay);
      results.push({ name: names[j], file: m.file, arch: m.arch, top: r.top, target: r.target, camMax: r.camMax, cam: r.cam, overlay, ms: Math.round(r.ms * 10) / 10 });
    }
    const json = `${base}.json`;
    writeFileSync(join(o.out, json), `${JSON.stringify({ image: img.file, label: img.label, size: o.size, models: results }, null, 2)}\n`);
    files.push({ image: img.file, json, overlays });
  }
  return files;
}
