// The input pipeline: geometry against torchvision, decoding of unusual images, determinism across worker
// counts and resumption, batch shapes and statistics, RandAugment ops, and the augmentation preview.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type Manifest, sealManifest } from '../../common/manifest.ts';
import { type TransformConfig, resolveTransform } from '../../native-worker/data/pipeline/config.ts';
import { readJpegHeader } from '../../native-worker/data/pipeline/jpeg-header.ts';
import { jpegDecoder } from '../../native-worker/data/pipeline/native-jpeg.ts';
import { type Batch, createLoader } from '../../native-worker/data/pipeline/loader.ts';
import { augmentationPreview } from '../../native-worker/data/pipeline/preview.ts';
import { FILL, INCREASING_OPS, ORIGINAL_OPS, type RgbImage, opByName } from '../../native-worker/data/pipeline/randaugment.ts';
import { roundHalfEven, sampleResizedCrop, sampleSeed, transformSample } from '../../native-worker/data/pipeline/transform.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { photo, photoPixels, removeDir, tempDir } from '../helpers/images.ts';
import { needTorch, runPython } from '../helpers/python.ts';
import { diffStats, readF32 } from '../helpers/numeric.ts';

const REF = join(import.meta.dirname, '..', 'helpers', 'torchvision_transforms.py');

async function transformed(file: string, cfg: TransformConfig, seed: number): Promise<Float32Array> {
  const out = new Float32Array(3 * cfg.size * cfg.size);
  await transformSample(file, cfg, seed, out, 0);
  return out;
}


describe('transform geometry', () => {
  let dir: string;
  before(async () => {
    dir = tempDir('geom');
    // PNGs: both sides start from identical pixels (JPEG decoders differ in their last bit).
    await photo(1, 500, 375).png().toFile(join(dir, 'landscape.png'));
    await photo(2, 375, 500).png().toFile(join(dir, 'portrait.png'));
    await photo(3, 333, 251).png().toFile(join(dir, 'odd.png'));
    await photo(4, 500, 375).jpeg({ quality: 95 }).toFile(join(dir, 'landscape.jpg'));
  });
  after(() => removeDir(dir));

  test('eval (resize to size/0.875, centre crop, normalize) matches torchvision', (t) => {
    const python = needTorch(t);
    if (!python) return;
    return (async () => {
      for (const [name, size] of [['landscape.png', 224], ['portrait.png', 224], ['odd.png', 160]] as const) {
        const cfg = resolveTransform({ size, train: false });
        const ours = await transformed(join(dir, name), cfg, 0);
        const out = join(dir, `${name}.f32`);
        runPython(python, REF, ['eval', join(dir, name), String(size), '0.875', out]);
        const d = diffStats(ours, readF32(out));
        t.diagnostic(`${name} @${size}: mean |diff| ${d.mean.toFixed(4)}, max ${d.max.toFixed(4)} (normalized units; 1/255 level = ~0.017)`);
        // libvips' and PIL's bicubic (both a = -0.5) differ only in rounding: on average well under one
        // 8-bit level; a misplaced crop or a wrong size would be off by many levels everywhere.
        assert.ok(d.mean < 0.01, `${name}: mean |diff| ${d.mean}`);
        assert.ok(d.max < 0.1, `${name}: max |diff| ${d.max}`);
      }
    })();
  });

  test('train crop + flip matches torchvision resized_crop with the same box', (t) => {
    const python = needTorch(t);
    if (!python) return;
    return (async () => {
      for (const [name, size, seed] of [['landscape.png', 224, 1], ['landscape.png', 224, 2], ['landscape.jpg', 96, 5], ['portrait.png', 64, 9]] as const) {
        const cfg = resolveTransform({ size, train: true, mode: 'pretrain' });
        const ours = await transformed(join(dir, name), cfg, seed);
        // Replay the sampler exactly as transformSample draws: crop box, then flip.
        const rng = new Rng(seed);
        const meta = await sharp(join(dir, name)).metadata();
        const box = sampleResizedCrop(meta.width, meta.height, cfg.scale, cfg.ratio, rng);
        const flip = rng.chance(cfg.hflip);
        const out = join(dir, `${name}.${seed}.f32`);
        runPython(python, REF, ['crop', join(dir, name), String(size), String(box.top), String(box.left), String(box.height), String(box.width), flip ? '1' : '0', out]);
        const d = diffStats(ours, readF32(out));
        // JPEGs go through the libjpeg-turbo addon when it is built: PIL's decode and resize arithmetic,
        // exact without DCT scaling, within 0.01 with it (dataset-pipeline-jpeg.test.ts measures both).
        const native = name.endsWith('.jpg') && jpegDecoder().decoder === 'libjpeg-turbo';
        const shrunk = !native && Math.min(box.width, box.height) >= 3 * size && name.endsWith('.jpg');
        // From 2x down, libvips box-shrinks by the integer part before the bicubic pass; PIL is exact.
        const boxShrunk = !native && Math.min(box.width, box.height) >= 2 * size;
        const how = native ? ' (libjpeg-turbo addon)' : shrunk ? ' (shrink-on-load)' : '';
        t.diagnostic(`${name} seed ${seed} box ${JSON.stringify(box)} flip ${flip}${how}: mean |diff| ${d.mean.toFixed(4)}, max ${d.max.toFixed(4)}`);
        // Shrink-on-load decodes in the DCT domain and places the crop to within half an output pixel:
        // close but not the same pixels, hence the looser bound there.
        assert.ok(d.mean < (shrunk ? 0.08 : boxShrunk ? 0.02 : 0.01), `${name} seed ${seed}: mean |diff| ${d.mean}`);
      }
    })();
  });

  test('RandomResizedCrop boxes stay inside the image with the requested area and aspect', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 2000; i++) {
      const [W, H] = [rng.int(20, 800), rng.int(20, 800)];
      const b = sampleResizedCrop(W, H, [0.08, 1], [3 / 4, 4 / 3], rng);
      assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= W && b.top + b.height <= H && b.width > 0 && b.height > 0, JSON.stringify({ W, H, b }));
    }
    // A 10:1 strip cannot fit any 3/4..4/3 box of the sampled area: the fallback is a centred 4:3 crop.
    assert.deepEqual(sampleResizedCrop(1000, 100, [0.9, 1], [3 / 4, 4 / 3], new Rng(1)), { top: 0, left: 433, height: 100, width: 133 });
    assert.deepEqual([roundHalfEven(0.5), roundHalfEven(1.5), roundHalfEven(2.5), roundHalfEven(-1.5), roundHalfEven(2.4)], [0, 2, 2, -2, 2]);
  });
});

