// `cnx explain` (top-5 + Grad-CAM) on checkpoints made by the repo's own helpers: files, class names from a
// run folder's manifest, two models side by side; the Grad-CAM of the ONNX engine's autodiff against PyTorch's
// autograd.grad on the last stage output (native-worker/torch/reference.py gradcam, float64), max abs
// difference of the [0, 1]-scaled map < 1e-4; the all-zero map rule; bilinear upsampling; the 224 px timing.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { parseArch } from '../../common/variants.ts';
import { prepareImage, upsampleBilinear } from '../../native-worker/analysis/explain-image.ts';
import { ExplainerCache } from '../../native-worker/analysis/explain.ts';
import { type Explanation, gradCam } from '../../native-worker/analysis/gradcam.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { main } from '../../native-worker/cli.ts';
import { explainCommand } from '../../native-worker/cli/explain.ts';
import { readNpy, writeNpy } from '../../native-worker/data/npy.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { photo, removeDir, tempDir } from '../helpers/images.ts';
import { needTorch, runPython } from '../helpers/python.ts';

const CLASSES = 4;
let dir: string;
const ckpt: Record<string, string> = {};
const images: string[] = [];

async function writeModel(file: string, arch: string, seed: number): Promise<string> {
  const specs = convnextParams({ arch: parseArch(arch), numClasses: CLASSES, headInitScale: 20 });
  const values = initParams(specs, seed);
  await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
  return file;
}

before(async () => {
  dir = tempDir('cnx-explain-');
  // A run folder: the class names come from its config.json's frozen manifest.
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const manifest = await textureDataset(data, 32, 1, 1);
  const m = JSON.parse(readFileSync(manifest, 'utf8')) as { classes: string[] };
  const run = join(dir, 'runs', 'r1');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  writeFileSync(join(run, 'config.json'), JSON.stringify({ data: { manifest: join(data, 'classes4.json') } }));
  writeFileSync(join(data, 'classes4.json'), JSON.stringify({ ...m, classes: m.classes.slice(0, CLASSES) }));
  ckpt.v2 = await writeModel(join(run, 'checkpoints', 'step-10.safetensors'), 'convnextv2_atto', 1);
  ckpt.v1 = await writeModel(join(dir, 'v1.safetensors'), 'convnext_atto', 2);
  images.push(join(dir, 'wide.png'), join(dir, 'tall.jpg'));
  await photo(3, 300, 200).png().toFile(images[0]!);
  await photo(4, 180, 260).jpeg().toFile(images[1]!);
});
after(() => removeDir(dir));

test('cnx explain: top-5 with class names, a CAM grid and an overlay per image and model', async () => {
  const out = join(dir, 'out');
  const code = await main(['explain', '--weights', ckpt.v2!, '--weights', ckpt.v1!, '--name', 'V2', '--name', 'V1', '--images', ...images, '--out', out, '--json']);
  assert.equal(code, 0);
  const index = JSON.parse(readFileSync(join(out, 'explain.json'), 'utf8')) as { files: { json: string; overlays: string[] }[]; models: { name: string; classes: boolean }[] };
  assert.deepEqual(index.models.map((m) => [m.name, m.classes]), [['V2', true], ['V1', false]]);
  assert.equal(index.files.length, 2);
  for (const f of index.files) {
    const r = JSON.parse(readFileSync(join(out, f.json), 'utf8')) as { models: { top: { index: number; name: string | null; p: number }[]; target: { index: number }; cam: number[][]; camMax: number; overlay: string }[] };
    assert.equal(r.models.length, 2);
    for (const [j, m] of r.models.entries()) {
      assert.equal(m.top.length, CLASSES); // top-5 of a 4-class head: all 4
      assert.ok(m.top.every((t, i) => i === 0 || t.p <= m.top[i - 1]!.p), 'sorted by probability');
      assert.ok(Math.abs(m.top.reduce((a, t) => a + t.p, 0) - 1) < 1e-5);
      assert.equal(m.target.index, m.top[0]!.index);
      assert.equal(m.top[0]!.name === null, j === 1, 'names for the run checkpoint only');
      assert.deepEqual([m.cam.length, m.cam[0]!.length], [7, 7]);
      const flat = m.cam.flat();
      assert.ok(flat.every((v) => v >= 0 && v <= 1));
      assert.ok(m.camMax === 0 ? flat.every((v) => v === 0) : Math.max(...flat) === 1);
      const meta = await sharp(join(out, m.overlay)).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 224, 224]);
    }
  }
  const names = JSON.parse(readFileSync(join(out, index.files[0]!.json), 'utf8')).models[0].top.map((t: { name: string }) => t.name);
  const classes = (JSON.parse(readFileSync(join(dir, 'data', 'classes4.json'), 'utf8')) as { classes: string[] }).classes;
  assert.ok(names.every((n: string) => classes.includes(n)));
});

