// Curation: duplicate search (against brute force, and at 100k scale), edits with undo, the seeded
// stratified split, stats, and cached thumbnails.
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { Catalog } from '../../native-worker/data/catalog/catalog.ts';
import { FLAG_EXCLUDED } from '../../native-worker/data/catalog/types.ts';
import { exactDuplicateGroups, groupNearHashes, hammingHex, nearDuplicateGroups } from '../../native-worker/data/curate/dupes.ts';
import { moveToSplit, relabel, setExcluded, stratifiedSplit, undoLastEdit } from '../../native-worker/data/curate/edits.ts';
import { type SizeGroup, sizeOutliers } from '../../native-worker/data/curate/size-outliers.ts';
import { datasetStats } from '../../native-worker/data/curate/stats.ts';
import { thumbnail } from '../../native-worker/data/curate/thumbs.ts';
import { importDataset } from '../../native-worker/data/import/importer.ts';
import { buildManifest } from '../../native-worker/data/manifest.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { PLANTED, photo, plantFolder, removeDir, tempDir } from '../helpers/images.ts';

const hex = (hi: number, lo: number) => (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');

/** Random hashes plus copies of some with a few bits flipped. */
function hashesWithNearCopies(n: number, copies: number, maxFlips: number, rng: Rng): string[] {
  const hashes = Array.from({ length: n }, () => hex(rng.nextU32(), rng.nextU32()));
  for (let c = 0; c < copies; c++) {
    let [hi, lo] = [parseInt(hashes[c]!.slice(0, 8), 16), parseInt(hashes[c]!.slice(8), 16)];
    const flips = rng.int(1, maxFlips + 1);
    const bits = new Set<number>();
    while (bits.size < flips) bits.add(rng.int(0, 64));
    for (const b of bits) {
      if (b < 32) hi ^= 1 << b;
      else lo ^= 1 << (b - 32);
    }
    hashes.push(hex(hi, lo));
  }
  return hashes;
}

/** Connected components under distance <= t, by comparing every pair. */
function bruteForceGroups(hashes: readonly string[], t: number): string[] {
  const parent = hashes.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  for (let i = 0; i < hashes.length; i++) for (let j = i + 1; j < hashes.length; j++) if (hammingHex(hashes[i]!, hashes[j]!) <= t) parent[find(j)] = find(i);
  const groups = new Map<number, number[]>();
  hashes.forEach((_, i) => groups.set(find(i), [...(groups.get(find(i)) ?? []), i]));
  return canonical([...groups.values()].filter((g) => g.length > 1));
}
const canonical = (groups: number[][]) => groups.map((g) => [...g].sort((a, b) => a - b).join(',')).sort();

describe('near-duplicate search', () => {
  test('matches brute force for thresholds 0 to 12', () => {
    const rng = new Rng(7);
    const hashes = hashesWithNearCopies(1500, 300, 12, rng);
    hashes.push(hashes[0]!, hashes[0]!); // identical hashes collapse before bucketing
    for (const t of [0, 3, 4, 8, 12]) assert.deepEqual(canonical(groupNearHashes(hashes, t)), bruteForceGroups(hashes, t), `threshold ${t}`);
  });

  test('100k hashes take well under the time of comparing all pairs', (t) => {
    const rng = new Rng(11);
    const hashes = hashesWithNearCopies(100_000, 2000, 8, rng);
    const start = performance.now();
    const groups = groupNearHashes(hashes, 8);
    const ms = performance.now() - start;
    t.diagnostic(`100k hashes grouped in ${ms.toFixed(0)} ms`);
    // Every planted copy is found with its original (random 64-bit hashes are ~32 bits apart, never <= 8).
    const inGroup = new Set(groups.flat());
    for (let c = 0; c < 2000; c++) assert.ok(inGroup.has(c) && inGroup.has(100_000 + c), `copy ${c}`);
    assert.equal(groups.length, 2000);
    assert.ok(ms < 10_000, `${ms} ms`);
  });
});

describe('curating the planted dataset', () => {
  let root: string;
  let ws: string;
  let catalog: Catalog;
  before(async () => {
    root = tempDir('curate');
    ws = tempDir('ws');
    await plantFolder(root);
    catalog = Catalog.open(ws);
    await importDataset(catalog, { source: root, name: 'pets' });
  });
  after(() => {
    catalog.close();
    removeDir(root);
    removeDir(ws);
  });

  test('exact and near duplicate groups list the planted copies', () => {
    const ds = catalog.requireDataset('pets');
    assert.deepEqual(exactDuplicateGroups(catalog, ds.id).map((g) => g.images.map((i) => i.path)), PLANTED.exactGroups);
    assert.deepEqual(nearDuplicateGroups(catalog, ds.id).map((g) => g.images.map((i) => i.path)), PLANTED.nearGroups);
  });

  test('stats count classes, splits, corrupt files and size outliers', () => {
    const s = datasetStats(catalog, 'pets');
    assert.deepEqual([s.images, s.corrupt, s.excluded], [PLANTED.images, 4, 0]);
    assert.deepEqual(s.splits, { train: PLANTED.images, val: 0, test: 0 });
    assert.deepEqual(s.classes.map((c) => [c.name, c.index, c.total]), [['cat', 0, 10], ['dog', 1, 3], ['ñandú', 2, 1]]);
    assert.deepEqual(s.imbalance, { smallest: 'ñandú', largest: 'cat', ratio: 10 });
    assert.deepEqual(s.formats, { jpeg: 8, png: 5, webp: 1 });
    // 30x40 to 200x150: a spread of sizes with no image far from the rest (the smallest is 1/4 of the median
    // area of 80x60, and the spread of the others makes that ordinary here).
    assert.deepEqual([s.outliers.small, s.outliers.large, s.outliers.aspect, s.outliers.examples], [0, 0, 0, []]);
    assert.deepEqual(s.outliers.typical, { width: 100, height: 75 });
    assert.deepEqual(s.belowInputSize, { inputSize: 224, count: 14 });
    assert.deepEqual(datasetStats(catalog, 'pets', { inputSize: 64 }).belowInputSize, { inputSize: 64, count: 4 }, 'shorter side below 64: 30x40, 50x50, 70x50, 80x60');
  });
  test('relabel, move, exclude: logged, applied, and undone newest first', () => {
    const ds = catalog.requireDataset('pets');
    const label = (p: string) => catalog.imageByPath(ds.id, p)!.label;
    relabel(catalog, 'pets', ['cat/a.jpg', 'cat/b.png'], 'lynx');
    moveToSplit(catalog, 'pets', ['dog/gray.png'], 'test');
    setExcluded(catalog, 'pets', ['dog/alpha.png'], true);
    assert.deepEqual([label('cat/a.jpg'), label('cat/b.png')], ['lynx', 'lynx']);
    assert.equal(catalog.imageByPath(ds.id, 'dog/gray.png')!.split, 'test');
    const m = buildManifest(catalog, 'pets');
    assert.deepEqual(m.classes, ['cat', 'dog', 'lynx', 'ñandú']);
    assert.equal(m.items.find((i) => i.path === 'cat/a.jpg')!.label, 2);
    assert.equal(m.items.some((i) => i.path === 'dog/alpha.png'), false, 'excluded images are not in manifests');
    assert.deepEqual(catalog.edits(ds.id).map((e) => [e.kind, e.changes, e.undoneAt]), [['exclude', 1, null], ['move', 1, null], ['relabel', 2, null]]);
    assert.equal(relabel(catalog, 'pets', ['cat/a.jpg'], 'lynx'), null, 'a no-op edit is not logged');

    assert.equal(undoLastEdit(catalog, 'pets')!.kind, 'exclude');
    assert.equal(catalog.imageByPath(ds.id, 'dog/alpha.png')!.flags & FLAG_EXCLUDED, 0);
    assert.equal(undoLastEdit(catalog, 'pets')!.kind, 'move');
    assert.equal(catalog.imageByPath(ds.id, 'dog/gray.png')!.split, 'train');
    assert.equal(undoLastEdit(catalog, 'pets')!.kind, 'relabel');
    assert.deepEqual([label('cat/a.jpg'), label('cat/b.png')], ['cat', 'cat']);
    assert.deepEqual(catalog.labels(ds.id).map((l) => l.name), PLANTED.classes, 'the class the relabel created is gone');
    assert.equal(undoLastEdit(catalog, 'pets'), null);
    assert.throws(() => relabel(catalog, 'pets', ['cat/nope.jpg'], 'x'), /no image 'cat\/nope.jpg'/);
  });
});

describe('stratified split', () => {
  let ws: string;
  let root: string;
  let catalog: Catalog;
  before(async () => {
    root = tempDir('strat');
    ws = tempDir('ws');
    // 3 classes of 40, 20 and 10 images.
    for (const [c, n] of [['a', 40], ['b', 20], ['c', 10]] as const) {
      mkdirSync(join(root, c));
      for (let i = 0; i < n; i++) await photo(i * 7 + c.charCodeAt(0), 16, 16).png().toFile(join(root, c, `${i}.png`));
    }
    catalog = Catalog.open(ws);
    await importDataset(catalog, { source: root, name: 'strat' });
  });
  after(() => {
    catalog.close();
    removeDir(root);
    removeDir(ws);
  });

  const valPaths = () => catalog.images(catalog.requireDataset('strat').id, "i.split = 'val'").map((i) => i.path);

  test('takes the fraction from every class, the same way for the same seed', () => {
    const r = stratifiedSplit(catalog, 'strat', { val: 0.1, seed: 0 });
    assert.deepEqual(r.counts, { train: 63, val: 7, test: 0 });
    const first = valPaths();
    assert.deepEqual(first.map((p) => p[0]).sort().join(''), 'aaaabbc');
    undoLastEdit(catalog, 'strat');
    assert.deepEqual(valPaths(), []);
    stratifiedSplit(catalog, 'strat', { val: 0.1, seed: 0 });
    assert.deepEqual(valPaths(), first, 'same seed, same split');
    stratifiedSplit(catalog, 'strat', { val: 0.1, seed: 1 });
    assert.notDeepEqual(valPaths(), first, 'another seed, another split');
  });

  test('with a test fraction, three splits per class', () => {
    const r = stratifiedSplit(catalog, 'strat', { val: 0.2, test: 0.1, seed: 3 });
    assert.deepEqual(r.counts, { train: 49, val: 14, test: 7 });
    assert.throws(() => stratifiedSplit(catalog, 'strat', { val: 0.6, test: 0.5, seed: 0 }), /must leave something to train on/);
    assert.throws(() => stratifiedSplit(catalog, 'strat', { val: 1.5, seed: 0 }), /--val must be a fraction/);
  });
});

test('thumbnails are cached by content hash, oriented, and shared by duplicates', async () => {
  const root = tempDir('thumbs');
  const ws = tempDir('ws');
  const catalog = Catalog.open(ws);
  try {
    await plantFolder(root);
    await importDataset(catalog, { source: root, name: 'pets' });
    const ds = catalog.requireDataset('pets');
    const img = (p: string) => catalog.imageByPath(ds.id, p)!;
    const a = await thumbnail(catalog, ds, img('cat/a.jpg'), 64);
    assert.equal(a, join(ws, 'cache', 'thumbs', img('cat/a.jpg').contentHash!.slice(0, 2), `${img('cat/a.jpg').contentHash}-64.webp`));
    const meta = await sharp(a!).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 64, 48]);
    const mtime = statSync(a!).mtimeMs;
    assert.equal(await thumbnail(catalog, ds, img('dog/a-again.jpg'), 64), a, 'identical files share a thumbnail');
    assert.equal(statSync(a!).mtimeMs, mtime, 'served from the cache');
    const rotated = await sharp((await thumbnail(catalog, ds, img('cat/rotated.jpg'), 64))!).metadata();
    assert.deepEqual([rotated.width, rotated.height], [30, 40], 'EXIF orientation applied, never enlarged');
    assert.equal(await thumbnail(catalog, ds, img('dog/truncated.jpg')), null);
  } finally {
    catalog.close();
    removeDir(root);
    removeDir(ws);
  }
});

