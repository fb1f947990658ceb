// Importing datasets: a planted class-folder tree with every bad-file kind, rescans, split folders,
// unlabeled folders, CSV/TSV lists, unreadable files, progress and cancellation.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Catalog } from '../../native-worker/data/catalog/catalog.ts';
import { FLAG_CORRUPT } from '../../native-worker/data/catalog/types.ts';
import { relabel } from '../../native-worker/data/curate/edits.ts';
import { type ImportSummary, importDataset } from '../../native-worker/data/import/importer.ts';
import { PLANTED, photo, plantFolder, removeDir, tempDir } from '../helpers/images.ts';

const byPath = (issues: readonly { path: string; reason: string }[]) => Object.fromEntries(issues.map((i) => [i.path, i.reason]));

describe('importing a planted class-folder tree', () => {
  let root: string;
  let ws: string;
  let catalog: Catalog;
  let summary: ImportSummary;

  before(async () => {
    root = tempDir('planted');
    ws = tempDir('ws');
    await plantFolder(root);
    catalog = Catalog.open(ws);
    summary = await importDataset(catalog, { source: root, name: 'pets' });
  });
  after(() => {
    catalog.close();
    removeDir(root);
    removeDir(ws);
  });

  test('counts images, classes and duplicate groups exactly', () => {
    assert.equal(summary.kind, 'folder');
    assert.equal(summary.images, PLANTED.images);
    assert.equal(summary.classes, PLANTED.classes.length);
    assert.equal(summary.added, PLANTED.images + Object.keys(PLANTED.corrupt).length);
    assert.equal(summary.exactDuplicateGroups, PLANTED.exactGroups.length);
    assert.equal(summary.nearDuplicateGroups, PLANTED.nearGroups.length);
    const ds = catalog.requireDataset('pets');
    assert.deepEqual(catalog.labels(ds.id).map((l) => l.name), PLANTED.classes);
  });

  test('reports every bad file with its reason, and none of them is fatal', () => {
    assert.deepEqual(byPath(summary.corrupt), PLANTED.corrupt);
    assert.deepEqual(byPath(summary.skipped), PLANTED.skipped);
    const bomb = summary.corrupt.find((c) => c.path === 'dog/bomb.png')!;
    assert.match(bomb.detail, /12000x12000/);
  });

  test('records oriented size, channels and format of unusual images', () => {
    const ds = catalog.requireDataset('pets');
    const img = (p: string) => catalog.imageByPath(ds.id, p)!;
    // Stored 40x30 with EXIF orientation 6: the catalog keeps the size as displayed.
    assert.deepEqual([img('cat/rotated.jpg').width, img('cat/rotated.jpg').height], [30, 40]);
    assert.deepEqual([img('cat/cmyk.jpg').channels, img('cat/cmyk.jpg').format], [4, 'jpeg']);
    assert.deepEqual([img('cat/gray16.png').channels, img('cat/gray16.png').width], [1, 90]);
    assert.equal(img('dog/gray.png').channels, 1);
    assert.equal(img('dog/alpha.png').channels, 4);
    assert.equal(img('ñandú/h.webp').format, 'webp');
    assert.equal(img('ñandú/h.webp').label, 'ñandú');
    assert.equal(img('cat/café ☕.png').label, 'cat');
    // Deeper folders belong to the class folder they are in.
    assert.equal(img('cat/nested/deeper/c.jpg').label, 'cat');
    assert.equal(img('dog/truncated.jpg').flags & FLAG_CORRUPT, FLAG_CORRUPT);
    assert.match(img('cat/a.jpg').contentHash!, /^[0-9a-f]{40}$/);
    assert.match(img('cat/a.jpg').phash!, /^[0-9a-f]{16}$/);
  });

  test('a rescan picks up added, changed and removed files and keeps curation', async () => {
    const ds = catalog.requireDataset('pets');
    const before = catalog.imageByPath(ds.id, 'cat/b.png')!;
    relabel(catalog, 'pets', ['cat/nested/deeper/c.jpg'], 'dog');
    await photo(50, 60, 60).png().toFile(join(root, 'dog', 'new.png'));
    // Same path, different picture: a changed file, not a new one.
    await photo(51, 120, 90).jpeg().toFile(join(root, 'cat', 'nested', 'deeper', 'c.jpg'));
    rmSync(join(root, 'cat', 'a-copy.jpg'));
    const s = await importDataset(catalog, { source: root, name: 'pets' });
    assert.deepEqual([s.added, s.changed, s.removed], [1, 1, 1]);
    assert.equal(s.unchanged, PLANTED.images + Object.keys(PLANTED.corrupt).length - 2);
    assert.equal(s.images, PLANTED.images);
    assert.equal(s.exactDuplicateGroups, 1, 'a.jpg and dog/a-again.jpg are still identical');
    const c = catalog.imageByPath(ds.id, 'cat/nested/deeper/c.jpg')!;
    assert.equal(c.label, 'dog', 'the relabel survives a content change');
    assert.equal(catalog.imageByPath(ds.id, 'cat/b.png')!.id, before.id, 'unchanged rows are kept, not rewritten');
    assert.equal(catalog.imageByPath(ds.id, 'cat/a-copy.jpg'), undefined);
  });

  test('a second dataset name cannot reuse an existing name for another source', async () => {
    const other = tempDir('other');
    try {
      await assert.rejects(importDataset(catalog, { source: other, name: 'pets' }), /already exists for folder/);
    } finally {
      removeDir(other);
    }
  });
});

