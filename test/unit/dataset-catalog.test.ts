// The catalog database (schema versions, WAL), workspace resolution, and manifests: schema, canonical hash,
// export as frozen versions, and errors that name the file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { type Manifest, manifestHash, parseManifest, sealManifest } from '../../common/manifest.ts';
import { sha256 } from '../../common/sha256.ts';
import { CATALOG_FILE, Catalog } from '../../native-worker/data/catalog/catalog.ts';
import { SCHEMA_VERSION } from '../../native-worker/data/catalog/schema.ts';
import { setExcluded } from '../../native-worker/data/curate/edits.ts';
import { importDataset } from '../../native-worker/data/import/importer.ts';
import { exportManifest, readManifest } from '../../native-worker/data/manifest.ts';
import { defaultWorkspaceDir, resolveWorkspace } from '../../native-worker/workspace.ts';
import { photo, removeDir, tempDir } from '../helpers/images.ts';

describe('catalog database', () => {
  test('a new workspace gets workbench.db at the current schema version, in WAL mode', () => {
    const ws = join(tempDir('ws'), 'nested', 'workspace');
    try {
      Catalog.open(ws).close();
      const db = new Database(join(ws, CATALOG_FILE));
      assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      assert.deepEqual(tables, ['dataset_versions', 'datasets', 'edit_changes', 'edit_labels', 'edits', 'images', 'labels', 'scan_issues']);
      db.close();
      // Reopening runs no migration twice.
      Catalog.open(ws).close();
    } finally {
      removeDir(join(ws, '..', '..'));
    }
  });

  test('a database from a newer build is refused with the file named', () => {
    const ws = tempDir('ws');
    try {
      const db = new Database(join(ws, CATALOG_FILE));
      db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      db.close();
      assert.throws(() => Catalog.open(ws), new RegExp(`${CATALOG_FILE}: schema version ${SCHEMA_VERSION + 1} is newer`));
    } finally {
      removeDir(ws);
    }
  });

  test('deleting a dataset removes its images, labels, edits and versions with it', async () => {
    const ws = tempDir('ws');
    const root = tempDir('src');
    const catalog = Catalog.open(ws);
    try {
      mkdirSync(join(root, 'c'));
      await photo(1, 20, 20).png().toFile(join(root, 'c', '1.png'));
      await importDataset(catalog, { source: root, name: 'gone' });
      setExcluded(catalog, 'gone', ['c/1.png'], true);
      await exportManifest(catalog, 'gone', join(ws, 'm.json'));
      catalog.deleteDataset('gone');
      for (const table of ['datasets', 'images', 'labels', 'edits', 'edit_changes', 'dataset_versions', 'scan_issues']) {
        assert.equal(catalog.db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get(), 0, table);
      }
    } finally {
      catalog.close();
      removeDir(ws);
      removeDir(root);
    }
  });

  test('unknown datasets are errors that list the known ones', () => {
    const ws = tempDir('ws');
    const catalog = Catalog.open(ws);
    try {
      catalog.createDataset({ name: 'a', kind: 'folder', source: '/x', root: '/x' });
      assert.throws(() => catalog.requireDataset('b'), /no dataset named 'b' in .*workbench\.db \(known: a\)/);
      assert.throws(() => catalog.createDataset({ name: 'a', kind: 'folder', source: '/y', root: '/y' }), /already exists/);
    } finally {
      catalog.close();
      removeDir(ws);
    }
  });
});

describe('workspace folder', () => {
  test('follows each OS convention for application data', () => {
    assert.equal(defaultWorkspaceDir({}, 'linux', '/home/u'), '/home/u/.local/share/convnext-workbench');
    assert.equal(defaultWorkspaceDir({ XDG_DATA_HOME: '/data' }, 'linux', '/home/u'), '/data/convnext-workbench');
    assert.equal(defaultWorkspaceDir({ XDG_DATA_HOME: 'relative' }, 'linux', '/home/u'), '/home/u/.local/share/convnext-workbench', 'XDG ignores relative paths');
    assert.equal(defaultWorkspaceDir({}, 'darwin', '/Users/u'), '/Users/u/Library/Application Support/convnext-workbench');
    assert.match(defaultWorkspaceDir({ APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }, 'win32', 'C:\\Users\\u'), /Roaming.convnext-workbench$/);
  });

  test('--workspace beats CNX_WORKSPACE beats the default', () => {
    assert.equal(resolveWorkspace('/flag', { CNX_WORKSPACE: '/env' }), '/flag');
    assert.equal(resolveWorkspace(undefined, { CNX_WORKSPACE: '/env' }), '/env');
    assert.equal(resolveWorkspace(undefined, { XDG_DATA_HOME: '/xdg' }), defaultWorkspaceDir({ XDG_DATA_HOME: '/xdg' }));
  });
});

