// The JS path for small PNGs (png.ts decoder, js-geometry.ts resampler): pixel-exact decoding against
// sharp for every colour type and row filter, the files it must leave to sharp (with sharp's errors), and
// transformSample on such PNGs exactly equal to torchvision (PIL) for train crops, pad-crop and eval.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS } from '../../native-worker/data/import/analyze.ts';
import { resolveTransform, type TransformConfig } from '../../native-worker/data/pipeline/config.ts';
import { cropResize } from '../../native-worker/data/pipeline/js-geometry.ts';
import { type Pixels, decodePng, readPngHeader } from '../../native-worker/data/pipeline/png.ts';
import { JS_PNG_MAX_PIXELS, sampleResizedCrop, setPngDecoder, transformSample } from '../../native-worker/data/pipeline/transform.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { photoPixels, removeDir, tempDir } from '../helpers/images.ts';
import { needTorch, runPython } from '../helpers/python.ts';
import { diffStats, readF32 } from '../helpers/numeric.ts';

const REF = join(import.meta.dirname, '..', 'helpers', 'torchvision_transforms.py');

/** Busy pixels with `channels` samples each: smooth waves, noise, and (channel 1 of 2, 3 of 4) a varying alpha. */
function pixels(seed: number, w: number, h: number, channels: number): Buffer {
  const rgb = photoPixels(seed, w, h);
  const out = Buffer.alloc(w * h * channels);
  let s = seed + 1;
  const noise = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24) % 40;
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < channels; c++) {
      const colour = channels >= 3 ? rgb[i * 3 + c]! : rgb[i * 3]!;
      const alpha = (c === 1 && channels === 2) || c === 3;
      out[i * channels + c] = alpha ? (i * 7) % 256 : Math.min(255, colour + noise());
    }
  }
  return out;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

const PAETH = (a: number, b: number, c: number) => {
  const [pa, pb, pc] = [Math.abs(b - c), Math.abs(a - c), Math.abs(a + b - 2 * c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
};

/** One row filtered with `kind` (0 None .. 4 Paeth) against the unfiltered row above. */
function filterRow(kind: number, row: Buffer, prev: Buffer | null, bpp: number): Buffer {
  const out = Buffer.alloc(row.length + 1);
  out[0] = kind;
  for (let i = 0; i < row.length; i++) {
    const [a, b, c] = [i >= bpp ? row[i - bpp]! : 0, prev ? prev[i]! : 0, i >= bpp && prev ? prev[i - bpp]! : 0];
    const pred = [0, a, b, (a + b) >> 1, PAETH(a, b, c)][kind]!;
    out[i + 1] = (row[i]! - pred) & 255;
  }
  return out;
}

/** A PNG written by hand: row y filtered with filters[y % filters.length], the data split over `idats` chunks (`between` between them), extra chunks before IDAT. */
function handPng(px: Buffer, w: number, h: number, colour: number, opts: { filters?: number[]; idats?: number; extra?: Buffer[]; depth?: number; between?: Buffer } = {}): Buffer {
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colour]!;
  const filters = opts.filters ?? [0, 1, 2, 3, 4];
  const stride = w * channels;
  const rows = Array.from({ length: h }, (_, y) => filterRow(filters[y % filters.length]!, px.subarray(y * stride, (y + 1) * stride), y ? px.subarray((y - 1) * stride, y * stride) : null, channels));
  const z = deflateSync(Buffer.concat(rows));
  const n = opts.idats ?? 1;
  const cut = Math.ceil(z.length / n);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([opts.depth ?? 8, colour, 0, 0, 0], 8);
  const idat = Array.from({ length: n }, (_, i) => chunk('IDAT', z.subarray(i * cut, (i + 1) * cut)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...(opts.extra ?? []), ...idat.flatMap((c, i) => (i && opts.between ? [opts.between, c] : [c])), chunk('IEND', Buffer.alloc(0))]);
}

/** sharp's decode to RGB, alpha dropped: what the sharp path resamples. */
async function sharpRgb(buf: Buffer): Promise<Buffer> {
  return (await sharp(buf).removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true })).data;
}

