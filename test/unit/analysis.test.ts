// The V1-vs-V2 analyses: the per-layer cosine distance against a direct pairwise computation, and
// `cnx analyze` on two checkpoints (V1 and V2) writing the JSON, CSV and activation grids the UI shows.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parseArch } from '../../common/variants.ts';
import { cosineDistance } from '../../native-worker/analysis/features.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { main } from '../../native-worker/cli.ts';
import { Graph } from '../../native-worker/engine/ir.ts';
import { toOnnx } from '../../native-worker/engine/onnx.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { needTorch } from '../helpers/python.ts';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cnx-analysis-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('cosine distance equals (1/C^2) sum_ij (1 - cos(X_i, X_j)) / 2 computed pairwise (a zero channel included)', async () => {
  const [n, c, h, w] = [2, 5, 3, 4];
  const rng = new Rng(1);
  const x = Float32Array.from({ length: n * c * h * w }, () => rng.normal());
  x.fill(0, (1 * c + 2) * h * w, (1 * c + 3) * h * w); // image 1, channel 2: all zeros
  const g = new Graph('cos');
  g.output(cosineDistance(g.input('x', 'float32', [n, c, h, w])), 'd');
  const s = await ort.InferenceSession.create(toOnnx(g));
  const got = (await s.run({ x: new ort.Tensor('float32', x, [n, c, h, w]) })).d!.data as Float32Array;
  for (let img = 0; img < n; img++) {
    const ch = (k: number) => Array.from(x.subarray((img * c + k) * h * w, (img * c + k + 1) * h * w));
    const norm = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0));
    let sum = 0;
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < c; j++) {
        const [a, b] = [ch(i), ch(j)];
        const cos = norm(a) && norm(b) ? a.reduce((p, v, t) => p + v * b[t]!, 0) / (norm(a) * norm(b)) : 0;
        sum += (1 - cos) / 2;
      }
    }
    assert.ok(Math.abs(got[img]! - sum / (c * c)) < 1e-6, `image ${img}: ${got[img]} vs ${sum / (c * c)}`);
  }
});

test('cnx analyze compares a V1 and a V2 checkpoint: per-layer distances, grids, GRN stats', async () => {
  const manifest = await textureDataset(join(dir, 'data'), 64, 2, 3);
  const files: string[] = [];
  for (const name of ['convnext_atto', 'convnextv2_atto']) {
    const specs = convnextParams({ arch: parseArch(name), numClasses: 4 });
    const values = initParams(specs, 9);
    const file = join(dir, `${name}.safetensors`);
    await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
    files.push(file);
  }
  const out = join(dir, 'out');
  const code = await main(['analyze', '--checkpoint', files[0]!, '--checkpoint', files[1]!, '--manifest', manifest, '--images', '6', '--size', '64', '--batch', '4', '--provider', 'cpu', '--out', out]);
  assert.equal(code, 0);
  assert.equal(await main(['analyze', '--checkpoint', files[0]!, '--manifest', manifest, '--provider', 'tpu', '--out', out]), 2, 'an unknown execution provider is a usage error');
  const a = JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8'));
  assert.equal(a.images, 6);
  assert.deepEqual(a.models.map((m: { arch: string }) => m.arch), ['convnext_atto', 'convnextv2_atto']);
  for (const m of a.models) {
    assert.equal(m.layers.length, 12);
    assert.equal(m.layers[0].depth, 0);
    assert.equal(m.layers[11].depth, 1);
    for (const l of m.layers) assert.ok(l.distance > 0 && l.distance < 0.5, `${m.arch} ${l.name}: ${l.distance}`);
  }
  assert.equal(a.models[0].grn.length, 0);
  assert.equal(a.models[1].grn.length, 12);
  assert.equal(a.models[1].grn[0].weight.nearZero, 1); // a fresh V2 has GRN gamma = 0
  const csv = readFileSync(join(out, 'cosine-distance.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'layer,depth,convnext_atto,convnextv2_atto');
  assert.equal(csv.length, 13);
  const grid = join(out, 'activations-2-convnextv2_atto.png');
  assert.ok(existsSync(grid));
  const meta = await sharp(grid).metadata();
  assert.ok(meta.width! > 0 && meta.width === meta.height, 'an 8x8 grid of square maps');
});

test('cnx analyze --engine torch gives the ONNX engine numbers: distances, channel counts, grids', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const manifest = await textureDataset(join(dir, 'data-torch'), 64, 2, 3, 5);
  const file = join(dir, 'torch-v2.safetensors');
  const specs = convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 4 });
  const values = initParams(specs, 11);
  // A trained-looking V2: nonzero GRN gamma, so GRN actually changes the features.
  for (const s of specs) if (s.name.endsWith('grn.weight')) values.get(s.name)!.fill(0.5);
  await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
  const common = ['--checkpoint', file, '--manifest', manifest, '--images', '7', '--size', '64', '--batch', '3', '--grid-image', '6'];
  assert.equal(await main(['analyze', ...common, '--out', join(dir, 'by-onnx')]), 0);
  assert.equal(await main(['analyze', ...common, '--engine', 'torch', '--python', python, '--device', 'cpu', '--out', join(dir, 'by-torch')]), 0);
  const [a, b] = ['by-onnx', 'by-torch'].map((d) => JSON.parse(readFileSync(join(dir, d, 'analysis.json'), 'utf8')));
  assert.equal(b.engine, 'torch');
  for (const [k, l] of a.models[0].layers.entries()) {
    const m = b.models[0].layers[k];
    assert.ok(Math.abs(l.distance - m.distance) < 1e-5, `${l.name}: onnx ${l.distance} vs torch ${m.distance}`);
    assert.deepEqual([m.dead, m.constant], [l.dead, l.constant], l.name);
  }
  // The grids are the same picture: the maps agree to float precision before 8-bit rounding.
  const [ga, gb] = (await Promise.all(['by-onnx', 'by-torch'].map((d) => sharp(join(dir, d, 'activations-1-torch-v2.png')).raw().toBuffer()))) as [Buffer, Buffer];
  let off = 0;
  for (let i = 0; i < ga.length; i++) off = Math.max(off, Math.abs(ga[i]! - gb[i]!));
  assert.ok(off <= 1, `grid pixels differ by up to ${off}`);
});