test('cnx explain --dataset: images picked from a catalogued dataset, one per class, with their labels', async () => {
  const ws = join(dir, 'ws');
  assert.equal(await main(['dataset', 'import', join(dir, 'data'), '--name', 'tex', '--workspace', ws]), 0);
  const out = join(dir, 'out-ds');
  assert.equal(await main(['explain', '--weights', ckpt.v1!, '--dataset', 'tex', '--count', '2', '--workspace', ws, '--size', '64', '--out', out]), 0);
  const index = JSON.parse(readFileSync(join(out, 'explain.json'), 'utf8')) as { files: { json: string }[] };
  assert.equal(index.files.length, 2);
  const labels = index.files.map((f) => (JSON.parse(readFileSync(join(out, f.json), 'utf8')) as { label: string; models: { cam: number[][] }[] }));
  assert.equal(new Set(labels.map((l) => l.label)).size, 2, 'two different classes');
  for (const l of labels) assert.deepEqual([l.models[0]!.cam.length, l.models[0]!.cam[0]!.length], [2, 2]);
});

test('cnx explain: errors name the file and the problem', async () => {
  const run = (...a: string[]) => explainCommand.run(a);
  await assert.rejects(run('--weights', join(dir, 'nope.safetensors'), '--images', images[0]!, '--out', join(dir, 'e')), /nope\.safetensors: no such checkpoint/);
  await assert.rejects(run('--weights', ckpt.v2!, '--images', join(dir, 'missing.png'), '--out', join(dir, 'e')), /missing\.png: no such image/);
  await assert.rejects(run('--weights', ckpt.v2!, '--images', images[0]!, '--class', '9', '--out', join(dir, 'e')), /--class 9: .* has 4 classes/);
  writeFileSync(join(dir, 'three.txt'), 'a\nb\nc\n');
  await assert.rejects(run('--weights', ckpt.v1!, '--labels', join(dir, 'three.txt'), '--images', images[0]!, '--out', join(dir, 'e')), /three\.txt: 3 class names for a 4-class head/);
  writeFileSync(join(dir, 'four.txt'), 'w\nx\ny\nz\n');
  await run('--weights', ckpt.v1!, '--labels', join(dir, 'four.txt'), '--images', images[0]!, '--class', '2', '--out', join(dir, 'l'));
  const named = JSON.parse(readFileSync(join(dir, 'l', '1-wide.json'), 'utf8')) as { models: { target: { index: number; name: string } }[] };
  assert.deepEqual(named.models[0]!.target, { index: 2, name: 'y' });
});