/** The decoder's pixels as RGB (gray replicated), as the resampler returns them. */
function rgbOf(p: Pixels): Buffer {
  if (p.channels === 3) return Buffer.from(p.data);
  const out = Buffer.alloc(p.data.length * 3);
  p.data.forEach((v, i) => out.fill(v, i * 3, i * 3 + 3));
  return out;
}

/** The filter type bytes a PNG's rows use (to show an encoder's output covers them). */
function filtersUsed(buf: Buffer): Set<number> {
  const { width, height, channels } = readPngHeader(buf)!;
  const parts: Buffer[] = [];
  for (let at = 8; at < buf.length; at += 12 + buf.readUInt32BE(at)) if (buf.toString('latin1', at + 4, at + 8) === 'IDAT') parts.push(buf.subarray(at + 8, at + 8 + buf.readUInt32BE(at)));
  const raw = inflateSync(Buffer.concat(parts));
  return new Set(Array.from({ length: height }, (_, y) => raw[y * (width * channels + 1)]!));
}

describe('PNG decoder', () => {
  test('every colour type and row filter decodes exactly as sharp does', async () => {
    for (const [colour, channels] of [[0, 1], [2, 3], [4, 2], [6, 4]] as const) {
      for (const [w, h] of [[28, 28], [1, 7], [37, 19]] as const) {
        const px = pixels(colour * 10 + w, w, h, channels);
        const variants = [
          handPng(px, w, h, colour),
          handPng(px, w, h, colour, { filters: [4, 3, 2, 1, 0], idats: 3 }),
          // Ancillary chunks neither decoder applies: text, gamma, sRGB intent, physical size.
          handPng(px, w, h, colour, { filters: [3], extra: [chunk('tEXt', Buffer.from('Comment\0x')), chunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])), chunk('sRGB', Buffer.from([0])), chunk('pHYs', Buffer.alloc(9))] }),
        ];
        // A transparent colour (tRNS, gray and RGB only): sharp reads it as alpha, which is then dropped.
        if (colour === 0) variants.push(handPng(px, w, h, colour, { extra: [chunk('tRNS', Buffer.from([0, px[0]!]))] }));
        if (colour === 2) variants.push(handPng(px, w, h, colour, { extra: [chunk('tRNS', Buffer.from([0, px[0]!, 0, px[1]!, 0, px[2]!]))] }));
        for (const buf of variants) {
          const ours = decodePng(buf, DEFAULT_MAX_PIXELS);
          assert.ok(ours, `colour ${colour} ${w}x${h} decoded`);
          assert.deepEqual([ours.width, ours.height], [w, h]);
          assert.equal(ours.channels, channels >= 3 ? 3 : 1);
          assert.ok(rgbOf(ours).equals(await sharpRgb(buf)), `colour ${colour} ${w}x${h}: same pixels as sharp`);
        }
      }
    }
  });

  test("encoders' own adaptive filters: sharp (libvips) and PIL PNGs decode exactly as sharp does", async (t) => {
    const seen = new Set<number>();
    const files: Buffer[] = [];
    for (const [channels, w, h] of [[1, 28, 28], [2, 40, 30], [3, 64, 48], [4, 33, 65]] as const) {
      const raw = sharp(pixels(channels, w, h, channels), { raw: { width: w, height: h, channels } });
      files.push(await raw.png({ adaptiveFiltering: true, compressionLevel: 9 }).toBuffer(), await raw.png({ adaptiveFiltering: false }).toBuffer());
    }
    const python = needTorch(t);
    if (python) {
      // PIL's encoder (libpng-free zlib writer with its own filter choice) on the same kinds of images.
      const dir = tempDir('pil-png');
      try {
        for (const [mode, channels] of [['L', 1], ['LA', 2], ['RGB', 3], ['RGBA', 4]] as const) writeFileSync(join(dir, `${mode}.raw`), pixels(channels + 5, 45, 31, channels));
        const script = `import sys\nfrom PIL import Image\nd=sys.argv[1]\nfor m in ['L','LA','RGB','RGBA']:\n    Image.frombytes(m,(45,31),open(f'{d}/{m}.raw','rb').read()).save(f'{d}/{m}.png', optimize=True)\n`;
        writeFileSync(join(dir, 'w.py'), script);
        runPython(python, join(dir, 'w.py'), [dir]);
        for (const m of ['L', 'LA', 'RGB', 'RGBA']) files.push(readFileSync(join(dir, `${m}.png`)));
      } finally {
        removeDir(dir);
      }
    }
    for (const buf of files) {
      for (const f of filtersUsed(buf)) seen.add(f);
      const ours = decodePng(buf, DEFAULT_MAX_PIXELS);
      assert.ok(ours && rgbOf(ours).equals(await sharpRgb(buf)), 'same pixels as sharp');
    }
    t.diagnostic(`row filters the encoders chose: ${[...seen].sort().join(', ')}`);
    assert.ok(seen.size >= 3, `the encoders used filters ${[...seen]}`);
  });

  test('palette, 16-bit, interlaced, ICC, EXIF, oversized, damaged and truncated PNGs are left to sharp', async () => {
    const base = sharp(pixels(3, 30, 20, 3), { raw: { width: 30, height: 20, channels: 3 } });
    const good = handPng(pixels(3, 30, 20, 3), 30, 20, 2);
    const badCrc = Buffer.from(good);
    badCrc[50] = badCrc[50]! ^ 1; // inside IDAT
    const bigIhdr = Buffer.alloc(13);
    bigIhdr.writeUInt32BE(20000, 0);
    bigIhdr.writeUInt32BE(20000, 4);
    bigIhdr.set([8, 2, 0, 0, 0], 8);
    const declined = {
      palette: await base.png({ palette: true }).toBuffer(),
      '16-bit': await base.toColourspace('rgb16').png().toBuffer(),
      interlaced: await base.png({ progressive: true }).toBuffer(),
      icc: await base.withIccProfile('p3').png().toBuffer(),
      exif: await base.withMetadata({ orientation: 6 }).png().toBuffer(),
      '16-bit by hand': handPng(pixels(3, 30, 20, 3), 30, 20, 2, { depth: 16 }),
      oversized: Buffer.concat([good.subarray(0, 8), chunk('IHDR', bigIhdr), good.subarray(33)]),
      'bad CRC': badCrc,
      truncated: good.subarray(0, good.length - 40),
      'no IEND': good.subarray(0, good.length - 12),
      'unknown critical chunk': handPng(pixels(3, 30, 20, 3), 30, 20, 2, { extra: [chunk('ABCD', Buffer.alloc(3))] }),
      'palette in a gray PNG': handPng(pixels(3, 30, 20, 1), 30, 20, 0, { extra: [chunk('PLTE', Buffer.alloc(6))] }),
      'IDATs apart': handPng(pixels(3, 30, 20, 3), 30, 20, 2, { idats: 2, between: chunk('tEXt', Buffer.from('a\0b')) }),
      'not a PNG': Buffer.from('hello world, this is not a PNG file at all'),
    };
    for (const [what, buf] of Object.entries(declined)) assert.equal(decodePng(buf, DEFAULT_MAX_PIXELS), null, what);
  });

  test('random byte damage never throws or hangs', (t) => {
    const good = handPng(pixels(4, 28, 28, 1), 28, 28, 0);
    const rng = new Rng(11);
    let decoded = 0;
    for (let i = 0; i < 3000; i++) {
      const buf = Buffer.from(good);
      for (let k = rng.int(1, 4); k > 0; k--) buf[rng.int(0, buf.length)] = rng.int(0, 256);
      const cut = rng.chance(0.2) ? buf.subarray(0, rng.int(0, buf.length)) : buf;
      if (decodePng(cut, DEFAULT_MAX_PIXELS)) decoded++;
    }
    // CRCs reject nearly every damaged file: what still decodes had only bytes after IEND changed.
    t.diagnostic(`${decoded} of 3000 damaged copies still decoded`);
    assert.ok(decoded < 300, `${decoded} damaged copies decoded`);
  });
});