test('gray, 16-bit, CMYK, alpha and EXIF-rotated images become 3-channel tensors of the right content', async () => {
  const dir = tempDir('kinds');
  try {
    const solid = (ch: number[]) => sharp({ create: { width: 120, height: 90, channels: 3, background: { r: ch[0]!, g: ch[1]!, b: ch[2]! } } });
    await solid([200, 200, 200]).toColourspace('b-w').png().toFile(join(dir, 'gray.png'));
    await solid([50, 100, 150]).toColourspace('rgb16').png().toFile(join(dir, 'rgb16.png'));
    await solid([50, 100, 150]).toColourspace('cmyk').jpeg({ quality: 100 }).toFile(join(dir, 'cmyk.jpg'));
    await solid([50, 100, 150]).ensureAlpha(0.3).png().toFile(join(dir, 'alpha.png'));
    // Left half black, right half white, stored rotated 90 degrees with EXIF orientation 6.
    const half = Buffer.alloc(90 * 120 * 3);
    for (let y = 0; y < 120; y++) for (let x = 45; x < 90; x++) half.fill(255, (y * 90 + x) * 3, (y * 90 + x) * 3 + 3);
    await sharp(half, { raw: { width: 90, height: 120, channels: 3 } }).rotate(-90).withMetadata({ orientation: 6 }).png().toFile(join(dir, 'rotated.png'));
    const cfg = resolveTransform({ size: 32, train: false });
    const channelMeans = async (file: string) => {
      const x = await transformed(join(dir, file), cfg, 0);
      const plane = 32 * 32;
      return [0, 1, 2].map((c) => x.subarray(c * plane, (c + 1) * plane).reduce((s, v) => s + v, 0) / plane);
    };
    const expected = (rgb: number[]) => rgb.map((v, c) => (v / 255 - cfg.mean[c]!) / cfg.std[c]!);
    const close = (a: number[], b: number[], tol: number, what: string) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < tol, `${what}: ${a} vs ${b}`));
    close(await channelMeans('gray.png'), expected([200, 200, 200]), 0.02, 'gray');
    close(await channelMeans('rgb16.png'), expected([50, 100, 150]), 0.02, '16-bit');
    close(await channelMeans('alpha.png'), expected([50, 100, 150]), 0.02, 'alpha dropped like PIL convert("RGB")');
    // CMYK goes through ICC profiles both ways (perceptual intent, not exactly invertible): compare with
    // libvips' own full-image conversion, and check it is still the blue we wrote, not CMYK bytes as RGB.
    const { data: cmykRgb } = await sharp(join(dir, 'cmyk.jpg')).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    const cmykMeans = await channelMeans('cmyk.jpg');
    close(cmykMeans, expected([0, 1, 2].map((c) => cmykRgb[c]!)), 0.02, 'CMYK');
    assert.ok(cmykMeans[0]! < cmykMeans[1]! && cmykMeans[1]! < cmykMeans[2]!, 'CMYK stays blue');
    const rotated = await transformed(join(dir, 'rotated.png'), resolveTransform({ size: 32, train: false, cropPct: 1 }), 0);
    assert.ok(rotated[0]! < -1.5 && rotated[31]! > 1.5, 'after EXIF rotation the left column is black and the right white');
  } finally {
    removeDir(dir);
  }
});

