// Datasets through the API handlers (requests and responses validated as a transport would): import in a
// worker thread with progress, paged and filtered image queries, edits with undo and change events,
// stats, duplicates, manifest export, cancelling an import.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiMethod, ApiRequest, ApiResponse, ImportTask } from '../../common/api.ts';
import { dispatch } from '../../main/api/dispatch.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { photo } from '../helpers/images.ts';
import { fixedResolver, tempDir, waitFor } from '../helpers/services.ts';

describe('datasets through the API', () => {
  let dir: string;
  let wb: Workbench;
  const changed: string[] = [];
  const tasks: ImportTask[] = [];

  async function call<M extends ApiMethod>(method: M, request: ApiRequest<M>): Promise<ApiResponse<M>> {
    const r = await dispatch(wb.handlers, method, request);
    if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
    return r.value as ApiResponse<M>;
  }

  async function importAndWait(source: string, name?: string): Promise<ImportTask> {
    const task = await call('datasets.import', { source, ...(name ? { name } : {}) });
    return waitFor('the import', () => tasks.find((t) => t.taskId === task.taskId && t.state !== 'running'), 60_000);
  }

  before(async () => {
    dir = tempDir('datasets');
    // cats and dogs, 3 each, one dog a byte-identical copy of a cat (an exact duplicate across classes).
    for (const [label, seeds] of [['cat', [1, 2, 3]], ['dog', [4, 5]]] as const) {
      mkdirSync(join(dir, 'pets', label), { recursive: true });
      for (const s of seeds) await photo(s, 48, 40).png().toFile(join(dir, 'pets', label, `${label}${s}.png`));
    }
    copyFileSync(join(dir, 'pets', 'cat', 'cat1.png'), join(dir, 'pets', 'dog', 'dog9.png'));
    wb = await Workbench.open({ workspace: join(dir, 'ws'), resolver: fixedResolver('cpu') });
    wb.hub.subscribe((b) => {
      for (const i of b.items) {
        if (i.stream === 'datasetChanged') changed.push((i.data as { reason: string }).reason);
        if (i.stream === 'datasetProgress') tasks.push(i.data as ImportTask);
      }
    });
    const done = await importAndWait(join(dir, 'pets'));
    assert.equal(done.state, 'completed', done.error ?? '');
  });
  after(() => wb.close());

  test('an import runs in the background and reports its summary', async () => {
    const done = tasks.find((t) => t.state === 'completed')!;
    assert.deepEqual([done.summary!.dataset, done.summary!.images, done.summary!.classes, done.summary!.exactDuplicateGroups], ['pets', 6, 2, 1]);
    await waitFor('the imported change to be published', () => changed.includes('imported'), 5000);
    const [summary] = await call('datasets.list', {});
    assert.deepEqual([summary!.name, summary!.kind, summary!.images, summary!.classes, summary!.scanState], ['pets', 'folder', 6, 2, 'complete']);
  });

  test('images come in pages with filters', async () => {
    const all = await call('datasets.images', { name: 'pets', limit: 4 });
    assert.equal(all.total, 6);
    assert.deepEqual(all.items.map((i) => i.path), ['cat/cat1.png', 'cat/cat2.png', 'cat/cat3.png', 'dog/dog4.png']);
    const next = await call('datasets.images', { name: 'pets', limit: 4, offset: 4 });
    assert.deepEqual(next.items.map((i) => i.path), ['dog/dog5.png', 'dog/dog9.png']);
    assert.equal((await call('datasets.images', { name: 'pets', label: 'dog' })).total, 3);
    assert.equal((await call('datasets.images', { name: 'pets', search: 'CAT2' })).total, 1);
    const img = (await call('datasets.images', { name: 'pets', search: 'cat1' })).items[0]!;
    assert.deepEqual([img.width, img.height, img.format, img.label, img.split, img.corrupt, img.excluded], [48, 40, 'png', 'cat', 'train', false, false]);
    await assert.rejects(call('datasets.images', { name: 'nope' }), /no dataset named 'nope'/);
    await assert.rejects(call('datasets.images', { name: 'pets', limit: 501 }), (e: { field?: string }) => e.field === 'limit');
  });

  test('relabel, move and exclude are undoable edits that announce themselves', async () => {
    const before = changed.length;
    const r = await call('datasets.relabel', { name: 'pets', paths: ['dog/dog9.png'], label: 'cat' });
    assert.equal(r.edit!.changes, 1);
    assert.equal((await call('datasets.images', { name: 'pets', label: 'cat' })).total, 4);
    await call('datasets.move', { name: 'pets', paths: ['cat/cat2.png'], split: 'val' });
    await call('datasets.exclude', { name: 'pets', paths: ['cat/cat3.png'], excluded: true });
    assert.equal((await call('datasets.images', { name: 'pets' })).total, 5, 'excluded images are not usable');
    assert.equal((await call('datasets.images', { name: 'pets', status: 'excluded' })).items[0]!.path, 'cat/cat3.png');
    const stats = await call('datasets.stats', { name: 'pets' });
    assert.deepEqual(stats.splits, { train: 4, val: 1, test: 0 });
    assert.equal(stats.excluded, 1);
    assert.deepEqual((await call('datasets.edits', { name: 'pets' })).map((e) => e.kind), ['exclude', 'move', 'relabel']);
    assert.equal((await call('datasets.undo', { name: 'pets' })).undone!.kind, 'exclude');
    assert.equal((await call('datasets.undo', { name: 'pets' })).undone!.kind, 'move');
    assert.equal((await call('datasets.undo', { name: 'pets' })).undone!.kind, 'relabel');
    assert.equal((await call('datasets.undo', { name: 'pets' })).undone, null);
    assert.equal((await call('datasets.images', { name: 'pets', label: 'dog' })).total, 3);
    await waitFor('the change events', () => changed.length >= before + 6, 2000);
    assert.deepEqual(changed.slice(before), ['edited', 'edited', 'edited', 'undone', 'undone', 'undone']);
    await assert.rejects(call('datasets.relabel', { name: 'pets', paths: ['cat/../dog/dog4.png'], label: 'x' }), (e: { code?: string }) => e.code === 'invalid');
    await assert.rejects(call('datasets.relabel', { name: 'pets', paths: ['cat/none.png'], label: 'x' }), /no image 'cat\/none.png'/);
  });

  test('a seeded split, duplicates, details and a manifest export', async () => {
    const split = await call('datasets.split', { name: 'pets', val: 0.34, seed: 3 });
    assert.deepEqual(split.counts, { train: 4, val: 2, test: 0 });
    const dupes = await call('datasets.dupes', { name: 'pets' });
    assert.deepEqual(dupes.exact.map((g) => g.images.map((i) => i.path)), [['cat/cat1.png', 'dog/dog9.png']]);
    const detail = await call('datasets.get', { name: 'pets' });
    assert.deepEqual(detail.labels.map((l) => [l.name, l.index, l.images]), [['cat', 0, 3], ['dog', 1, 3]]);
    assert.equal(detail.edits[0]!.kind, 'split');
    const exported = await call('datasets.exportManifest', { name: 'pets' });
    assert.equal(exported.file, join(dir, 'ws', 'manifests', 'pets.json'));
    assert.deepEqual([exported.version, exported.items, exported.classes, exported.splits], [1, 6, 2, { train: 4, val: 2, test: 0 }]);
    assert.equal(JSON.parse(readFileSync(exported.file, 'utf8')).hash, exported.hash);
    assert.equal((await call('datasets.exportManifest', { name: 'pets' })).version, 1, 'unchanged data keeps its version');
  });

  test('an import can be cancelled', async () => {
    mkdirSync(join(dir, 'many', 'x'), { recursive: true });
    for (let i = 0; i < 200; i++) await photo(100 + i, 16, 16).png().toFile(join(dir, 'many', 'x', `${i}.png`));
    const task = await call('datasets.import', { source: join(dir, 'many') });
    await call('datasets.cancelImport', { taskId: task.taskId });
    const end = await waitFor('the cancelled import', () => tasks.find((t) => t.taskId === task.taskId && t.state !== 'running'), 60_000);
    assert.equal(end.state, 'cancelled');
    await assert.rejects(call('datasets.cancelImport', { taskId: 'nope' }), /no import task/);
  });
});