describe('JS crop + resize', () => {
  test('a crop at its own size is an exact copy, a window is that part of the full resize, gray resamples as RGB does', () => {
    const src: Pixels = { data: new Uint8Array(pixels(5, 64, 48, 3)), width: 64, height: 48, channels: 3 };
    const copy = cropResize(src, { region: { left: 5, top: 7, width: 32, height: 30 }, outWidth: 32, outHeight: 30, left: 0, top: 0, side: 30 });
    for (let y = 0; y < 30; y++) for (let x = 0; x < 30; x++) for (let c = 0; c < 3; c++) assert.equal(copy.data[(y * 30 + x) * 3 + c], src.data[((y + 7) * 64 + x + 5) * 3 + c]);
    const whole = { region: { left: 0, top: 0, width: 64, height: 48 }, outWidth: 40, outHeight: 40, left: 0, top: 0, side: 40 };
    const full = cropResize(src, whole);
    const part = cropResize(src, { ...whole, left: 6, top: 3, side: 20 });
    for (let y = 0; y < 20; y++) assert.deepEqual([...part.data.subarray(y * 60, y * 60 + 60)], [...full.data.subarray(((y + 3) * 40 + 6) * 3, ((y + 3) * 40 + 26) * 3)]);
    // One channel resampled and replicated = the replicated image resampled (what PIL does after convert('RGB')).
    const gray: Pixels = { data: src.data.filter((_, i) => i % 3 === 0), width: 64, height: 48, channels: 1 };
    for (const g of [whole, { ...whole, region: { left: 9, top: 4, width: 21, height: 17 }, outWidth: 32, outHeight: 32, side: 32 }, { ...whole, outWidth: 64, left: 3, side: 30 }]) {
      assert.ok(Buffer.from(cropResize(gray, g).data).equals(Buffer.from(cropResize({ ...gray, data: rgbOf(gray), channels: 3 }, g).data)), JSON.stringify(g));
    }
  });
});