test('the JPEG header reader agrees with libvips', async () => {
  const variants = [
    await photo(1, 123, 45).jpeg().toBuffer(),
    await photo(2, 64, 80).jpeg({ progressive: true }).toBuffer(),
    await photo(3, 50, 40).toColourspace('b-w').jpeg().toBuffer(),
    await photo(4, 50, 40).toColourspace('cmyk').jpeg().toBuffer(),
    await photo(5, 40, 30).withMetadata({ orientation: 6 }).jpeg().toBuffer(),
    await photo(6, 40, 30).withMetadata({ orientation: 3 }).jpeg().toBuffer(),
    await photo(7, 40, 30).withIccProfile('p3').jpeg().toBuffer(),
  ];
  for (const buf of variants) {
    const m = await sharp(buf).metadata();
    assert.deepEqual(readJpegHeader(buf), { width: m.width, height: m.height, components: m.channels, orientation: m.orientation ?? 1, icc: !!m.icc });
  }
  assert.ok(readJpegHeader(variants.at(-1)!)!.icc, 'the P3 profile is seen');
  assert.equal(readJpegHeader(await photo(1, 10, 10).png().toBuffer()), null);
  assert.equal(readJpegHeader(variants[0]!.subarray(0, 20)), null);
});

describe('loader', () => {
  let dir: string;
  let manifest: Manifest;
  before(async () => {
    dir = tempDir('loader');
    mkdirSync(join(dir, 'img'));
    const items: Manifest['items'] = [];
    for (let i = 0; i < 30; i++) {
      const [w, h] = i % 3 === 0 ? [200, 150] : i % 3 === 1 ? [120, 160] : [90, 90];
      const name = `img/${i}.${i % 2 ? 'png' : 'jpg'}`;
      await (i % 2 ? photo(i, w, h).png() : photo(i, w, h).jpeg()).toFile(join(dir, name));
      items.push({ path: name, label: i % 4 === 3 ? null : i % 3, split: i < 24 ? 'train' : 'val' });
    }
    manifest = sealManifest({ version: 1, dataset: 'loader', createdAt: new Date().toISOString(), root: dir, classes: ['a', 'b', 'c'], items });
  });
  after(() => removeDir(dir));

  const collect = async (opts: Partial<Parameters<typeof createLoader>[0]>) => {
    const loader = createLoader({ manifest, split: 'train', batchSize: 5, size: 48, train: true, mode: 'finetune', seed: 3, workers: 0, ...opts });
    const batches: Batch[] = [];
    for await (const b of loader) batches.push(b);
    return { batches, loader };
  };
  const same = (a: Batch[], b: Batch[]) => {
    assert.equal(a.length, b.length);
    a.forEach((x, i) => {
      assert.deepEqual([x.epoch, x.batch, [...x.indices], [...x.labels]], [b[i]!.epoch, b[i]!.batch, [...b[i]!.indices], [...b[i]!.labels]]);
      assert.ok(Buffer.from(x.images.buffer, x.images.byteOffset, x.images.byteLength).equals(Buffer.from(b[i]!.images.buffer, b[i]!.images.byteOffset, b[i]!.images.byteLength)), `batch ${i} pixels`);
    });
  };

  test('batches have the documented shapes, labels and indices', async () => {
    const { batches, loader } = await collect({ epochs: 2 });
    assert.deepEqual([loader.samples, loader.batchesPerEpoch, batches.length], [24, 4, 8], '24 train items, 5 per batch, last partial dropped');
    for (const b of batches) {
      assert.equal(b.images.length, 5 * 3 * 48 * 48);
      assert.ok(b.labels instanceof BigInt64Array && b.indices instanceof Int32Array);
      b.indices.forEach((idx, k) => assert.equal(b.labels[k], BigInt(manifest.items[idx]!.label ?? -1)));
      assert.ok(b.images.every(Number.isFinite));
    }
    const epoch0 = batches.slice(0, 4).flatMap((b) => [...b.indices]);
    const epoch1 = batches.slice(4).flatMap((b) => [...b.indices]);
    assert.equal(new Set(epoch0).size, 20);
    assert.notDeepEqual(epoch0, epoch1, 'each epoch has its own order');
    assert.deepEqual(loader.state(), { epoch: 2, batch: 0 });
  });

  test('the same seed gives the same batches with 0, 1 or 3 worker threads', async () => {
    const inline = await collect({});
    same((await collect({ workers: 1 })).batches, inline.batches);
    same((await collect({ workers: 3, prefetch: 2 })).batches, inline.batches);
    const other = await collect({ seed: 4 });
    assert.notDeepEqual([...other.batches[0]!.indices], [...inline.batches[0]!.indices]);
  });

  test('state() resumes exactly where iteration stopped', async () => {
    const full = (await collect({ epochs: 2 })).batches;
    const first = createLoader({ manifest, split: 'train', batchSize: 5, size: 48, train: true, seed: 3, workers: 0, epochs: 2 });
    const head: Batch[] = [];
    for await (const b of first) {
      head.push(b);
      if (head.length === 3) break;
    }
    const state = first.state();
    assert.deepEqual(state, { epoch: 0, batch: 3 });
    const rest = (await collect({ resume: state, epochs: 2 - state.epoch })).batches;
    same([...head, ...rest], full);
  });

  test('a file that cannot be read fails the iteration with its path, from a worker thread too', async () => {
    const broken = sealManifest({ ...manifest, items: [...manifest.items.slice(0, 4), { path: 'img/gone.jpg', label: 0, split: 'train' }] });
    for (const workers of [0, 1]) {
      const loader = createLoader({ manifest: broken, split: 'train', batchSize: 5, size: 32, train: true, workers });
      await assert.rejects(
        (async () => {
          for await (const _ of loader) assert.fail('no batch expected');
        })(),
        (e: Error) => {
          assert.match(e.message, new RegExp(`${join(dir, 'img', 'gone.jpg')}: .*ENOENT`));
          return true;
        },
        `workers ${workers}`,
      );
    }
  });

  test('eval batches keep every item in manifest order, the last batch partial', async () => {
    const { batches } = await collect({ split: 'val', train: false, batchSize: 4 });
    assert.deepEqual(batches.map((b) => [...b.indices]), [[24, 25, 26, 27], [28, 29]]);
  });

  test('pretrain crops of a solid image are that colour exactly; fine-tune batches are augmented', async (t) => {
    const solidDir = join(dir, 'solid');
    mkdirSync(solidDir, { recursive: true });
    const items: Manifest['items'] = [];
    for (let i = 0; i < 8; i++) {
      const [w, h] = [100 + 20 * i, 160 - 10 * i];
      await sharp({ create: { width: w, height: h, channels: 3, background: { r: 10, g: 128, b: 240 } } }).png().toFile(join(solidDir, `s${i}.png`));
      items.push({ path: `s${i}.png`, label: 0, split: 'train' });
    }
    const m = sealManifest({ ...manifest, root: solidDir, items });
    const cfg = resolveTransform({ size: 32, train: true, mode: 'pretrain' });
    const want = [10, 128, 240].map((v, c) => (v / 255 - cfg.mean[c]!) / cfg.std[c]!);
    const loader = createLoader({ manifest: m, split: 'train', batchSize: 8, size: 32, train: true, mode: 'pretrain', seed: 1, workers: 0 });
    for await (const b of loader) {
      for (let c = 0; c < 3; c++) {
        for (let s = 0; s < 8; s++) {
          const plane = b.images.subarray((s * 3 + c) * 1024, (s * 3 + c + 1) * 1024);
          assert.ok(plane.every((v) => Math.abs(v - want[c]!) < 1e-5), `sample ${s} channel ${c}`);
        }
      }
    }
    // Fine-tuning: RandAugment and erasing change pixels; over many samples the statistics move off the
    // plain crop's but stay in a sane normalized range.
    const ft = await collect({ batchSize: 24, epochs: 3, size: 64 });
    const plain = await collect({ batchSize: 24, epochs: 3, size: 64, mode: 'pretrain' });
    const stats = (bs: Batch[]) => {
      let s = 0;
      let s2 = 0;
      let n = 0;
      for (const b of bs) {
        for (const v of b.images) {
          s += v;
          s2 += v * v;
        }
        n += b.images.length;
      }
      return { mean: s / n, std: Math.sqrt(s2 / n - (s / n) ** 2) };
    };
    const [a, p] = [stats(ft.batches), stats(plain.batches)];
    t.diagnostic(`finetune mean ${a.mean.toFixed(3)} std ${a.std.toFixed(3)}; pretrain mean ${p.mean.toFixed(3)} std ${p.std.toFixed(3)}`);
    assert.ok(Math.abs(a.mean) < 1 && a.std > 0.3 && a.std < 2);
    assert.notDeepEqual(a, p);
  });
});

