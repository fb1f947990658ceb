// Test images: smooth synthetic "photos" (a few random low-frequency waves per channel, so resized copies
// keep their perceptual hash and different seeds do not), and a planted dataset with every bad-file kind.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { crc32, deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';

/** mulberry32: a tiny seeded generator, enough for test content. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** RGB pixels (HWC uint8) of a smooth random image. */
export function photoPixels(seed: number, width: number, height: number): Buffer {
  const r = rng(seed);
  const waves = Array.from({ length: 3 }, () =>
    Array.from({ length: 4 }, () => ({ fx: (r() * 3 + 0.5) * Math.PI * 2, fy: (r() * 3 + 0.5) * Math.PI * 2, phase: r() * Math.PI * 2, amp: 20 + r() * 30 })),
  );
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 128;
        for (const w of waves[c]!) v += w.amp * Math.sin((w.fx * x) / width + (w.fy * y) / height + w.phase);
        out[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return out;
}

export function photo(seed: number, width: number, height: number): Sharp {
  return sharp(photoPixels(seed, width, height), { raw: { width, height, channels: 3 } });
}

/** A PNG chunk: length, type, data, CRC over type and data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A valid 1-bit grayscale PNG of side x side all-black pixels: a few KB on disk, side^2 pixels when decoded
 * (12000 -> 144 MP, over half a gigabyte as RGB floats): a decompression bomb.
 */
export function bombPng(side: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // grayscale
  const row = Math.ceil(side / 8) + 1; // filter byte + packed bits
  const idat = deflateSync(Buffer.alloc(row * side), { level: 9 });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cnx-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** What importing the planted folder must report. */
export const PLANTED = {
  images: 14,
  classes: ['cat', 'dog', 'ñandú'],
  corrupt: {
    'dog/bomb.png': 'too-many-pixels',
    'dog/empty.jpg': 'empty',
    'dog/fake.jpg': 'unsupported-format',
    'dog/truncated.jpg': 'truncated',
  },
  skipped: {
    '.DS_Store': 'hidden',
    'dog/broken.jpg': 'broken-symlink',
    'dog/loop': 'symlink-loop',
    'dog/notes.txt': 'not-image',
    'dog/pipe.jpg': 'not-regular-file',
    'stray.jpg': 'no-class',
  },
  exactGroups: [['cat/a-copy.jpg', 'cat/a.jpg', 'dog/a-again.jpg']],
  nearGroups: [['cat/b-small.jpg', 'cat/b.png', 'cat/sub/b-q60.jpg']],
} as const;

/**
 * Plants a class-folder dataset with exact duplicates, near duplicates (a resized JPEG and a re-encoded
 * copy), nested folders, unicode names and every bad-file kind the importer must survive.
 */
export async function plantFolder(root: string): Promise<void> {
  for (const d of ['cat/nested/deeper', 'cat/sub', 'dog', 'ñandú']) mkdirSync(join(root, d), { recursive: true });
  const a = await photo(1, 160, 120).jpeg({ quality: 90 }).toBuffer();
  writeFileSync(join(root, 'cat/a.jpg'), a);
  writeFileSync(join(root, 'cat/a-copy.jpg'), a);
  writeFileSync(join(root, 'dog/a-again.jpg'), a);
  await photo(2, 200, 150).png().toFile(join(root, 'cat/b.png'));
  await photo(2, 200, 150).resize(100, 75).jpeg({ quality: 75 }).toFile(join(root, 'cat/b-small.jpg'));
  await photo(2, 200, 150).jpeg({ quality: 60 }).toFile(join(root, 'cat/sub/b-q60.jpg'));
  await photo(3, 120, 90).jpeg().toFile(join(root, 'cat/nested/deeper/c.jpg'));
  await photo(4, 64, 64).png().toFile(join(root, 'cat/café ☕.png'));
  await photo(5, 100, 80).toColourspace('cmyk').jpeg().toFile(join(root, 'cat/cmyk.jpg'));
  await photo(6, 90, 70).toColourspace('grey16').png().toFile(join(root, 'cat/gray16.png'));
  // Stored 40 wide x 30 high; EXIF orientation 6 (rotate 90) makes it 30 x 40 as seen.
  await photo(7, 40, 30).withMetadata({ orientation: 6 }).jpeg().toFile(join(root, 'cat/rotated.jpg'));
  await photo(8, 80, 60).ensureAlpha(0.5).png().toFile(join(root, 'dog/alpha.png'));
  await photo(9, 70, 50).toColourspace('b-w').png().toFile(join(root, 'dog/gray.png'));
  await photo(10, 50, 50).webp().toFile(join(root, 'ñandú/h.webp'));
  await photo(11, 30, 30).jpeg().toFile(join(root, 'stray.jpg'));

  writeFileSync(join(root, 'dog/empty.jpg'), Buffer.alloc(0));
  const t = await photo(12, 160, 120).jpeg({ quality: 90 }).toBuffer();
  writeFileSync(join(root, 'dog/truncated.jpg'), t.subarray(0, Math.floor(t.length * 0.6)));
  writeFileSync(join(root, 'dog/bomb.png'), bombPng(12000));
  writeFileSync(join(root, 'dog/fake.jpg'), 'this is a text file with a .jpg name\n');
  writeFileSync(join(root, 'dog/notes.txt'), 'notes\n');
  writeFileSync(join(root, '.DS_Store'), 'finder junk');
  symlinkSync('..', join(root, 'dog/loop'));
  symlinkSync('does-not-exist.jpg', join(root, 'dog/broken.jpg'));
  const fifo = spawnSync('mkfifo', [join(root, 'dog/pipe.jpg')]);
  if (fifo.status !== 0) throw new Error(`mkfifo failed: ${fifo.stderr}`);
}