describe('manifests', () => {
  const base = (): Manifest =>
    sealManifest({
      version: 1,
      dataset: 'd',
      createdAt: '2026-01-02T03:04:05.000Z',
      root: '/data/d',
      classes: ['cat', 'dog'],
      items: [
        { path: 'cat/1.jpg', label: 0, split: 'train' },
        { path: 'dog/é.png', label: 1, split: 'val' },
        { path: 'x.png', label: null, split: 'test' },
      ],
    });

  test('sha256 matches node:crypto', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
      assert.equal(sha256(bytes), createHash('sha256').update(bytes).digest('hex'), `${n} bytes`);
    }
  });

  test('the hash covers what is trained on, not when or where it was exported', () => {
    const m = base();
    assert.equal(m.hash, manifestHash({ ...m, createdAt: '2030-01-01T00:00:00.000Z', root: '/elsewhere' }));
    assert.notEqual(m.hash, manifestHash({ ...m, items: m.items.map((i, k) => (k === 0 ? { ...i, split: 'val' as const } : i)) }));
    assert.notEqual(m.hash, manifestHash({ ...m, classes: ['dog', 'cat'] }));
    assert.equal(m.hash, createHash('sha256').update(JSON.stringify([1, 'd', ['cat', 'dog'], m.items.map((i) => [i.path, i.label, i.split])])).digest('hex'));
  });

  test('validation names the file and each problem', () => {
    const m = base();
    assert.deepEqual(parseManifest(JSON.parse(JSON.stringify(m)), 'm.json'), m);
    const bad = { ...m, items: [{ path: '../up.jpg', label: 5, split: 'holdout' }, m.items[0], m.items[0]] };
    assert.throws(
      () => parseManifest(bad, '/tmp/m.json'),
      (e: Error) => {
        assert.match(e.message, /^\/tmp\/m\.json: not a valid dataset manifest:/);
        assert.match(e.message, /items\.0\.path: must be relative to root/);
        assert.match(e.message, /items\.0\.split: /);
        return true;
      },
    );
    assert.throws(() => parseManifest({ ...m, items: [{ path: 'a.jpg', label: 2, split: 'train' }] }, 'f'), /items\.0\.label: label 2 is not a class index \(2 classes\)/);
    assert.throws(() => parseManifest({ ...m, items: [m.items[0], m.items[0]] }, 'f'), /items\.1\.path: duplicate path 'cat\/1.jpg'/);
    assert.throws(() => parseManifest({ ...m, root: 'relative/root' }, 'f'), /root: must be an absolute path/);
    assert.throws(() => parseManifest({ ...m, extra: 1 }, 'f'), /extra/);
    assert.throws(() => parseManifest({ ...m, classes: ['cat', 'cow'] }, 'f'), /^ManifestError: f: hash mismatch .* the manifest was changed after export/);
  });

  test('export freezes a version, reuses it while nothing changes, and reads back validated', async () => {
    const ws = tempDir('ws');
    const root = tempDir('src');
    const catalog = Catalog.open(ws);
    try {
      for (const c of ['b', 'a']) mkdirSync(join(root, c));
      await photo(1, 20, 20).png().toFile(join(root, 'a', '1.png'));
      await photo(2, 20, 20).png().toFile(join(root, 'b', '2.png'));
      await importDataset(catalog, { source: root, name: 'tiny' });
      const file = join(ws, 'tiny.json');
      const first = await exportManifest(catalog, 'tiny', file);
      assert.equal(first.version, 1);
      assert.deepEqual(first.manifest.classes, ['a', 'b']);
      assert.deepEqual(first.manifest.items, [{ path: 'a/1.png', label: 0, split: 'train' }, { path: 'b/2.png', label: 1, split: 'train' }]);
      assert.deepEqual(await readManifest(file), first.manifest);
      const bytes = readFileSync(file);
      const again = await exportManifest(catalog, 'tiny', file);
      assert.equal(again.version, 1, 'unchanged data keeps its version');
      assert.ok(readFileSync(file).equals(bytes), 'and its exact bytes');
      setExcluded(catalog, 'tiny', ['b/2.png'], true);
      const next = await exportManifest(catalog, 'tiny', file);
      assert.deepEqual([next.version, next.manifest.items.length], [2, 1]);
      assert.deepEqual(catalog.versions(catalog.requireDataset('tiny').id).map((v) => v.version), [1, 2]);
      assert.equal(catalog.versionManifest(catalog.requireDataset('tiny').id, 2), readFileSync(file, 'utf8'));

      writeFileSync(join(ws, 'broken.json'), '{"version": 1,');
      await assert.rejects(readManifest(join(ws, 'broken.json')), new RegExp(`^ManifestError: ${join(ws, 'broken.json')}: not valid JSON`));
      await assert.rejects(readManifest(join(ws, 'missing.json')), /missing\.json: no such file/);
    } finally {
      catalog.close();
      removeDir(ws);
      removeDir(root);
    }
  });
});
