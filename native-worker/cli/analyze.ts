// `cnx analyze`: the paper's V1-vs-V2 feature analyses for one or more checkpoints on the same images:
// per-layer cosine distance (CSV + JSON), activation grids (PNG), dead/constant channels, GRN statistics.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { type Arch, parseArch } from '../../common/variants.ts';
import { FeatureProbe, activationGrid, grnStats, layersOf } from '../analysis/features.ts';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint/load.ts';
import type { ProviderChoice } from '../engine/runtime.ts';
import type { TensorMap } from '../checkpoint/tensor.ts';
import { encoderTensors } from '../jobs/inference.ts';
import { readNpy, writeNpy } from '../data/npy.ts';
import type { ParamValues } from '../nn/params.ts';
import { type Command, CliError, parseOptions } from './command.ts';
import { namedCheckpoints } from './model-io.ts';
import { loadImages, manifestOf, pickImages } from './dataset-images.ts';
import { createProgress } from './progress.ts';
import { viaTorch } from './torch-reference.ts';

const HELP = `usage: cnx analyze --checkpoint A [--checkpoint B ...] (--manifest FILE | --dataset NAME) --out DIR
                   [--name A --name B ...] [--split val] [--images 64] [--size 224] [--batch 16]
                   [--grid-layer K] [--grid-image 0] [--workspace DIR]
                   [--engine onnx [--provider auto|cpu|cuda|webgpu] | --engine torch [--python PATH] [--device auto|cpu|cuda]]

For each checkpoint (V1 or V2, classifier or FCMAE encoder, any supported format) on the same images
(spread over the classes):
  cosine-distance.csv / analysis.json   per-layer feature cosine distance (paper Fig. 4) against the normalized
                                        layer index, dead and constant channel counts, GRN gamma/beta statistics
  activations-<k>-<name>.png            64 channels of layer K (default: the last of stage 2) for one image (Fig. 3)
--name labels the models in the outputs (default: the checkpoint's file name).`;

