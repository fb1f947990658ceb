// `npm run bench:explain [-- --arch convnextv2_atto --size 224 --repeats 20 --threads 2]`
// "Try it" latency: one image's top-5 + Grad-CAM on a loaded model (forward, the head's backward by our
// autodiff, the map; ExplainerCache keeps the model loaded as the app does), with the load + compile time
// apart, against the same Grad-CAM in eager PyTorch (test/python/eager_convnext.py gradcam) with the same
// thread count, in the same run; also the largest difference between the two maps. Last line: JSON.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseArch } from '../../common/variants.ts';
import { prepareImage } from '../../native-worker/analysis/explain-image.ts';
import { ExplainerCache } from '../../native-worker/analysis/explain.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { readNpy, writeNpy } from '../../native-worker/data/npy.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { photo } from '../helpers/images.ts';
import { torchPython } from '../helpers/python.ts';

const { values: a } = parseArgs({
  options: {
    arch: { type: 'string', default: 'convnextv2_atto' },
    size: { type: 'string', default: '224' },
    repeats: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
  },
});
const size = Number(a.size);
const threads = Number(a.threads);
const repeats = Number(a.repeats);
const dir = mkdtempSync(join(tmpdir(), 'cnx-bench-explain-'));
try {
  const specs = convnextParams({ arch: parseArch(a.arch!), numClasses: 1000 });
  const values = initParams(specs, 0);
  const weights = join(dir, 'model.safetensors');
  await saveCheckpoint(weights, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
  await photo(1, 500, 375).jpeg().toFile(join(dir, 'image.jpg'));

  const cache = new ExplainerCache({ provider: 'cpu', threads });
  const t0 = performance.now();
  const model = await cache.get(weights, size);
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  const img = await prepareImage(join(dir, 'image.jpg'), size);
  const prepareMs = performance.now() - t1;
  const times: number[] = [];
  let last = await model.explainer.explain(img.chw);
  for (let i = 0; i < repeats; i++) {
    const s = performance.now();
    last = await model.explainer.explain(img.chw);
    times.push(performance.now() - s);
  }
  await cache.release();
  times.sort((p, q) => p - q);
  const ours = { impl: 'onnx engine (onnxruntime-node cpu)', load_compile_ms: Math.round(loadMs), prepare_ms: Math.round(prepareMs * 10) / 10, ms: Math.round(times[times.length >> 1]! * 10) / 10 };
  console.log(JSON.stringify({ ours }));

  let reference: { ms: number; target: number; impl: string } | null = null;
  let maxDiff: number | null = null;
  const py = torchPython();
  if ('python' in py) {
    writeNpy(join(dir, 'x.npy'), { dtype: 'float32', shape: [1, 3, size, size], data: img.chw });
    const r = spawnSync(py.python, ['test/bench/explain_torch.py', '--weights', weights, '--arch', a.arch!, '--input', join(dir, 'x.npy'), '--out', join(dir, 'cam.npy'), '--repeats', String(Math.min(repeats, 10)), '--threads', String(threads)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`explain_torch.py failed:\n${r.stderr}`);
    reference = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const cam = readNpy(join(dir, 'cam.npy')).data as Float32Array;
    maxDiff = reference!.target === last.target ? Math.max(...Array.from(cam, (v, i) => Math.abs(v - last.cam[i]!))) : null;
  } else console.log(`no PyTorch reference: ${py.reason}`);
  console.log(JSON.stringify({ arch: a.arch, size, threads, ours, reference, ratio: reference ? Math.round((ours.ms / reference.ms) * 100) / 100 : null, cam_max_abs_diff: maxDiff }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
