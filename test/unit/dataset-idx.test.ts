// Fashion-MNIST idx import on a slice of Debian's dataset-fashion-mnist: the idx files are decoded by us,
// written as PNGs in the workspace and cataloged with the 10 class names in their official order.
import assert from 'node:assert/strict';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { Catalog } from '../../native-worker/data/catalog/catalog.ts';
import { FASHION_MNIST_CLASSES, classFolder } from '../../native-worker/data/import/idx.ts';
import { type ImportSummary, importDataset } from '../../native-worker/data/import/importer.ts';
import { buildManifest } from '../../native-worker/data/manifest.ts';
import { main } from '../../native-worker/cli.ts';
import { removeDir, tempDir } from '../helpers/images.ts';

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
const TRAIN = 50;
const TEST = 20;

/** The dataset, or null after skipping the test (a failure under CI, which installs it). */
function needFashionMnist(t: TestContext): string | null {
  if (existsSync(join(FASHION_DIR, 'train-images-idx3-ubyte.gz'))) return FASHION_DIR;
  const reason = `${FASHION_DIR} not found; apt-get install dataset-fashion-mnist`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`);
  t.skip(reason);
  return null;
}

/** The first `n` bytes of a gzip file's content, without inflating the rest. */
async function gunzipHead(file: string, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  const stream = createReadStream(file).pipe(createGunzip());
  for await (const c of stream) {
    chunks.push(c as Buffer);
    have += (c as Buffer).length;
    if (have >= n) break;
  }
  stream.destroy();
  return Buffer.concat(chunks).subarray(0, n);
}

/** Writes the first `count` records of an idx pair (header count patched) as gzipped idx files. */
async function sliceIdx(from: string, to: string, prefix: string, count: number): Promise<{ images: Buffer; labels: Buffer }> {
  const images = await gunzipHead(join(from, `${prefix}-images-idx3-ubyte.gz`), 16 + count * 784);
  const labels = await gunzipHead(join(from, `${prefix}-labels-idx1-ubyte.gz`), 8 + count);
  images.writeUInt32BE(count, 4);
  labels.writeUInt32BE(count, 4);
  writeFileSync(join(to, `${prefix}-images-idx3-ubyte.gz`), gzipSync(images));
  writeFileSync(join(to, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(labels));
  return { images: images.subarray(16), labels: labels.subarray(8) };
}

describe('Fashion-MNIST idx import', () => {
  let src: string;
  let ws: string;
  let catalog: Catalog;
  let summary: ImportSummary;
  let train: { images: Buffer; labels: Buffer };
  let testSlice: { images: Buffer; labels: Buffer };
  let available = true;

  before(async () => {
    available = existsSync(join(FASHION_DIR, 'train-images-idx3-ubyte.gz'));
    if (!available) return;
    src = join(tempDir('fashion'), 'fashion-mnist-slice');
    mkdirSync(src);
    ws = tempDir('ws');
    train = await sliceIdx(FASHION_DIR, src, 'train', TRAIN);
    testSlice = await sliceIdx(FASHION_DIR, src, 't10k', TEST);
    catalog = Catalog.open(ws);
    summary = await importDataset(catalog, { source: src, name: 'fashion' });
  });
  after(() => {
    if (!available) return;
    catalog.close();
    removeDir(join(src, '..'));
    removeDir(ws);
  });

  test('catalogs every image with its split and Fashion-MNIST class', (t) => {
    if (!needFashionMnist(t)) return;
    assert.equal(summary.kind, 'idx');
    assert.equal(summary.root, join(ws, 'datasets', 'fashion', 'files'));
    assert.deepEqual([summary.images, summary.corrupt.length, summary.skipped.length], [TRAIN + TEST, 0, 0]);
    const ds = catalog.requireDataset('fashion');
    // Class indices are the official ones (T-shirt/top = 0 ... Ankle boot = 9), not alphabetical.
    for (const l of catalog.labels(ds.id)) assert.equal(l.name, FASHION_MNIST_CLASSES[l.ordinal!]);
    for (const [split, dir, slice, n] of [['train', 'train', train, TRAIN], ['test', 't10k', testSlice, TEST]] as const) {
      for (let i = 0; i < n; i++) {
        const cls = FASHION_MNIST_CLASSES[slice.labels[i]!]!;
        const img = catalog.imageByPath(ds.id, `${split}/${classFolder(cls)}/${i}.png`);
        assert.ok(img, `${dir} image ${i}`);
        assert.deepEqual([img.label, img.split, img.width, img.height, img.channels, img.format], [cls, split, 28, 28, 1, 'png']);
      }
    }
  });

  test('the PNGs hold exactly the idx pixels', async (t) => {
    if (!needFashionMnist(t)) return;
    for (const i of [0, 1, TRAIN - 1]) {
      const cls = FASHION_MNIST_CLASSES[train.labels[i]!]!;
      const file = join(summary.root, 'train', classFolder(cls), `${i}.png`);
      assert.equal((await sharp(file).metadata()).channels, 1);
      const { data, info } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height, info.channels], [28, 28, 1]);
      assert.ok(data.equals(train.images.subarray(i * 784, (i + 1) * 784)), `image ${i} pixels`);
    }
  });

  test('manifest labels are the idx labels', (t) => {
    if (!needFashionMnist(t)) return;
    const m = buildManifest(catalog, 'fashion');
    assert.deepEqual(m.classes, [...FASHION_MNIST_CLASSES].filter((c) => m.classes.includes(c)), 'official class order');
    for (const item of m.items) {
      const [split, , file] = item.path.split('/');
      const i = Number(file!.replace('.png', ''));
      const want = (split === 'train' ? train : testSlice).labels[i]!;
      assert.equal(m.classes[item.label!], FASHION_MNIST_CLASSES[want], item.path);
    }
  });

  test('cnx dataset stats: no size outliers (every image is 28x28); the input-size warning once, with the count', async (t) => {
    if (!needFashionMnist(t)) return;
    const lines: string[] = [];
    const log = console.log;
    console.log = (m: string) => lines.push(m);
    try {
      assert.equal(await main(['dataset', 'stats', 'fashion', '--workspace', ws]), 0);
      assert.equal(await main(['dataset', 'stats', 'fashion', '--workspace', ws, '--input-size', '28']), 0);
    } finally {
      console.log = log;
    }
    const [at224, at28] = lines;
    assert.match(at224!, /typical 28x28\n  size outliers: none\n/);
    assert.doesNotMatch(at224!, /\(small\)|\d+ small/);
    assert.equal(at224!.match(/smaller than the/g)?.length, 1, at224);
    assert.match(at224!, new RegExp(`warning: all ${TRAIN + TEST} images are smaller than the 224 px input size`));
    assert.doesNotMatch(at28!, /warning/);
  });

  test('a rerun writes and analyses nothing again', async (t) => {
    if (!needFashionMnist(t)) return;
    const probe = join(summary.root, 'test', classFolder(FASHION_MNIST_CLASSES[testSlice.labels[0]!]!), '0.png');
    const mtime = statSync(probe).mtimeMs;
    const again = await importDataset(catalog, { source: src, name: 'fashion' });
    assert.deepEqual([again.added, again.changed, again.removed, again.unchanged], [0, 0, 0, TRAIN + TEST]);
    assert.equal(statSync(probe).mtimeMs, mtime);
  });

  test('replaced idx files are written out afresh, not mixed with the old PNGs', async (t) => {
    if (!needFashionMnist(t)) return;
    const other = join(src, '..', 'other');
    mkdirSync(other);
    const a = await sliceIdx(FASHION_DIR, other, 'train', 5);
    const first = await importDataset(catalog, { source: other, name: 'swapped', idxClasses: 'fashion-mnist' });
    assert.equal(first.images, 5);
    // Same file names, different images: labels shifted by one and pixels inverted.
    const labels = Buffer.concat([Buffer.from([0, 0, 8, 1, 0, 0, 0, 5]), Buffer.from(a.labels.map((l) => (l + 1) % 10))]);
    const images = Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28]), Buffer.from(a.images.map((v) => 255 - v))]);
    writeFileSync(join(other, 'train-labels-idx1-ubyte.gz'), gzipSync(labels));
    writeFileSync(join(other, 'train-images-idx3-ubyte.gz'), gzipSync(images));
    const second = await importDataset(catalog, { source: other, name: 'swapped' });
    assert.deepEqual([second.images, second.added, second.removed], [5, 5, 5], 'every image moved to the next class folder');
    const ds = catalog.requireDataset('swapped');
    const img = catalog.images(ds.id).find((i) => i.path.endsWith('/0.png'))!;
    assert.equal(img.label, FASHION_MNIST_CLASSES[(a.labels[0]! + 1) % 10]);
    const { data } = await sharp(join(ds.root, img.path)).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    assert.equal(data[0], 255 - a.images[0]!);
  });

  test('a truncated idx file is an error naming the file', async (t) => {
    if (!needFashionMnist(t)) return;
    const bad = join(src, '..', 'bad');
    mkdirSync(bad);
    const images = readFileSync(join(src, 'train-images-idx3-ubyte.gz'));
    writeFileSync(join(bad, 'train-labels-idx1-ubyte.gz'), readFileSync(join(src, 'train-labels-idx1-ubyte.gz')));
    // Header says TRAIN images; the data holds fewer.
    writeFileSync(join(bad, 'train-images-idx3-ubyte'), gunzipSync(images).subarray(0, 16 + 784 * 3 + 100));
    await assert.rejects(importDataset(catalog, { source: bad, name: 'bad', kind: 'idx' }), (e: Error) => {
      assert.match(e.message, /train-images-idx3-ubyte: truncated: header says 50 images, file has 3/);
      return true;
    });
    assert.equal(catalog.dataset('bad'), undefined, 'a failed first import leaves no empty dataset behind');
    assert.equal(existsSync(join(ws, 'datasets', 'bad')), false, 'nor its half-written PNGs');
  });
});