export const analyzeCommand: Command = {
  summary: 'V1 vs V2 feature analysis: cosine distance per layer, activation grids, GRN stats',
  async run(args) {
    const o = parseOptions(args, {
      checkpoint: { type: 'string', multiple: true }, name: { type: 'string', multiple: true }, manifest: { type: 'string' }, dataset: { type: 'string' }, out: { type: 'string' },
      split: { type: 'string', default: 'val' }, images: { type: 'string', default: '64' }, size: { type: 'string', default: '224' },
      batch: { type: 'string', default: '16' }, 'grid-layer': { type: 'string' }, 'grid-image': { type: 'string', default: '0' }, provider: { type: 'string', default: 'auto' }, engine: { type: 'string', default: 'onnx' }, python: { type: 'string' }, device: { type: 'string' }, workspace: { type: 'string' }, json: { type: 'boolean' },
    }, HELP);
    if (!o) return 0;
    const v = o.values;
    if (!v.out) throw new CliError(`give --out\n\n${HELP}`);
    const { checkpoints, names } = namedCheckpoints(v, HELP);
    const [count, size, batch, gridImage] = [Number(v.images), Number(v.size), Number(v.batch), Number(v['grid-image'])];
    if (!(count >= 1) || size % 32 || !(batch >= 1)) throw new CliError('--images and --batch must be positive, --size a multiple of 32');
    const provider = v.provider as ProviderChoice;
    if (!PROVIDERS.includes(provider)) throw new CliError(`--provider must be one of ${PROVIDERS.join(', ')}, got '${v.provider}'`);
    const engine = v.engine;
    if (engine !== 'onnx' && engine !== 'torch') throw new CliError(`--engine must be onnx or torch, got '${engine}'`);
    const out = resolve(v.out);
    mkdirSync(out, { recursive: true });
    const manifest = await pickImages(await manifestOf(v.manifest, v.dataset, v.workspace, out), v.split === 'train' || v.split === 'test' ? v.split : 'val', count);
    const images = await loadImages(manifest, batch, size);
    const progress = createProgress();
    const models: { name: string; checkpoint: string; arch: string; fcmae: boolean; grid: string | null; gridLayer: number; layers: object[]; grn: object[] }[] = [];
    for (const [m, file] of checkpoints.entries()) {
      const ck = await loadCheckpoint(file).catch((e: Error) => {
        throw new CliError(e.message);
      });
      const arch = parseArch(`${ck.arch.version === 2 ? 'convnextv2' : 'convnext'}_${ck.variant}`);
      const tensors = encoderTensors(ck.tensors, ck.arch.decoder);
      const weights: ParamValues = new Map([...tensors].map(([k, t]) => [k, t.data as Float32Array]));
      const gridFile = `activations-${m + 1}-${slug(names[m]!)}.png`;
      const layers = layersOf(arch);
      const gridLayer = v['grid-layer'] !== undefined ? Number(v['grid-layer']) : layers.findLastIndex((l) => l.stage === 2);
      if (!(gridLayer >= 0 && gridLayer < layers.length)) throw new CliError(`--grid-layer must be in 0..${layers.length - 1}`);
      const job: StatsJob = { arch, images, batch, size, gridLayer, gridImage, report: (done) => progress.update(`${names[m]}: batch ${done + 1}/${images.length}`, (m * images.length + done) / (checkpoints.length * images.length)) };
      const st = engine === 'torch' ? await torchStats(job, tensors, { python: v.python, device: v.device ?? 'auto' }) : await onnxStats(job, weights, provider);
      if (st.grid) await writeGrid(st.grid, arch, gridLayer, size, join(out, gridFile));
      models.push({
        name: names[m]!, checkpoint: file, arch: arch.name, fcmae: ck.arch.decoder, grid: st.grid ? gridFile : null, gridLayer,
        layers: layers.map((l, k) => ({ ...l, distance: st.distance[k], dead: Math.round(st.dead[k]!), constant: Math.round(st.constant[k]!) })),
        grn: grnStats(arch, weights),
      });
    }
    progress.done();
    const gridItem = manifest.items[gridImage];
    const analysis = { images: manifest.items.length, size, split: v.split, engine, gridImage: gridItem ? { index: gridImage, path: gridItem.path, label: gridItem.label === null ? null : (manifest.classes[gridItem.label] ?? null) } : null, models };
    writeFileSync(join(out, 'analysis.json'), JSON.stringify(analysis, null, 2));
    const rows = ['layer,depth,' + models.map((m) => csvField(m.name)).join(',')];
    const longest = models.reduce((a, m) => (m.layers.length > a.layers.length ? m : a), models[0]!);
    longest.layers.forEach((l, k) => rows.push([(l as { name: string }).name, (l as { depth: number }).depth.toFixed(4), ...models.map((m) => ((m.layers[k] as { distance?: number } | undefined)?.distance ?? NaN).toFixed(6))].join(',')));
    writeFileSync(join(out, 'cosine-distance.csv'), `${rows.join('\n')}\n`);
    if (v.json) console.log(JSON.stringify({ out, files: ['analysis.json', 'cosine-distance.csv', ...models.flatMap((m) => (m.grid ? [m.grid] : []))] }));
    else console.log(`wrote ${join(out, 'analysis.json')}, ${join(out, 'cosine-distance.csv')} and activation grids for ${models.length} model(s) on ${manifest.items.length} images`);
    return 0;
  },
};

const PROVIDERS: readonly ProviderChoice[] = ['auto', 'cpu', 'cuda', 'webgpu'];
const slug = (name: string) => name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 60);
const csvField = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

/** One model's analysis input: the images in batches, the grid's block and image, a progress callback. */
interface StatsJob {
  arch: Arch;
  images: { images: Float32Array; rows: number }[];
  batch: number;
  size: number;
  gridLayer: number;
  gridImage: number;
  report(batchesDone: number): void;
}

/** Per block: distance averaged over the images, dead/constant channels averaged over the batches; the grid image's map (1, C, h, w). */
interface ModelStats {
  distance: Float64Array;
  dead: Float64Array;
  constant: Float64Array;
  grid: Float32Array | null;
}