describe('other layouts and sources', () => {
  let ws: string;
  let catalog: Catalog;
  before(() => {
    ws = tempDir('ws');
    catalog = Catalog.open(ws);
  });
  after(() => {
    catalog.close();
    removeDir(ws);
  });

  test('train/val/test folders become splits, other top-level folders are reported', async () => {
    const root = tempDir('splits');
    try {
      for (const [split, cls, n] of [['train', 'a', 3], ['train', 'b', 2], ['Val', 'a', 1], ['test', 'b', 2]] as const) {
        mkdirSync(join(root, split, cls), { recursive: true });
        for (let i = 0; i < n; i++) await photo(i + n * 10, 32, 32).png().toFile(join(root, split, cls, `${i}.png`));
      }
      mkdirSync(join(root, 'extras'));
      await photo(99, 32, 32).png().toFile(join(root, 'extras', 'x.png'));
      const s = await importDataset(catalog, { source: root, name: 'splits' });
      assert.equal(s.images, 8);
      assert.deepEqual(byPath(s.skipped), { 'extras/x.png': 'outside-split' });
      const ds = catalog.requireDataset('splits');
      const counts = catalog.db.prepare('SELECT split, COUNT(*) AS n FROM images WHERE dataset_id = ? GROUP BY split ORDER BY split').all(ds.id);
      assert.deepEqual(counts, [{ split: 'test', n: 2 }, { split: 'train', n: 5 }, { split: 'val', n: 1 }]);
    } finally {
      removeDir(root);
    }
  });

  test('an unlabeled folder imports every image without labels', async () => {
    const root = tempDir('unlabeled');
    try {
      mkdirSync(join(root, 'a', 'b'), { recursive: true });
      await photo(1, 40, 30).jpeg().toFile(join(root, 'top.jpg'));
      await photo(2, 40, 30).jpeg().toFile(join(root, 'a', 'b', 'deep.jpg'));
      const s = await importDataset(catalog, { source: root, name: 'raw', kind: 'unlabeled' });
      assert.deepEqual([s.images, s.classes, s.skipped.length], [2, 0, 0]);
      const ds = catalog.requireDataset('raw');
      assert.deepEqual(catalog.images(ds.id).map((i) => [i.path, i.label, i.split]), [['a/b/deep.jpg', null, 'train'], ['top.jpg', null, 'train']]);
    } finally {
      removeDir(root);
    }
  });

  test('CSV and TSV lists: headers, quotes, splits, and every bad row reported', async () => {
    const root = tempDir('csv');
    try {
      mkdirSync(join(root, 'img'));
      for (let i = 0; i < 4; i++) await photo(i + 200, 40, 40).png().toFile(join(root, 'img', `${i}.png`));
      writeFileSync(join(root, 'img', 'readme.txt'), 'x');
      writeFileSync(
        join(root, 'list.csv'),
        [
          'filename,class,split',
          'img/0.png,cat,train',
          '"img/1.png","big ""cat""",val',
          `${join(root, 'img', '2.png')},dog,`,
          'img/3.png,,test',
          'img/0.png,dog,train',
          'img/missing.png,dog,train',
          'img/readme.txt,dog,train',
          'img/3.png,dog,holdout',
          '../outside.png,dog,train',
          ',dog,train',
        ].join('\r\n'),
      );
      const s = await importDataset(catalog, { source: join(root, 'list.csv'), name: 'listed' });
      assert.equal(s.kind, 'csv');
      assert.equal(s.images, 4);
      assert.deepEqual(byPath(s.skipped), {
        'img/missing.png': 'missing',
        'img/readme.txt': 'not-image',
        'list.csv:6': 'duplicate-row',
        'list.csv:9': 'bad-row',
        'list.csv:10': 'outside-root',
        'list.csv:11': 'bad-row',
      });
      const ds = catalog.requireDataset('listed');
      assert.deepEqual(
        catalog.images(ds.id).map((i) => [i.path, i.label, i.split]),
        [['img/0.png', 'cat', 'train'], ['img/1.png', 'big "cat"', 'val'], ['img/2.png', 'dog', 'train'], ['img/3.png', null, 'test']],
      );

      writeFileSync(join(root, 'list.tsv'), 'img/0.png\tcat\nimg/1.png\tdog\n');
      const t = await importDataset(catalog, { source: join(root, 'list.tsv'), name: 'tabbed' });
      assert.deepEqual([t.images, t.classes, t.skipped.length], [2, 2, 0]);
    } finally {
      removeDir(root);
    }
  });

  test('progress is reported and an aborted import leaves a consistent catalog that a rerun completes', async () => {
    const root = tempDir('abort');
    try {
      mkdirSync(join(root, 'c'));
      for (let i = 0; i < 60; i++) await photo(i, 24, 24).png().toFile(join(root, 'c', `${i}.png`));
      const abort = new AbortController();
      const seen: number[] = [];
      await assert.rejects(
        importDataset(catalog, {
          source: root,
          name: 'aborted',
          batchSize: 5,
          concurrency: 2,
          progressEveryMs: 0,
          signal: abort.signal,
          onProgress: (p) => {
            seen.push(p.done);
            if (p.done >= 20) abort.abort(new Error('user cancelled'));
          },
        }),
        /user cancelled/,
      );
      assert.ok(seen.length > 0);
      const ds = catalog.requireDataset('aborted');
      assert.equal(ds.scanState, 'scanning');
      const partial = catalog.images(ds.id).length;
      assert.ok(partial >= 20 && partial < 60, `kept the ${partial} analysed images`);
      const s = await importDataset(catalog, { source: root, name: 'aborted' });
      assert.deepEqual([s.images, s.added, s.unchanged], [60, 60 - partial, partial]);
      assert.equal(catalog.requireDataset('aborted').scanState, 'complete');
    } finally {
      removeDir(root);
    }
  });

  test('moving a file to another class folder is a removal plus an addition', async () => {
    const root = tempDir('move');
    try {
      for (const c of ['a', 'b']) mkdirSync(join(root, c));
      await photo(1, 30, 30).png().toFile(join(root, 'a', 'x.png'));
      await importDataset(catalog, { source: root, name: 'moving' });
      renameSync(join(root, 'a', 'x.png'), join(root, 'b', 'x.png'));
      const s = await importDataset(catalog, { source: root, name: 'moving' });
      assert.deepEqual([s.added, s.removed, s.classes], [1, 1, 1]);
      const ds = catalog.requireDataset('moving');
      assert.deepEqual(catalog.images(ds.id).map((i) => [i.path, i.label]), [['b/x.png', 'b']]);
    } finally {
      removeDir(root);
    }
  });
});

