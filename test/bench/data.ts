// `npm run bench:data`: per-core throughput of decode + RandomResizedCrop(224) + flip + normalize, ours
// (sharp) against torchvision/PIL on the same JPEGs, both single-threaded, measured in the same run.
// The files are ~200 photo-like 500x375 JPEGs (q90) generated under /tmp and deleted afterwards.
// Prints progress, then as its last line: {"ours_img_s":..,"torch_img_s":..,"ratio":..}
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { resolveTransform } from '../../native-worker/data/pipeline/config.ts';
import { normalizeLuts, transformSample } from '../../native-worker/data/pipeline/transform.ts';
import { photoPixels } from '../helpers/images.ts';
import { torchPython } from '../helpers/python.ts';

const COUNT = 200;
const PASSES = 2;
const ROUNDS = 1;
const W = 500;
const H = 375;

/** A photo-like image: smooth colour fields, hard-edged shapes and sensor-like noise, so JPEG has real work. */
function photoLike(seed: number): Buffer {
  const px = photoPixels(seed, W, H);
  let s = seed * 7919 + 1;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let k = 0; k < 12; k++) {
    const [x0, y0, rw, rh] = [rand() * W, rand() * H, 20 + rand() * 150, 20 + rand() * 120];
    const col = [rand() * 255, rand() * 255, rand() * 255];
    for (let y = Math.floor(y0); y < Math.min(H, y0 + rh); y++) {
      for (let x = Math.floor(x0); x < Math.min(W, x0 + rw); x++) for (let c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = col[c]!;
    }
  }
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, px[i]! + (rand() + rand() + rand() - 1.5) * 16));
  return px;
}

async function ours(files: string[]): Promise<number> {
  const cfg = resolveTransform({ size: 224, train: true, mode: 'finetune', randAugment: null, reprob: 0 });
  const luts = normalizeLuts(cfg);
  const out = new Float32Array(3 * 224 * 224);
  for (const f of files.slice(0, 20)) await transformSample(f, cfg, 1, out, 0, luts);
  const start = performance.now();
  let n = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    for (const f of files) await transformSample(f, cfg, n++, out, 0, luts);
  }
  return n / ((performance.now() - start) / 1000);
}

function torch(python: string, files: string[]): number {
  const r = spawnSync(python, [join(import.meta.dirname, 'data_torch.py'), String(PASSES), ...files], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`data_torch.py failed:\n${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { torch_img_s: number }).torch_img_s;
}

const py = torchPython();
if (!('python' in py)) throw new Error(py.reason);
// One libvips thread, one image at a time: the same single core PIL gets.
sharp.concurrency(1);
sharp.cache(false);
const dir = mkdtempSync(join(tmpdir(), 'cnx-bench-data-'));
try {
  const files: string[] = [];
  for (let i = 0; i < COUNT; i++) {
    const f = join(dir, `${i}.jpg`);
    await sharp(photoLike(i), { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toFile(f);
    files.push(f);
  }
  console.error(`generated ${COUNT} ${W}x${H} q90 JPEGs in ${dir}`);
  let best = { ours: 0, torch: 0 };
  // Alternating rounds, best of each: the machine is shared, so take each side at its least disturbed.
  for (let round = 0; round < ROUNDS; round++) {
    const o = await ours(files);
    const t = torch(py.python, files);
    console.error(`round ${round + 1}: ours ${o.toFixed(1)} img/s, torchvision ${t.toFixed(1)} img/s`);
    best = { ours: Math.max(best.ours, o), torch: Math.max(best.torch, t) };
  }
  const r2 = (x: number) => Math.round(x * 100) / 100;
  console.log(JSON.stringify({ ours_img_s: r2(best.ours), torch_img_s: r2(best.torch), ratio: r2(best.ours / best.torch) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