test('random erasing hits a quarter of fine-tuning samples with one noise rectangle of 2%..33% of the area', async () => {
  const dir = tempDir('erase');
  try {
    const file = join(dir, 's.png');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 90, g: 90, b: 90 } } }).png().toFile(file);
    const cfg = resolveTransform({ size: 32, train: true, mode: 'finetune', randAugment: null });
    const plane = 32 * 32;
    const flat = (90 / 255 - cfg.mean[0]!) / cfg.std[0]!;
    let erased = 0;
    const n = 400;
    for (let seed = 0; seed < n; seed++) {
      const x = await transformed(file, cfg, seed);
      let [x0, y0, x1, y1] = [32, 32, -1, -1];
      for (let p = 0; p < plane; p++) {
        if (Math.abs(x[p]! - flat) > 1e-4) {
          const [px, py] = [p % 32, Math.floor(p / 32)];
          [x0, y0, x1, y1] = [Math.min(x0, px), Math.min(y0, py), Math.max(x1, px), Math.max(y1, py)];
        }
      }
      if (x1 < 0) continue;
      erased++;
      const area = (x1 - x0 + 1) * (y1 - y0 + 1);
      // round() of the sampled sides can land a little outside the nominal area range.
      assert.ok(area >= 0.02 * plane * 0.7 && area <= (plane / 3) * 1.3, `seed ${seed}: erased ${area} pixels`);
    }
    // Binomial(400, 0.25): standard deviation ~8.7, so 70..130 is more than 3 sigma either side.
    assert.ok(erased >= 70 && erased <= 130, `${erased} of ${n} samples erased`);
  } finally {
    removeDir(dir);
  }
});

