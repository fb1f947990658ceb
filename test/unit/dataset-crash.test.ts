// Crash safety: `cnx dataset import` killed with SIGKILL in the middle of a scan leaves a consistent catalog
// (whole batches only, no half-written rows), and running the same command again completes the import.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { Catalog } from '../../native-worker/data/catalog/catalog.ts';
import type { ImportSummary } from '../../native-worker/data/import/importer.ts';
import { photo, removeDir, tempDir } from '../helpers/images.ts';

const TOTAL = 800;
const CLASSES = 4;
const BATCH = 10;

test('an import killed with SIGKILL mid-scan is consistent and a rerun completes it', async (t) => {
  const root = tempDir('crash-src');
  const ws = tempDir('crash-ws');
  t.after(() => {
    removeDir(root);
    removeDir(ws);
  });
  for (let c = 0; c < CLASSES; c++) mkdirSync(join(root, `class${c}`));
  for (let i = 0; i < TOTAL; i++) await photo(i, 48, 36).jpeg({ quality: 80 }).toFile(join(root, `class${i % CLASSES}`, `${i}.jpg`));
  const args = ['bin/cnx.mjs', 'dataset', 'import', root, '--name', 'crashy', '--batch', String(BATCH), '--concurrency', '2', '--json', '--workspace', ws];

  // Start the import and kill it as soon as a few batches are committed.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  let killedAt = -1;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 15));
    let count = 0;
    try {
      const db = new Database(join(ws, 'workbench.db'), { readonly: true, fileMustExist: true });
      count = db.prepare('SELECT COUNT(*) FROM images').pluck().get() as number;
      db.close();
    } catch {
      continue; // not created or still migrating
    }
    if (count >= 3 * BATCH) {
      child.kill('SIGKILL');
      killedAt = count;
      break;
    }
  }
  assert.equal(await exited, 'SIGKILL', `the import was killed (it had cataloged ${killedAt} images)`);

  // The catalog as the killed process left it.
  const db = new Database(join(ws, 'workbench.db'));
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  assert.deepEqual(db.pragma('foreign_key_check'), []);
  const ds = db.prepare("SELECT id, scan_state AS state FROM datasets WHERE name = 'crashy'").get() as { id: number; state: string };
  assert.equal(ds.state, 'scanning', 'the interrupted scan is not marked complete');
  const rows = db.prepare('SELECT path, bytes, content_hash AS hash, phash, width, height, label_id FROM images WHERE dataset_id = ?').all(ds.id) as {
    path: string;
    bytes: number;
    hash: string;
    phash: string;
    width: number;
    height: number;
    label_id: number;
  }[];
  db.close();
  assert.ok(rows.length >= killedAt && rows.length < TOTAL, `${rows.length} of ${TOTAL} images committed`);
  assert.equal(rows.length % BATCH, 0, 'only whole batches are committed');
  t.diagnostic(`killed after ${rows.length} of ${TOTAL} images were committed`);
  for (const r of rows) {
    const bytes = readFileSync(join(root, r.path));
    assert.equal(r.hash, createHash('sha1').update(bytes).digest('hex'), `${r.path}: complete row`);
    assert.deepEqual([r.bytes, r.width, r.height, typeof r.phash, typeof r.label_id], [bytes.length, 48, 36, 'string', 'number']);
  }

  // Running the same command again finishes the job, re-analysing only what was not committed.
  const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(rerun.status, 0, rerun.stderr);
  const summary = JSON.parse(rerun.stdout) as ImportSummary;
  assert.deepEqual([summary.images, summary.classes, summary.unchanged, summary.added, summary.removed], [TOTAL, CLASSES, rows.length, TOTAL - rows.length, 0]);
  const catalog = Catalog.open(ws);
  try {
    const d = catalog.requireDataset('crashy');
    assert.equal(d.scanState, 'complete');
    const per = catalog.db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT path) AS paths FROM images WHERE dataset_id = ?').get(d.id);
    assert.deepEqual(per, { n: TOTAL, paths: TOTAL });
  } finally {
    catalog.close();
  }
});