async function onnxStats(job: StatsJob, weights: ParamValues, provider: ProviderChoice): Promise<ModelStats> {
  const layers = layersOf(job.arch);
  const total = job.images.reduce((a, c) => a + c.rows, 0);
  const st: ModelStats = { distance: new Float64Array(layers.length), dead: new Float64Array(layers.length), constant: new Float64Array(layers.length), grid: null };
  const probe = await FeatureProbe.create(job.arch, job.batch, job.size, provider);
  try {
    for (const [b, chunk] of job.images.entries()) {
      job.report(b);
      const local = job.gridImage - b * job.batch;
      const wantGrid = local >= 0 && local < chunk.rows;
      const r = await probe.run(weights, chunk.images, wantGrid ? new Set([job.gridLayer]) : new Set(), chunk.rows);
      r.stats.forEach((s, k) => {
        for (let i = 0; i < chunk.rows; i++) st.distance[k]! += s.distance[i]! / total;
        st.dead[k]! += s.dead / job.images.length;
        st.constant[k]! += s.constant / job.images.length;
      });
      const map = r.maps.get(job.gridLayer);
      if (map) {
        const per = map.length / job.batch;
        st.grid = map.slice(local * per, (local + 1) * per);
      }
    }
  } finally {
    await probe.release();
  }
  return st;
}

/** The same statistics from the PyTorch engine (reference.py features) on the same weights and images. */
async function torchStats(job: StatsJob, tensors: TensorMap, o: { python: string | undefined; device: string }): Promise<ModelStats> {
  const layers = layersOf(job.arch);
  const tmp = mkdtempSync(join(tmpdir(), 'cnx-analyze-'));
  try {
    const weightsFile = join(tmp, 'encoder.safetensors');
    await saveCheckpoint(weightsFile, tensors);
    const per = 3 * job.size * job.size;
    const total = job.images.reduce((a, c) => a + c.rows, 0);
    const all = new Float32Array(total * per);
    let at = 0;
    for (const c of job.images) {
      all.set(c.images.subarray(0, c.rows * per), at);
      at += c.rows * per;
    }
    writeNpy(join(tmp, 'images.npy'), { dtype: 'float32', shape: [total, 3, job.size, job.size], data: all });
    job.report(0);
    const gridBlock = layers[job.gridLayer]!.name;
    viaTorch('features', ['--arch', job.arch.name, '--weights', weightsFile, '--input', join(tmp, 'images.npy'), '--batch', String(job.batch), '--grid-block', gridBlock, '--grid-image', String(job.gridImage)],
      { 'features.json': join(tmp, 'features.out.json'), ...(job.gridImage < total ? { 'grid.npy': join(tmp, 'grid.out.npy') } : {}) }, o);
    const found = JSON.parse(readFileSync(join(tmp, 'features.out.json'), 'utf8')) as { blocks: { name: string; distance: number[]; dead: number[]; constant: number[] }[] };
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const byName = new Map(found.blocks.map((b) => [b.name, b]));
    const pick = (f: (b: { distance: number[]; dead: number[]; constant: number[] }) => number) =>
      Float64Array.from(layers, (l) => {
        const b = byName.get(l.name);
        if (!b) throw new CliError(`the PyTorch engine reported no ${l.name}`);
        return f(b);
      });
    const grid = job.gridImage < total ? (readNpy(join(tmp, 'grid.out.npy')).data as Float32Array) : null;
    return { distance: pick((b) => mean(b.distance)), dead: pick((b) => mean(b.dead)), constant: pick((b) => mean(b.constant)), grid };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The 8x8 grid of the first 64 channels of one image's map (1, C, h, w), 4x enlarged. */
async function writeGrid(map: Float32Array, arch: Arch, layer: number, size: number, file: string): Promise<void> {
  const info = layersOf(arch)[layer]!;
  const side = size / 4 / 2 ** info.stage;
  const g = activationGrid(map, [1, info.channels, side, side], 0);
  await sharp(Buffer.from(g.gray), { raw: { width: g.width, height: g.height, channels: 1 } }).resize({ width: g.width * 4, kernel: 'nearest' }).png().toFile(file);
}
