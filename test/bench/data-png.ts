// `npm run bench:data-png`: ms per image of transformSample on small PNGs, the JS path (png.ts +
// js-geometry.ts) against sharp (setPngDecoder('sharp')), measured in the same run, in CPU time of the
// process (a shared machine moves wall time more). Part 1: Fashion-MNIST as `cnx dataset import` stores it
// (a manifest given as the first argument; skipped without one), 32 px train crop (scale 0.35-1, flip),
// pad-crop 4 and eval. Part 2: synthetic RGB and gray PNGs from 28 to 512 px square, eval at 32 px, for
// where the JS path stops winning (transform.ts JS_PNG_MAX_PIXELS).
// Last line: {"fmnist":{config:{js,sharp}},"sizes":{side:{js,sharp}}} in ms per image.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { resolveTransform, type TransformConfig } from '../../native-worker/data/pipeline/config.ts';
import { normalizeLuts, setPngDecoder, transformSample } from '../../native-worker/data/pipeline/transform.ts';
import { photoPixels } from '../helpers/images.ts';

/** CPU milliseconds per image of `files` through transformSample, JS path (whatever the size) or sharp. */
async function msPerImage(files: string[], cfg: TransformConfig, which: 'js' | 'sharp'): Promise<number> {
  setPngDecoder(which);
  const luts = normalizeLuts(cfg);
  const out = new Float32Array(3 * cfg.size * cfg.size);
  for (const f of files.slice(0, 50)) await transformSample(f, cfg, 1, out, 0, luts);
  const cpu0 = process.cpuUsage();
  for (const [i, f] of files.entries()) await transformSample(f, cfg, i, out, 0, luts);
  const cpu = process.cpuUsage(cpu0);
  setPngDecoder('auto');
  return (cpu.user + cpu.system) / 1000 / files.length;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

async function both(files: string[], cfg: TransformConfig): Promise<{ js: number; sharp: number }> {
  return { js: round(await msPerImage(files, cfg, 'js')), sharp: round(await msPerImage(files, cfg, 'sharp')) };
}

const train = resolveTransform({ size: 32, train: true, mode: 'finetune', scale: [0.35, 1], randAugment: null, reprob: 0 });
const configs: Record<string, TransformConfig> = { train, padCrop: { ...train, padCrop: 4 }, eval: resolveTransform({ size: 32, train: false }) };

const result: { fmnist: Record<string, { js: number; sharp: number }>; sizes: Record<string, { js: number; sharp: number }> } = { fmnist: {}, sizes: {} };
const manifestFile = process.argv[2];
if (manifestFile) {
  const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as { root: string; items: { path: string }[] };
  const files = m.items.filter((_, i) => i % 35 === 0).map((it) => join(m.root, it.path));
  for (const [name, cfg] of Object.entries(configs)) result.fmnist[name] = await both(files, cfg);
  console.log(`Fashion-MNIST, ${files.length} images:`, JSON.stringify(result.fmnist));
}
const dir = mkdtempSync(join(tmpdir(), 'cnx-bench-png-'));
try {
  for (const side of [28, 64, 128, 192, 256, 384, 512]) {
    const files: string[] = [];
    for (let i = 0; i < Math.max(40, Math.round(20000 / side)); i++) {
      const file = join(dir, `${side}-${i}.png`);
      const img = sharp(photoPixels(i, side, side), { raw: { width: side, height: side, channels: 3 } });
      await (i % 2 ? img.toColourspace('b-w') : img).png().toFile(file);
      files.push(file);
    }
    result.sizes[side] = await both(files, configs.eval!);
    console.log(`${side}x${side}:`, JSON.stringify(result.sizes[side]));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
