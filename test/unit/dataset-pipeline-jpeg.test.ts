// The libjpeg-turbo addon (native-worker/data/pipeline/native): PIL-exact crops against torchvision, the
// DCT-scaled decode's error, agreement with the sharp path, and the files it must tolerate, refuse or
// leave to sharp. Without the addon built these tests skip with the reason (a failure under CI=true).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS } from '../../native-worker/data/import/analyze.ts';
import { IMAGENET_MEAN, IMAGENET_STD, resolveTransform, type TransformConfig } from '../../native-worker/data/pipeline/config.ts';
import { type CropResizeSpec, jpegDecoder, nativeCropResize, setJpegDecoder } from '../../native-worker/data/pipeline/native-jpeg.ts';
import { transformSample } from '../../native-worker/data/pipeline/transform.ts';
import { photoPixels, removeDir, tempDir } from '../helpers/images.ts';
import { needTorch, runPython } from '../helpers/python.ts';
import { diffStats, readF32 } from '../helpers/numeric.ts';

const REF = join(import.meta.dirname, '..', 'helpers', 'torchvision_transforms.py');

/** The addon's cropResize, or null after marking the test skipped (failed under CI). */
function needAddon(t: TestContext): NonNullable<ReturnType<typeof nativeCropResize>> | null {
  const crop = nativeCropResize();
  if (crop) return crop;
  const { reason } = jpegDecoder();
  if (process.env.CI === 'true') throw new Error(`CI=true and the JPEG addon is not in use: ${reason}`);
  t.skip(reason);
  return null;
}

/** Photo-like pixels with real high-frequency content: smooth waves, hard-edged boxes and sensor noise. */
function busyPixels(seed: number, w: number, h: number): Buffer {
  const px = photoPixels(seed, w, h);
  let s = seed * 7919 + 1;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  for (let k = 0; k < 10; k++) {
    const [x0, y0, bw, bh, v] = [rand() * w, rand() * h, 10 + rand() * w * 0.3, 10 + rand() * h * 0.3, rand() * 255];
    for (let y = Math.floor(y0); y < Math.min(h, y0 + bh); y++) for (let x = Math.floor(x0); x < Math.min(w, x0 + bw); x++) px[(y * w + x) * 3 + (k % 3)] = v;
  }
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, px[i]! + (rand() + rand() + rand() - 1.5) * 16));
  return px;
}

const busy = (seed: number, w: number, h: number) => sharp(busyPixels(seed, w, h), { raw: { width: w, height: h, channels: 3 } });

const spec = (box: { top: number; left: number; height: number; width: number }, size: number, flip = false): CropResizeSpec => ({
  ...box,
  outWidth: size,
  outHeight: size,
  windowLeft: 0,
  windowTop: 0,
  size,
  flip,
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  maxPixels: DEFAULT_MAX_PIXELS,
});


/** torchvision's results for many jobs (argument lists of torchvision_transforms.py) in one Python run. */
function torchvision(python: string, dir: string, jobs: string[][]): Float32Array[] {
  const outs = jobs.map((_, i) => join(dir, `ref${i}.f32`));
  runPython(python, REF, ['batch'], jobs.map((j, i) => [...j, outs[i]].join('\t')).join('\n'));
  return outs.map(readF32);
}

async function transformed(file: string, cfg: TransformConfig, seed: number): Promise<Float32Array> {
  const out = new Float32Array(3 * cfg.size * cfg.size);
  await transformSample(file, cfg, seed, out, 0);
  return out;
}

/** The same sample through sharp instead of the addon. */
async function viaSharp(file: string, cfg: TransformConfig, seed: number): Promise<Float32Array> {
  setJpegDecoder('sharp');
  try {
    return await transformed(file, cfg, seed);
  } finally {
    setJpegDecoder('auto');
  }
}