describe('transformSample on small PNGs vs torchvision', () => {
  let dir: string;
  const files: Record<string, [number, number]> = {};
  before(async () => {
    dir = tempDir('png-tv');
    const write = async (name: string, w: number, h: number, channels: 1 | 2 | 3 | 4) => {
      await sharp(pixels(w + channels, w, h, channels), { raw: { width: w, height: h, channels } }).png().toFile(join(dir, name));
      files[name] = [w, h];
    };
    await write('gray28.png', 28, 28, 1);
    await write('rgb28.png', 28, 28, 3);
    await write('rgba60x45.png', 60, 45, 4);
    await write('ga40x50.png', 40, 50, 2);
    await write('rgb200x150.png', 200, 150, 3);
    await write('gray256.png', 256, 256, 1);
  });
  after(() => removeDir(dir));

  /** Our tensor and torchvision's job for one (file, config, seed), replaying the sampler's draws. */
  const job = (name: string, cfg: TransformConfig, seed: number): string[] => {
    const [W, H] = files[name]!;
    const file = join(dir, name);
    if (!cfg.train) return ['eval', file, String(cfg.size), String(cfg.cropPct)];
    const rng = new Rng(seed);
    if (cfg.padCrop !== null) {
      const pad = cfg.padCrop;
      const [top, left] = [rng.int(0, 2 * pad + 1), rng.int(0, 2 * pad + 1)];
      // transformSample moves the picture by (left - pad, top - pad); torchvision's window moves the other way.
      return ['padcrop', file, String(cfg.size), String(pad), String(2 * pad - top), String(2 * pad - left), rng.chance(cfg.hflip) ? '1' : '0'];
    }
    const box = sampleResizedCrop(W, H, cfg.scale, cfg.ratio, rng);
    return ['crop', file, String(cfg.size), String(box.top), String(box.left), String(box.height), String(box.width), rng.chance(cfg.hflip) ? '1' : '0'];
  };

  test('train crop + flip, pad-crop and eval are exact (max |diff| < 1e-6)', (t) => {
    const python = needTorch(t);
    if (!python) return;
    return (async () => {
      const train = (size: number) => resolveTransform({ size, train: true, mode: 'finetune', scale: [0.35, 1], randAugment: null, reprob: 0 });
      const cases: [string, TransformConfig, number][] = [];
      for (const name of Object.keys(files)) {
        for (const size of [32, 64]) {
          for (const seed of [1, 2, 3]) cases.push([name, train(size), seed]);
          cases.push([name, { ...train(size), padCrop: 4 }, 7], [name, { ...train(size), padCrop: 4 }, 8]);
          cases.push([name, resolveTransform({ size, train: false }), 0], [name, resolveTransform({ size, train: false, cropPct: 1 }), 0]);
        }
      }
      cases.push(['gray28.png', resolveTransform({ size: 28, train: false, cropPct: 1 }), 0], ['rgb28.png', { ...train(28), padCrop: 2, scale: [1, 1] }, 4]);
      const jobs = cases.map(([name, cfg, seed]) => job(name, cfg, seed));
      const outs = jobs.map((_, i) => join(dir, `ref${i}.f32`));
      runPython(python, REF, ['batch'], jobs.map((j, i) => [...j, outs[i]].join('\t')).join('\n'));
      let worstSharp = 0;
      for (const [i, [name, cfg, seed]] of cases.entries()) {
        const ref = readF32(outs[i]!);
        const ours = new Float32Array(3 * cfg.size * cfg.size);
        await transformSample(join(dir, name), cfg, seed, ours, 0);
        const d = diffStats(ours, ref);
        assert.ok(d.max < 1e-6, `${jobs[i]!.slice(0, 1).join()} ${name} @${cfg.size} seed ${seed}: max |diff| ${d.max}`);
        setPngDecoder('sharp');
        try {
          await transformSample(join(dir, name), cfg, seed, ours, 0);
        } finally {
          setPngDecoder('auto');
        }
        worstSharp = Math.max(worstSharp, diffStats(ours, ref).mean);
      }
      t.diagnostic(`${cases.length} cases exact; through sharp instead, the worst case's mean |diff| is ${worstSharp.toFixed(4)}`);
      assert.ok(worstSharp > 1e-3, 'the JS path was taken (sharp is not bit-exact with PIL)');
    })();
  });

  test('files the decoder declines go through sharp with the same results and file-named errors', async (t) => {
    const cfg = resolveTransform({ size: 32, train: false });
    const px = pixels(9, 30, 20, 3);
    const good = handPng(px, 30, 20, 2);
    writeFileSync(join(dir, 'palette.png'), await sharp(px, { raw: { width: 30, height: 20, channels: 3 } }).png({ palette: true }).toBuffer());
    writeFileSync(join(dir, 'interlaced.png'), await sharp(px, { raw: { width: 30, height: 20, channels: 3 } }).png({ progressive: true }).toBuffer());
    writeFileSync(join(dir, 'truncated.png'), good.subarray(0, 60));
    writeFileSync(join(dir, 'garbage.png'), Buffer.concat([good.subarray(0, 33), Buffer.alloc(50, 7)]));
    const run = async (name: string, which: 'auto' | 'sharp') => {
      setPngDecoder(which);
      const out = new Float32Array(3 * 32 * 32);
      try {
        await transformSample(join(dir, name), cfg, 0, out, 0);
        return out;
      } catch (e) {
        return (e as Error).message;
      } finally {
        setPngDecoder('auto');
      }
    };
    writeFileSync(join(dir, 'header-only.png'), good.subarray(0, 33));
    const errors: string[] = [];
    for (const name of ['palette.png', 'interlaced.png', 'truncated.png', 'garbage.png', 'header-only.png']) {
      const [auto, viaSharp] = [await run(name, 'auto'), await run(name, 'sharp')];
      // Same pixels, or the same error (sharp with failOn 'none' fills some damaged files in rather than failing).
      assert.ok(typeof auto === 'string' ? auto === viaSharp : typeof viaSharp !== 'string' && diffStats(auto, viaSharp).max === 0, name);
      if (typeof auto === 'string') {
        assert.ok(auto.startsWith(join(dir, name)), auto);
        errors.push(auto.slice(dir.length + 1));
      }
    }
    t.diagnostic(`errors: ${errors.join(' | ')}`);
    assert.ok(errors.some((e) => e.startsWith('header-only.png')), 'a PNG without image data fails, naming the file');
    assert.ok(JS_PNG_MAX_PIXELS >= 256 * 256, 'the 256x256 case above is on the JS path');
  });
});