test('a file that cannot be read is reported as unreadable', async () => {
  const root = tempDir('perm');
  const ws = tempDir('ws');
  try {
    mkdirSync(join(root, 'c'));
    await photo(1, 20, 20).png().toFile(join(root, 'c', 'ok.png'));
    await photo(2, 20, 20).png().toFile(join(root, 'c', 'secret.png'));
    chmodSync(join(root, 'c', 'secret.png'), 0o000);
    let summary: ImportSummary;
    const nobody = { uid: 65534, gid: 65534 };
    // root reads anything: import as 'nobody' through the CLI when that user can run this checkout.
    const asNobody =
      process.getuid?.() === 0 && spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(join(process.cwd(), 'bin', 'cnx.mjs'))})`], nobody).status === 0;
    if (asNobody) {
      for (const d of [root, join(root, 'c'), ws]) chmodSync(d, 0o777);
      chmodSync(join(root, 'c', 'ok.png'), 0o644);
      const r = spawnSync(process.execPath, ['bin/cnx.mjs', 'dataset', 'import', root, '--json', '--workspace', ws], { ...nobody, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      summary = JSON.parse(r.stdout) as ImportSummary;
    } else {
      if (process.getuid?.() === 0) {
        // Without a user to switch to, make the read itself fail: /proc/self/mem at offset 0 is EIO.
        rmSync(join(root, 'c', 'secret.png'));
        symlinkSync('/proc/self/mem', join(root, 'c', 'secret.png'));
      }
      const catalog = Catalog.open(ws);
      summary = await importDataset(catalog, { source: root });
      catalog.close();
    }
    assert.equal(summary.images, 1);
    assert.deepEqual(summary.corrupt.map((c) => [c.path, c.reason]), [['c/secret.png', 'unreadable']]);
    assert.match(summary.corrupt[0]!.detail, /^cannot read file \((EACCES|EIO)\)$/);
  } finally {
    removeDir(root);
    removeDir(ws);
  }
});