describe('libjpeg-turbo addon', () => {
  let dir: string;
  const W = 333;
  const H = 251;
  before(async () => {
    dir = tempDir('jpeg');
    await busy(1, W, H).jpeg({ quality: 90 }).toFile(join(dir, '420.jpg'));
    await busy(1, W, H).jpeg({ quality: 90, chromaSubsampling: '4:4:4' }).toFile(join(dir, '444.jpg'));
    await busy(1, W, H).jpeg({ quality: 90, progressive: true }).toFile(join(dir, 'progressive.jpg'));
    await busy(1, W, H).toColourspace('b-w').jpeg({ quality: 90 }).toFile(join(dir, 'gray.jpg'));
    await busy(2, 1000, 750).jpeg({ quality: 90 }).toFile(join(dir, 'big.jpg'));
  });
  after(() => removeDir(dir));

  test('is in use, and says why', () => {
    const d = jpegDecoder();
    if (process.env.CI === 'true') assert.equal(d.decoder, 'libjpeg-turbo', d.reason);
    assert.ok(d.reason.length > 0);
  });

  test('crops without DCT scaling equal torchvision exactly: 4:2:0, 4:4:4, progressive, gray, edges, flips, upscales', (t) => {
    const crop = needAddon(t);
    const python = needTorch(t);
    if (!crop || !python) return;
    const boxes = [
      { top: 0, left: 0, height: 120, width: 150, size: 112 }, // top-left corner
      { top: H - 200, left: W - 180, height: 200, width: 180, size: 160 }, // bottom-right corner
      { top: 0, left: 0, height: H, width: W, size: 224 }, // the whole image, upscaled in height
      { top: 7, left: 301, height: 9, width: 31, size: 64 }, // a sliver at the right edge, upscaled 7x
      { top: 40, left: 53, height: 190, width: 170, size: 160 },
    ];
    const jobs: string[][] = [];
    const ours: Float32Array[] = [];
    for (const name of ['420.jpg', '444.jpg', 'progressive.jpg', 'gray.jpg']) {
      const buf = readFileSync(join(dir, name));
      boxes.forEach(({ size, ...box }, i) => {
        const out = new Float32Array(3 * size * size);
        assert.equal(crop(buf, spec(box, size, i % 2 === 1), out, 0), 8, `${name} ${JSON.stringify(box)} decodes at full size`);
        ours.push(out);
        jobs.push(['crop', join(dir, name), String(size), String(box.top), String(box.left), String(box.height), String(box.width), i % 2 ? '1' : '0']);
      });
    }
    torchvision(python, dir, jobs).forEach((ref, i) => {
      const d = diffStats(ours[i]!, ref);
      // Same libjpeg-turbo decode as PIL's, PIL's fixed-point bicubic, torch's float32 normalization.
      assert.ok(d.max < 1e-6, `${jobs[i]!.slice(1, 8).join(' ')}: max |diff| ${d.max}`);
    });
  });

  test('crops and eval resizes that trigger DCT scaling stay close to torchvision', (t) => {
    const crop = needAddon(t);
    const python = needTorch(t);
    if (!crop || !python) return;
    const file = join(dir, 'big.jpg');
    const buf = readFileSync(file);
    const cases = [
      { top: 0, left: 0, height: 750, width: 1000, size: 224 }, // M = 5
      { top: 150, left: 400, height: 600, width: 600, size: 224 }, // M = 6, at the bottom and right edges
      { top: 31, left: 17, height: 480, width: 490, size: 200 }, // M = 7
      { top: 450, left: 700, height: 300, width: 300, size: 96 }, // M = 6, bottom-right corner
      { top: 100, left: 0, height: 500, width: 420, size: 64 }, // M = 3, left edge
    ];
    const jobs: string[][] = [];
    const ours: Float32Array[] = [];
    const scales: number[] = [];
    for (const { size, ...box } of cases) {
      const out = new Float32Array(3 * size * size);
      scales.push(crop(buf, spec(box, size), out, 0));
      ours.push(out);
      jobs.push(['crop', file, String(size), String(box.top), String(box.left), String(box.height), String(box.width), '0']);
    }
    assert.deepEqual(scales, [5, 6, 7, 6, 3], 'the smallest M/8 that keeps the crop at least twice the output');
    // Eval through transformSample: 1000x750 -> 341x256 (M = 6), centre 224.
    const cfg = resolveTransform({ size: 224, train: false });
    const refs = torchvision(python, dir, [...jobs, ['eval', file, '224', '0.875']]);
    return transformed(file, cfg, 0).then((evalOut) => {
      [...ours, evalOut].forEach((x, i) => {
        const d = diffStats(x, refs[i]!);
        t.diagnostic(`${i < cases.length ? `crop ${JSON.stringify(cases[i])} M=${scales[i]}` : 'eval 224'}: mean |diff| ${d.mean.toFixed(4)}, max ${d.max.toFixed(4)}`);
        // The DCT's shrink is not PIL's bicubic: measured on this busy image, mean |diff| 0.003..0.007
        // (under half an 8-bit level, 0.017) and max up to 0.14 at hard edges. Without scaling it is 0.
        assert.ok(d.mean < 0.01 && d.max < 0.2, `case ${i}: ${JSON.stringify(d)}`);
      });
    });
  });

  test('agrees with the sharp path on the same boxes, train and eval', async (t) => {
    if (!needAddon(t)) return;
    const file = join(dir, '420.jpg');
    const train = resolveTransform({ size: 128, train: true, mode: 'pretrain' });
    const evalCfg = resolveTransform({ size: 128, train: false });
    for (const [cfg, seed] of [[train, 1], [train, 2], [train, 3], [evalCfg, 0]] as const) {
      const d = diffStats(await transformed(file, cfg, seed), await viaSharp(file, cfg, seed));
      t.diagnostic(`${cfg.train ? `train seed ${seed}` : 'eval'}: mean |diff| ${d.mean.toFixed(4)}, max ${d.max.toFixed(4)}`);
      // The addon equals torchvision here, so this is sharp's own distance from it (see transform geometry).
      assert.ok(d.mean < 0.01, `${cfg.train ? 'train' : 'eval'} seed ${seed}: ${JSON.stringify(d)}`);
    }
  });

  test('RGB bytes for RandAugment are the same pixels as the normalized output, flipped alike', (t) => {
    const crop = needAddon(t);
    if (!crop) return;
    const buf = readFileSync(join(dir, '420.jpg'));
    const s = spec({ top: 20, left: 30, height: 200, width: 250 }, 48, true);
    const rgb = new Uint8Array(3 * 48 * 48);
    const chw = new Float32Array(3 * 48 * 48 + 5);
    crop(buf, s, rgb, 0);
    crop(buf, s, chw, 5);
    for (let p = 0; p < 48 * 48; p++) {
      for (let c = 0; c < 3; c++) {
        const want = (rgb[p * 3 + c]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
        assert.ok(Math.abs(chw[5 + c * 48 * 48 + p]! - want) < 1e-6, `pixel ${p} channel ${c}`);
      }
    }
  });

  test('a truncated JPEG decodes as far as it goes, like sharp with failOn none', async (t) => {
    if (!needAddon(t)) return;
    const whole = readFileSync(join(dir, '420.jpg'));
    const file = join(dir, 'truncated.jpg');
    writeFileSync(file, whole.subarray(0, Math.floor(whole.length * 0.6)));
    const cfg = resolveTransform({ size: 160, train: false, cropPct: 1 });
    const cut = await transformed(file, cfg, 0);
    const full = await transformed(join(dir, '420.jpg'), cfg, 0);
    assert.ok(cut.every(Number.isFinite));
    // 60% of the bytes hold roughly the top 60% of the rows: the top quarter of the output is intact.
    for (let c = 0; c < 3; c++) {
      const rows = (x: Float32Array) => x.subarray(c * 160 * 160, c * 160 * 160 + 40 * 160);
      assert.deepEqual(rows(cut), rows(full), `channel ${c}`);
    }
    assert.ok((await viaSharp(file, cfg, 0)).every(Number.isFinite), 'sharp tolerates it too');
  });

  test('garbage, a JPEG cut after its frame header and a decompression bomb fail with the file named', async (t) => {
    const crop = needAddon(t);
    if (!crop) return;
    const cfg = resolveTransform({ size: 32, train: true, mode: 'pretrain' });
    const garbage = join(dir, 'garbage.jpg');
    writeFileSync(garbage, Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 255)));
    await assert.rejects(transformed(garbage, cfg, 0), (e: Error) => e.message.startsWith(`${garbage}: `));
    // The JS header reader sees the frame, so the addon decodes it and libjpeg finds no scan.
    const whole = readFileSync(join(dir, '420.jpg'));
    const sof = whole.indexOf(Buffer.from([0xff, 0xc0]));
    const headerOnly = join(dir, 'header-only.jpg');
    writeFileSync(headerOnly, whole.subarray(0, sof + 2 + whole.readUInt16BE(sof + 2)));
    await assert.rejects(transformed(headerOnly, cfg, 0), (e: Error) => {
      assert.match(e.message, new RegExp(`^${headerOnly}: JPEG decoding failed: `));
      return true;
    });
    // 12000 x 12000 claimed in the frame header: refused before any pixel is decoded.
    const bomb = Buffer.from(whole);
    bomb.writeUInt16BE(12000, sof + 5);
    bomb.writeUInt16BE(12000, sof + 7);
    const bombFile = join(dir, 'bomb.jpg');
    writeFileSync(bombFile, bomb);
    await assert.rejects(transformed(bombFile, cfg, 0), (e: Error) => {
      assert.match(e.message, new RegExp(`^${bombFile}: image is 12000x12000 pixels, over the limit of ${DEFAULT_MAX_PIXELS}`));
      return true;
    });
  });

  test('EXIF-rotated, CMYK and ICC-tagged JPEGs are left to sharp, and come out right', async (t) => {
    const crop = needAddon(t);
    if (!crop) return;
    // Left half black, right half white, stored rotated 90 degrees with EXIF orientation 6.
    const half = Buffer.alloc(90 * 120 * 3);
    for (let y = 0; y < 120; y++) for (let x = 45; x < 90; x++) half.fill(255, (y * 90 + x) * 3, (y * 90 + x) * 3 + 3);
    const rotated = join(dir, 'rotated.jpg');
    await sharp(half, { raw: { width: 90, height: 120, channels: 3 } }).rotate(-90).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toFile(rotated);
    const cfg = resolveTransform({ size: 32, train: false, cropPct: 1 });
    const x = await transformed(rotated, cfg, 0);
    assert.ok(x[0]! < -1.5 && x[31]! > 1.5, 'after EXIF rotation the left column is black and the right white');
    assert.deepEqual(x, await viaSharp(rotated, cfg, 0), 'the same pixels as the sharp path: it was the sharp path');
    const cmyk = await busy(3, 64, 48).toColourspace('cmyk').jpeg().toBuffer();
    assert.equal(crop(cmyk, spec({ top: 0, left: 0, height: 48, width: 64 }, 32), new Float32Array(3 * 32 * 32), 0), 0, 'CMYK declined');
    const p3 = join(dir, 'p3.jpg');
    await busy(4, 64, 48).withIccProfile('p3').jpeg().toFile(p3);
    const train = resolveTransform({ size: 32, train: true, mode: 'pretrain' });
    assert.deepEqual(await transformed(p3, train, 5), await viaSharp(p3, train, 5), 'an embedded ICC profile is applied by sharp');
  });
});