describe('size outliers against the dataset itself', () => {
  const groups = (...g: [number, number, number][]): SizeGroup[] => g.map(([width, height, n]) => ({ width, height, n }));

  test('images all of one size (Fashion-MNIST) have none', () => {
    const r = sizeOutliers(groups([28, 28, 70_000]));
    assert.deepEqual([r.counts, r.typical, r.groups], [{ small: 0, large: 0, aspect: 0 }, { width: 28, height: 28 }, []]);
    // Nor do a few images a little off that size (within 2x a side).
    assert.deepEqual(sizeOutliers(groups([28, 28, 1000], [32, 32, 10], [20, 20, 3])).counts, { small: 0, large: 0, aspect: 0 });
  });

  test('photos of varied sizes flag the panorama, the thumbnail and the huge scan, most extreme first', () => {
    const photos: [number, number, number][] = [];
    for (let w = 480; w <= 1280; w += 32) photos.push([w, Math.round((w * 3) / 4), 20], [Math.round((w * 3) / 4), w, 5]);
    const r = sizeOutliers(groups(...photos, [64, 48, 2], [9000, 6750, 1], [1600, 200, 1]));
    assert.deepEqual(r.counts, { small: 2, large: 1, aspect: 1 });
    assert.deepEqual(r.groups.map((g) => [g.width, g.height, g.reason]), [[1600, 200, 'aspect'], [64, 48, 'small'], [9000, 6750, 'large']]);
  });

  test('a uniform dataset flags the few images far from its size', () => {
    const r = sizeOutliers(groups([28, 28, 1000], [112, 112, 4], [10, 10, 2]));
    assert.deepEqual(r.counts, { small: 2, large: 4, aspect: 0 });
  });
});