describe('RandAugment ops', () => {
  const img: RgbImage = { data: new Uint8Array(photoPixels(5, 40, 30)), width: 40, height: 30 };
  const rng = () => new Rng(1);

  test('every op keeps the shape and 8-bit range, and changes the image at magnitude 9', () => {
    for (const op of [...INCREASING_OPS, ...ORIGINAL_OPS]) {
      const out = op.apply(img, 9, rng());
      assert.deepEqual([out.width, out.height, out.data.length], [40, 30, 40 * 30 * 3], op.name);
      assert.ok(!Buffer.from(out.data).equals(Buffer.from(img.data)), `${op.name} changes something`);
    }
  });

  test('op semantics: invert twice, solarize, posterize, zero geometry, fill colour', () => {
    const twice = opByName('Invert').apply(opByName('Invert').apply(img, 0, rng()), 0, rng());
    assert.ok(Buffer.from(twice.data).equals(Buffer.from(img.data)));
    const sol = opByName('SolarizeIncreasing').apply(img, 5, rng()); // threshold 256 - 128 = 128
    img.data.forEach((v, i) => assert.equal(sol.data[i], v < 128 ? v : 255 - v));
    const post = opByName('PosterizeIncreasing').apply(img, 5, rng()); // 4 - int(2) = 2 bits kept
    assert.ok(post.data.every((v) => (v & 0x3f) === 0));
    for (const name of ['Rotate', 'ShearX', 'TranslateYRel']) {
      assert.ok(Buffer.from(opByName(name).apply(img, 0, rng()).data).equals(Buffer.from(img.data)), `${name} at magnitude 0`);
    }
    const shifted = opByName('TranslateXRel').apply(img, 10, rng()); // 45% of the width, left or right
    const cols = [0, 39].map((x) => [0, 1, 2].map((c) => shifted.data[(15 * 40 + x) * 3 + c]));
    assert.ok(cols.some((px) => px.every((v, c) => v === FILL[c])), 'uncovered side takes the fill colour');
  });

  test('equalize and autocontrast agree with PIL', (t) => {
    const python = needTorch(t);
    if (!python) return;
    const dir = tempDir('ops');
    try {
      const src = join(dir, 'in.rgb');
      const script = join(dir, 'ops.py');
      writeFileSync(src, img.data);
      writeFileSync(
        script,
        [
          'import sys',
          'from PIL import Image, ImageOps',
          "im = Image.frombytes('RGB', (40, 30), open(sys.argv[1], 'rb').read())",
          "sys.stdout.buffer.write(ImageOps.equalize(im).tobytes() + ImageOps.autocontrast(im).tobytes())",
        ].join('\n'),
      );
      const r = spawnSync(python, [script, src]);
      assert.equal(r.status, 0, String(r.stderr));
      const pil = r.stdout as Buffer;
      const n = img.data.length;
      assert.ok(Buffer.from(opByName('Equalize').apply(img, 0, rng()).data).equals(pil.subarray(0, n)), 'equalize');
      assert.ok(Buffer.from(opByName('AutoContrast').apply(img, 0, rng()).data).equals(pil.subarray(n, 2 * n)), 'autocontrast');
    } finally {
      removeDir(dir);
    }
  });
});

test('augmentation previews are PNGs from the training transform, reproducible by seed', async () => {
  const dir = tempDir('preview');
  try {
    const file = join(dir, 'p.jpg');
    await photo(8, 300, 200).jpeg().toFile(file);
    const config = { size: 96, train: true, mode: 'finetune' as const };
    const a = await augmentationPreview(file, config, 4, 7);
    const b = await augmentationPreview(file, config, 4, 7);
    assert.equal(a.length, 4);
    a.forEach((png, i) => assert.ok(png.equals(b[i]!), `preview ${i} reproducible`));
    assert.equal(new Set(a.map((p) => p.toString('base64'))).size, 4, 'four different draws');
    const meta = await sharp(a[0]!).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 96, 96, 3]);
    // Preview k is the sample the loader would make of item 0 in epoch k: same pixels after denormalizing.
    const cfg = resolveTransform(config);
    const x = await transformed(file, cfg, sampleSeed(7, 2, 0));
    const { data } = await sharp(a[2]!).raw().toBuffer({ resolveWithObject: true });
    const px = Math.round((x[0]! * cfg.std[0]! + cfg.mean[0]!) * 255);
    assert.equal(data[0], Math.max(0, Math.min(255, px)));
  } finally {
    removeDir(dir);
  }
});