test('Grad-CAM matches PyTorch autograd on the last stage output (V2 and V1, 224 px, max abs < 1e-4)', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const cache = new ExplainerCache({ provider: 'cpu' });
  try {
    const prepared = await Promise.all(images.map((f) => prepareImage(f, 224)));
    const x = new Float32Array(prepared.length * 3 * 224 * 224);
    prepared.forEach((p, i) => x.set(p.chw, i * p.chw.length));
    writeNpy(join(dir, 'x.npy'), { dtype: 'float32', shape: [prepared.length, 3, 224, 224], data: x });
    const models = [['convnextv2_atto', ckpt.v2!], ['convnext_atto', ckpt.v1!]] as const;
    const ours: Explanation[][] = [];
    for (const [arch, file] of models) {
      const m = await cache.get(file, 224);
      const e = await Promise.all(prepared.map((p) => m.explainer.explain(p.chw)));
      // The same classes for both (a near-tie of the top-1 must not change what is compared).
      writeNpy(join(dir, `y-${arch}.npy`), { dtype: 'int64', shape: [e.length], data: BigInt64Array.from(e, (r) => BigInt(r.target)) });
      ours.push(e);
    }
    // Both references in one Python process (one torch import).
    const calls = models.map(([arch, file]) => ['gradcam', '--arch', arch, '--weights', file, '--input', join(dir, 'x.npy'), '--labels', join(dir, `y-${arch}.npy`), '--out', join(dir, `ref-${arch}`), '--dtype', 'float64']);
    const code = 'import json, sys; sys.path.insert(0, "native-worker/torch"); import reference; [reference.main(a) for a in json.loads(sys.argv[1])]';
    runPython(python, '-c', [code, JSON.stringify(calls)]);
    models.forEach(([arch], k) => {
      const ref = join(dir, `ref-${arch}`);
      const cam = readNpy(join(ref, 'cam.npy')).data as Float32Array;
      const info = JSON.parse(readFileSync(join(ref, 'gradcam.json'), 'utf8')) as { camMax: number[] };
      ours[k]!.forEach((e, i) => {
        assert.ok(e.camMax > 0, `${arch} image ${i}: a non-trivial map`);
        let worst = 0;
        for (let p = 0; p < 49; p++) worst = Math.max(worst, Math.abs(e.cam[p]! - cam[i * 49 + p]!));
        assert.ok(worst < 1e-4, `${arch} image ${i}: max abs CAM difference ${worst}`);
        assert.ok(Math.abs(e.camMax - info.camMax[i]!) <= 1e-3 * info.camMax[i]!, `${arch} image ${i}: camMax ${e.camMax} vs ${info.camMax[i]}`);
      });
    });
  } finally {
    await cache.release();
  }
});

test('gradCam: weights are the spatial mean of the gradient; a map ReLU zeroes everywhere stays all zeros', () => {
  // C=2, 1x2 map: A = [[1, 3], [2, 0]], grad = [[1, 1], [-2, 0]] -> w = [1, -1] -> [1-2, 3-0] -> ReLU [0, 3] -> [0, 1].
  const r = gradCam(Float32Array.of(1, 3, 2, 0), Float32Array.of(1, 1, -2, 0), 2, 1, 2);
  assert.deepEqual([...r.cam], [0, 1]);
  assert.equal(r.max, 3);
  const z = gradCam(Float32Array.of(1, 2), Float32Array.of(-1, -1), 1, 1, 2);
  assert.deepEqual([[...z.cam], z.max], [[0, 0], 0]);
});

test('upsampleBilinear: half-pixel centers, edges clamped (as torch interpolate, align_corners=False)', () => {
  // [0, 1] to 4 columns: sources -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1.
  assert.deepEqual([...upsampleBilinear(Float32Array.of(0, 1), 1, 2, 1, 4)], [0, 0.25, 0.75, 1]);
});

test('a 224 px image through a loaded convnextv2_atto answers in well under a second', async () => {
  const cache = new ExplainerCache({ provider: 'cpu' });
  try {
    const m = await cache.get(ckpt.v2!, 224);
    const p = await prepareImage(images[0]!, 224);
    await m.explainer.explain(p.chw); // warm-up
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await m.explainer.explain(p.chw);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(`explain convnextv2_atto 224 px: median ${times[2]!.toFixed(1)} ms (forward + head backward + CAM)`);
    assert.ok(times[2]! < 1000, `median ${times[2]} ms`);
    assert.equal(await cache.get(ckpt.v2!, 224), m, 'the cache returns the loaded model');
  } finally {
    await cache.release();
  }
});
