// MNIST-family idx files (LeCun's format, as Fashion-MNIST ships them, optionally gzipped): decoded as a
// stream and written out as one PNG per image, so everything downstream only ever sees image files.
import { createReadStream } from 'node:fs';
import { access, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import sharp from 'sharp';
import type { Split } from '../catalog/types.ts';
import { forEachConcurrent } from './pool.ts';
import { UserError } from '../../../common/errors.ts';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;
export type IdxClasses = 'fashion-mnist' | 'mnist';

export class IdxError extends UserError {
  override name = 'IdxError';
}

/** A class name as a folder name ("T-shirt/top" -> "T-shirt-top"). */
export const classFolder = (name: string): string => name.replace(/[/\\:]/g, '-');

export interface IdxPair {
  split: Split;
  images: string;
  labels: string;
}

const IMAGES_RE = /^(.+?)-images[-.]idx3-ubyte(\.gz)?$/;

/** The image/label file pairs in a folder; `train-*` is the train split, `t10k-*` / `test-*` the test split. */
export async function findIdxPairs(dir: string): Promise<IdxPair[]> {
  const names = await readdir(dir);
  const pairs: IdxPair[] = [];
  for (const n of names.sort()) {
    const m = IMAGES_RE.exec(n);
    if (!m) continue;
    const prefix = m[1]!;
    const split: Split | undefined = prefix === 'train' ? 'train' : prefix === 't10k' || prefix === 'test' ? 'test' : prefix === 'val' ? 'val' : undefined;
    if (!split) throw new IdxError(`${join(dir, n)}: cannot tell the split from the prefix '${prefix}' (expected train, t10k, test or val)`);
    const labels = names.find((l) => l === `${prefix}-labels-idx1-ubyte.gz` || l === `${prefix}-labels-idx1-ubyte` || l === `${prefix}-labels.idx1-ubyte`);
    if (!labels) throw new IdxError(`${join(dir, n)}: no matching ${prefix}-labels-idx1-ubyte[.gz] next to it`);
    pairs.push({ split, images: join(dir, n), labels: join(dir, labels) });
  }
  if (!pairs.length) throw new IdxError(`${dir}: no idx files found (expected e.g. train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz)`);
  return pairs;
}

/** A byte stream of the file, gunzipped when it starts with the gzip magic. */
async function openIdx(file: string): Promise<Readable> {
  const fh = await open(file, 'r');
  const magic = Buffer.alloc(2);
  await fh.read(magic, 0, 2, 0);
  await fh.close();
  const raw = createReadStream(file);
  return magic[0] === 0x1f && magic[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
}

interface IdxHeader {
  dims: number[];
  headerBytes: number;
}

/** Parses the header: 0, 0, type (0x08 = unsigned byte), rank, then rank big-endian u32 sizes. */
function parseHeader(buf: Buffer, file: string, rank: number): IdxHeader | null {
  if (buf.length < 4) return null;
  if (buf[0] !== 0 || buf[1] !== 0) throw new IdxError(`${file}: not an idx file (bad magic number)`);
  if (buf[2] !== 0x08) throw new IdxError(`${file}: idx element type 0x${buf[2]!.toString(16)} is not supported (only unsigned bytes)`);
  if (buf[3] !== rank) throw new IdxError(`${file}: expected a rank-${rank} idx file, found rank ${buf[3]}`);
  const headerBytes = 4 + 4 * rank;
  if (buf.length < headerBytes) return null;
  return { dims: Array.from({ length: rank }, (_, i) => buf.readUInt32BE(4 + 4 * i)), headerBytes };
}

/** All labels of a labels file (small: one byte per image). */
export async function readIdxLabels(file: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of await openIdx(file)) chunks.push(c as Buffer);
  const buf = Buffer.concat(chunks);
  const h = parseHeader(buf, file, 1);
  if (!h) throw new IdxError(`${file}: truncated header`);
  const n = h.dims[0]!;
  if (buf.length - h.headerBytes < n) throw new IdxError(`${file}: truncated: header says ${n} labels, file has ${buf.length - h.headerBytes}`);
  return new Uint8Array(buf.subarray(h.headerBytes, h.headerBytes + n));
}

export interface IdxImage {
  index: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
}

/** Streams the images of an idx3 file one at a time; memory holds one chunk, not the file. */
export async function* readIdxImages(file: string, signal?: AbortSignal): AsyncGenerator<IdxImage, void, undefined> {
  let carry: Buffer = Buffer.alloc(0);
  let header: IdxHeader | null = null;
  let index = 0;
  let count = 0;
  let size = 0;
  for await (const chunk of await openIdx(file)) {
    signal?.throwIfAborted();
    carry = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    if (!header) {
      header = parseHeader(carry, file, 3);
      if (!header) continue;
      count = header.dims[0]!;
      size = header.dims[1]! * header.dims[2]!;
      carry = carry.subarray(header.headerBytes);
    }
    let off = 0;
    while (index < count && carry.length - off >= size) {
      yield { index, rows: header.dims[1]!, cols: header.dims[2]!, pixels: new Uint8Array(carry.subarray(off, off + size)) };
      off += size;
      index++;
    }
    carry = carry.subarray(off);
  }
  if (!header) throw new IdxError(`${file}: truncated header`);
  if (index < count) throw new IdxError(`${file}: truncated: header says ${count} images, file has ${index}`);
}

export interface MaterializeOptions {
  classes: readonly string[];
  /** Remembers which idx files the PNGs came from; when those change, the PNGs are written afresh. */
  sourceFile: string;
  signal?: AbortSignal;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes every image of every idx pair in `dir` to `outRoot/<split>/<class>/<n>.png`. Files are written to
 * `tmpDir` and renamed into place, so an existing PNG is always complete and a rerun skips it.
 */
export async function materializeIdx(dir: string, outRoot: string, tmpDir: string, opts: MaterializeOptions): Promise<{ written: number; existing: number }> {
  const pairs = await findIdxPairs(dir);
  const stats = await Promise.all(pairs.flatMap((p) => [p.images, p.labels]).map(async (f) => ({ file: f, ...pick(await stat(f)) })));
  const fingerprint = JSON.stringify({ classes: opts.classes, files: stats });
  const previous = await readFile(opts.sourceFile, 'utf8').catch(() => null);
  if (previous !== fingerprint) {
    // New or changed idx files: PNGs from before would be skipped as 'already written', so drop them.
    await rm(outRoot, { recursive: true, force: true });
    await mkdir(dirname(opts.sourceFile), { recursive: true });
    await writeFile(opts.sourceFile, fingerprint);
  }
  const labelsByPair = await Promise.all(pairs.map((p) => readIdxLabels(p.labels)));
  const total = labelsByPair.reduce((s, l) => s + l.length, 0);
  await mkdir(tmpDir, { recursive: true });
  for (const p of pairs) for (const c of opts.classes) await mkdir(join(outRoot, p.split, classFolder(c)), { recursive: true });
  let written = 0;
  let existing = 0;
  let done = 0;
  for (const [pi, pair] of pairs.entries()) {
    const labels = labelsByPair[pi]!;
    const images = readIdxImages(pair.images, opts.signal);
    await forEachConcurrent(
      checkCount(images, labels.length, pair),
      opts.concurrency ?? 8,
      async (img) => {
        const label = labels[img.index]!;
        const cls = opts.classes[label];
        if (cls === undefined) throw new IdxError(`${pair.labels}: label ${label} of image ${img.index} is not one of the ${opts.classes.length} classes`);
        const target = join(outRoot, pair.split, classFolder(cls), `${img.index}.png`);
        if (await access(target).then(() => true, () => false)) existing++;
        else {
          // b-w output keeps the PNG single-channel; sharp would otherwise widen raw gray to sRGB.
          const png = await sharp(img.pixels, { raw: { width: img.cols, height: img.rows, channels: 1 } }).toColourspace('b-w').png().toBuffer();
          const tmp = join(tmpDir, `${pair.split}-${img.index}.png`);
          await writeFile(tmp, png);
          await rename(tmp, target);
          written++;
        }
        opts.onProgress?.(++done, total);
      },
      opts.signal,
    );
  }
  return { written, existing };
}

const pick = (st: { size: number; mtimeMs: number }) => ({ bytes: st.size, mtimeMs: st.mtimeMs });

/** Passes images through, failing if the images file holds more images than the labels file has labels. */
async function* checkCount(images: AsyncGenerator<IdxImage>, labels: number, pair: IdxPair): AsyncGenerator<IdxImage> {
  let n = 0;
  for await (const img of images) {
    if (++n > labels) throw new IdxError(`${pair.images}: has more images than ${pair.labels} has labels (${labels})`);
    yield img;
  }
  if (n < labels) throw new IdxError(`${pair.images}: has ${n} images but ${pair.labels} has ${labels} labels`);
}
