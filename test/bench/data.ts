// `npm run bench:data`: per-core throughput of decode + RandomResizedCrop(224) + flip + normalize, ours
// (the libjpeg-turbo addon when built, else sharp; CNX_JPEG_DECODER=sharp forces sharp) against
// torchvision/PIL on the same JPEGs, both single-threaded, measured in the same run.
// The files are 200 photo-like 500x375 JPEGs (q90, or another size given as WxH) generated under /tmp and
// deleted afterwards.
// Per core means images per CPU-second of the whole process (all threads, user + sys): on a shared
// machine wall time swings with other people's load, CPU time much less. Wall-clock rates are printed
// too. Last line: {"ours_img_s":..,"torch_img_s":..,"ratio":..} (per CPU-second).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { resolveTransform } from '../../native-worker/data/pipeline/config.ts';
import { jpegDecoder } from '../../native-worker/data/pipeline/native-jpeg.ts';
import { normalizeLuts, transformSample } from '../../native-worker/data/pipeline/transform.ts';
import { photoPixels } from '../helpers/images.ts';
import { torchPython } from '../helpers/python.ts';

const COUNT = 200;
const PASSES = 2;
const ROUNDS = 3;
// Another size as `npm run bench:data -- 1600x1200` (larger photos are where shrink-on-load pays).
const [W, H] = (process.argv[2] ?? '500x375').split('x').map(Number) as [number, number];
if (!(W > 0 && H > 0)) throw new Error(`image size '${process.argv[2]}' is not WIDTHxHEIGHT`);

const BASE_W = 500;
const BASE_H = 375;

/** Noise like a camera sensor's, so JPEG has real detail to code. */
function addNoise(px: Buffer, rand: () => number): void {
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, px[i]! + (rand() + rand() + rand() - 1.5) * 16));
}

/** A photo-like JPEG: smooth colour fields, hard-edged shapes and noise (drawn at 500x375, then resized). */
async function photoLikeJpeg(seed: number, file: string): Promise<void> {
  const px = photoPixels(seed, BASE_W, BASE_H);
  let s = seed * 7919 + 1;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let k = 0; k < 12; k++) {
    const [x0, y0, rw, rh] = [rand() * BASE_W, rand() * BASE_H, 20 + rand() * 150, 20 + rand() * 120];
    const col = [rand() * 255, rand() * 255, rand() * 255];
    for (let y = Math.floor(y0); y < Math.min(BASE_H, y0 + rh); y++) {
      for (let x = Math.floor(x0); x < Math.min(BASE_W, x0 + rw); x++) for (let c = 0; c < 3; c++) px[(y * BASE_W + x) * 3 + c] = col[c]!;
    }
  }
  addNoise(px, rand);
  let img = sharp(px, { raw: { width: BASE_W, height: BASE_H, channels: 3 } });
  if (W !== BASE_W || H !== BASE_H) {
    const big = await img.resize(W, H, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
    addNoise(big, rand);
    img = sharp(big, { raw: { width: W, height: H, channels: 3 } });
  }
  await img.jpeg({ quality: 90 }).toFile(file);
}

interface Rate {
  cpu: number;
  wall: number;
}

async function ours(files: string[]): Promise<Rate> {
  const cfg = resolveTransform({ size: 224, train: true, mode: 'finetune', randAugment: null, reprob: 0 });
  const luts = normalizeLuts(cfg);
  const out = new Float32Array(3 * 224 * 224);
  for (const f of files.slice(0, 20)) await transformSample(f, cfg, 1, out, 0, luts);
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let n = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    for (const f of files) await transformSample(f, cfg, n++, out, 0, luts);
  }
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { cpu: n / ((cpu.user + cpu.system) / 1e6), wall: n / wall };
}

function torch(python: string, files: string[]): Rate {
  const r = spawnSync(python, [join(import.meta.dirname, 'data_torch.py'), String(PASSES), ...files], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`data_torch.py failed:\n${r.stderr}`);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { torch_img_s: number; torch_img_cpu_s: number };
  return { cpu: j.torch_img_cpu_s, wall: j.torch_img_s };
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
    await photoLikeJpeg(i, f);
    files.push(f);
  }
  console.error(`generated ${COUNT} ${W}x${H} q90 JPEGs in ${dir}`);
  const decoder = jpegDecoder();
  console.error(`ours decodes with ${decoder.decoder} (${decoder.reason})`);
  const best = { ours: { cpu: 0, wall: 0 }, torch: { cpu: 0, wall: 0 } };
  const f1 = (x: number) => x.toFixed(1);
  // Alternating rounds, best of each: the machine is shared, so take each side at its least disturbed.
  for (let round = 0; round < ROUNDS; round++) {
    const o = await ours(files);
    const t = torch(py.python, files);
    console.error(`round ${round + 1}: ours ${f1(o.cpu)} img/cpu-s (${f1(o.wall)} img/s wall), torchvision ${f1(t.cpu)} img/cpu-s (${f1(t.wall)} img/s wall)`);
    best.ours = { cpu: Math.max(best.ours.cpu, o.cpu), wall: Math.max(best.ours.wall, o.wall) };
    best.torch = { cpu: Math.max(best.torch.cpu, t.cpu), wall: Math.max(best.torch.wall, t.wall) };
  }
  const r2 = (x: number) => Math.round(x * 100) / 100;
  console.error(`wall clock: ours ${f1(best.ours.wall)} img/s, torchvision ${f1(best.torch.wall)} img/s, ratio ${r2(best.ours.wall / best.torch.wall)}`);
  console.log(JSON.stringify({ ours_img_s: r2(best.ours.cpu), torch_img_s: r2(best.torch.cpu), ratio: r2(best.ours.cpu / best.torch.cpu) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
