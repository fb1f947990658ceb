// The renderer's Pinia stores, each test with a fresh Pinia and the renderer's own API client: over a real
// workbench (imports, edits with undo, runs followed on the event streams, with a scripted worker), or over
// scripted handlers where timing matters (paging, live events racing a fetch, refusals).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiError, type ImageInfo, type JobEventMessage } from '../../common/api.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { useDatasetsStore } from '../../renderer/stores/datasets.ts';
import { PAGE_SIZE, useImagesStore } from '../../renderer/stores/images.ts';
import { useRunDataStore } from '../../renderer/stores/run-data.ts';
import { useRunsStore } from '../../renderer/stores/runs.ts';
import { useSystemStore } from '../../renderer/stores/system.ts';
import { useTrainStore } from '../../renderer/stores/train.ts';
import { photo } from '../helpers/images.ts';
import { fakeLauncher, fixedResolver, tempDir, tinyJob, tinyManifest, waitFor } from '../helpers/services.ts';
import { apiOverWorkbench, scriptedApi, settle } from '../helpers/ui.ts';

describe('stores over a real workbench', () => {
  let dir: string;
  let images: string;
  let manifest: string;
  let wb: Workbench;

  before(async () => {
    dir = tempDir('ui-stores');
    images = join(dir, 'shapes');
    for (const [cls, seeds] of [['circle', [1, 2, 3, 4]], ['square', [5, 6, 7, 8]]] as const) {
      mkdirSync(join(images, cls), { recursive: true });
      for (const s of seeds) await photo(s, 48, 40).png().toFile(join(images, cls, `${s}.png`));
    }
    // A byte-identical copy filed under the other class: an exact duplicate whose labels disagree.
    cpSync(join(images, 'circle', '1.png'), join(images, 'square', 'copy-of-1.png'));
    manifest = await tinyManifest(dir);
    wb = await Workbench.open({ workspace: join(dir, 'ws'), launcher: fakeLauncher(() => ({ FAKE_STEP_MS: '60' })), resolver: fixedResolver('cpu') });
  });
  after(async () => {
    await wb.close({ jobTimeoutMs: 5000 });
    rmSync(dir, { recursive: true, force: true });
  });

  test('datasets: an import follows its progress to the list; edits refresh the detail and undo reverts them', async () => {
    apiOverWorkbench(wb);
    const ds = useDatasetsStore();
    ds.connect();
    await ds.loadList();
    assert.deepEqual(ds.list, []);
    const task = await ds.startImport({ source: images, name: 'shapes' });
    assert.ok(task, JSON.stringify(ds.importError));
    await waitFor('the import to complete', () => ds.tasks.find((t) => t.taskId === task.taskId)?.state === 'completed', 60_000);
    const summary = ds.tasks.find((t) => t.taskId === task.taskId)!.summary!;
    assert.equal(summary.images, 9);
    assert.equal(summary.classes, 2);
    assert.equal(summary.exactDuplicateGroups, 1);
    await waitFor('the list to show it', () => ds.list.some((d) => d.name === 'shapes'));

    await ds.open('shapes');
    assert.equal(ds.detail?.images, 9);
    assert.deepEqual(ds.stats?.classes.map((c) => [c.name, c.total]), [['circle', 4], ['square', 5]]);
    await ds.loadDupes(0);
    assert.deepEqual(ds.dupes?.exact[0]?.images.map((i) => i.path).sort(), ['circle/1.png', 'square/copy-of-1.png']);

    const revision = ds.revision;
    assert.equal(await ds.relabel(['square/copy-of-1.png'], 'circle'), true);
    assert.ok(ds.revision > revision, 'the grid is told to refetch');
    assert.deepEqual(ds.stats?.classes.map((c) => [c.name, c.total]), [['circle', 5], ['square', 4]]);
    assert.match(ds.detail!.edits[0]!.summary, /circle/);
    assert.equal(await ds.undo(), true);
    assert.deepEqual(ds.stats?.classes.map((c) => [c.name, c.total]), [['circle', 4], ['square', 5]]);
    assert.notEqual(ds.detail!.edits[0]!.undoneAt, null);
    ds.disconnect();
  });

  test("datasets: a failure shows the backend's message where it happened", async () => {
    apiOverWorkbench(wb);
    const ds = useDatasetsStore();
    await ds.open('no-such-dataset');
    assert.equal(ds.detailError?.code, 'not-found');
    assert.match(ds.detailError!.message, /no-such-dataset/);
    assert.equal(await ds.relabel(['a.png'], 'x'), false);
    assert.equal(ds.editError?.code, 'not-found');
    // Refused before it leaves: the contract says the source must be absolute.
    assert.equal(await ds.startImport({ source: 'relative/folder' }), null);
    assert.equal(ds.importError?.field, 'source');
  });

  test('runs: a created run is followed on jobState to completion with an ETA while it runs; a refused action stays on the run', async () => {
    apiOverWorkbench(wb);
    const runs = useRunsStore();
    runs.connect();
    await runs.load();
    const run = await runs.create({ config: tinyJob(manifest, { steps: 30, checkpointEvery: 10 }), engine: 'torch', name: 'fake run' });
    assert.equal(run.state, 'queued');
    const eta = await waitFor('an ETA', () => {
      const r = runs.byId.get(run.id);
      return r?.state === 'running' && (r.step ?? 0) >= 5 ? runs.secondsLeft(r) : null;
    }, 30_000);
    assert.ok(eta > 0 && eta < 60, `ETA ${eta} s for ~25 steps of 60 ms`);
    await waitFor('completion', () => runs.byId.get(run.id)?.state === 'completed', 30_000);
    assert.equal(runs.byId.get(run.id)!.step, 30);
    assert.equal(await runs.resume(run.id), false);
    assert.equal(runs.actionError?.runId, run.id);
    assert.equal(runs.actionError?.error.code, 'conflict');
    await runs.select(run.id);
    assert.equal(runs.detail?.attemptsList.length, 1);
    runs.disconnect();
  });

  test('run data: the fetched history and the live events add up to every step once', async () => {
    apiOverWorkbench(wb);
    const runs = useRunsStore();
    runs.connect();
    const run = await runs.create({ config: tinyJob(manifest, { steps: 40, checkpointEvery: 20 }), engine: 'torch' });
    await waitFor('a few steps', () => (runs.byId.get(run.id)?.step ?? 0) >= 8, 30_000);
    const data = useRunDataStore();
    const d = data.use(run.id);
    await waitFor('completion', () => runs.byId.get(run.id)?.state === 'completed', 30_000);
    await waitFor('the last step in the series', () => d.series.get('loss')?.lastStep === 40);
    const loss = d.series.get('loss')!;
    assert.equal(loss.length, 40);
    const cols = loss.columns(1, 40, 40);
    assert.deepEqual(Array.from(cols.last, (v) => Math.round(1 / v)), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.deepEqual(d.logs.filter((l) => /checkpoint/.test(l.message)).length, 2);
    data.release(run.id);
    assert.equal(data.get(run.id), undefined);
    runs.disconnect();
  });
});

function image(i: number): ImageInfo {
  return { id: i + 1, path: `img/${i}.png`, bytes: 100, width: 28, height: 28, channels: 1, format: 'png', label: `c${i % 10}`, split: 'train', corrupt: false, excluded: false, problem: null, problemDetail: null, contentHash: null };
}

test('images: pages load for what is on screen, two at a time; a new filter drops answers to the old one', async () => {
  const total = 100_000;
  const api = scriptedApi({
    'datasets.images': (r) => ({ total: r.label ? total / 10 : total, offset: r.offset, items: Array.from({ length: Math.min(r.limit, total - r.offset) }, (_, k) => image(r.offset + k)) }),
  });
  const store = useImagesStore();
  await store.show('big');
  assert.equal(store.total, total);
  assert.equal(store.itemAt(5)?.path, 'img/5.png');
  assert.equal(store.itemAt(PAGE_SIZE), undefined);

  api.hold = true;
  const wanted = store.ensure(50_000, 50_000 + 3 * PAGE_SIZE);
  await settle();
  assert.equal(api.pending(), 2, 'at most two requests in flight');
  api.release();
  await settle();
  api.release();
  await wanted;
  api.hold = false;
  assert.deepEqual(api.calls.slice(1).map((c) => (c.request as { offset: number }).offset), [50_000, 50_200, 50_400, 50_600].slice(0, 3).map((o) => o - (50_000 % PAGE_SIZE)));
  assert.equal(store.itemAt(50_123)?.path, 'img/50123.png');

  // An answer for the previous filter that arrives after the change is dropped.
  api.hold = true;
  const stale = store.ensure(90_000, 90_100);
  await settle();
  const change = store.setFilter({ label: 'c3' });
  api.release();
  await settle();
  api.release();
  await Promise.all([stale, change]);
  assert.equal(store.total, total / 10);
  assert.equal(store.itemAt(90_000), undefined);
});

test('images: click selects one, shift extends from the anchor, ctrl toggles', async () => {
  scriptedApi({ 'datasets.images': (r) => ({ total: 50, offset: r.offset, items: Array.from({ length: Math.min(r.limit, 50 - r.offset) }, (_, k) => image(r.offset + k)) }) });
  const store = useImagesStore();
  await store.show('small');
  store.select(3, 'one');
  store.select(6, 'range');
  assert.deepEqual([...store.selected].sort(), ['img/3.png', 'img/4.png', 'img/5.png', 'img/6.png']);
  store.select(4, 'toggle');
  assert.equal(store.selected.has('img/4.png'), false);
  assert.equal(store.focusIndex, 4);
});

test('run data: live events that race the first fetch are neither lost nor doubled', async () => {
  const ev = (seq: number, event: JobEventMessage['event']): JobEventMessage => ({ runId: 'r1', attempt: 1, seq, at: 1000 + seq, event });
  const api = scriptedApi({
    'metrics.series': () => ({ runId: 'r1', fromStep: 1, toStep: 3, series: [{ name: 'loss', fromStep: [1, 2, 3], toStep: [1, 2, 3], min: [3, 2, 1], max: [3, 2, 1], last: [3, 2, 1], count: [1, 1, 1] }] }),
    'artifacts.list': () => [],
    'runs.events': () => ({ items: [ev(1, { v: 1, type: 'log', level: 'info', message: 'hello' })], lastSeq: 6 }),
  });
  api.hold = true;
  const data = useRunDataStore();
  const d = data.use('r1');
  await settle();
  // Arrive while the fetch is out: step 3 is in the fetched series, step 4 is new; seq 1 is a fetched log.
  api.emit('jobEvent', ev(5, { v: 1, type: 'metrics', step: 3, values: { loss: 1 } }));
  api.emit('jobEvent', ev(7, { v: 1, type: 'metrics', step: 4, values: { loss: 0.5 } }));
  api.emit('jobEvent', ev(1, { v: 1, type: 'log', level: 'info', message: 'hello' }));
  api.hold = false;
  api.release();
  await waitFor('the fetch', () => d.state === 'ready');
  assert.equal(d.series.get('loss')!.length, 4);
  assert.deepEqual(d.logs.map((l) => l.message), ['hello']);
  const before = d.version.value;
  api.emit('jobEvent', ev(8, { v: 1, type: 'eval', step: 4, weights: 'model', images: 10, top1: 0.7, top5: 1, perClass: [0.7], confusion: [[7]] }));
  assert.ok(d.version.value > before);
  assert.equal(d.evals.length, 1);
  assert.deepEqual(d.series.get('eval/top1')!.latest(), { step: 4, value: Math.fround(0.7) });
});

test('train: a refusal from the service lands on the field it names', async () => {
  scriptedApi({
    'datasets.stats': () => ({
      dataset: 'd', kind: 'folder', root: '/d', scanState: 'complete', images: 100, corrupt: 0, excluded: 0,
      splits: { train: 80, val: 20, test: 0 },
      classes: [{ name: 'a', index: 0, train: 40, val: 10, test: 0, total: 50 }, { name: 'b', index: 1, train: 40, val: 10, test: 0, total: 50 }],
      unlabeled: { train: 0, val: 0, test: 0 }, imbalance: null, formats: {}, size: null, outliers: { small: 0, large: 0, aspect: 0, typical: null, examples: [] }, belowInputSize: { inputSize: 224, count: 0 },
    }),
    'runs.create': () => {
      throw new ApiError('invalid', 'config.optim.lr: the PyTorch engine refuses this lr', 'config.optim.lr');
    },
  });
  const train = useTrainStore();
  await train.setDataset('d');
  assert.equal(train.facts?.labeledTrain, 80);
  train.set('inputSize', 64);
  train.set('batchSize', 8);
  train.set('lengthUnit', 'steps');
  train.set('length', 10);
  assert.deepEqual(train.errors, []);
  assert.equal(await train.submit(), null);
  assert.equal(train.submitError?.formField, 'lr');
  assert.match(train.problemsFor('lr').map((p) => p.message).join(), /refuses this lr/);
  train.set('lr', 0.001);
  assert.equal(train.submitError, null, 'editing the field clears the refusal');
});

test('train: recipe fields follow the resolved recipe until set by hand, and reset empties them', () => {
  scriptedApi({});
  const train = useTrainStore();
  train.setKind('finetune');
  train.set('mixup', 0.3);
  train.setVariant('base');
  assert.equal(train.form.mixup, 0.3);
  assert.equal(train.form.layerDecay, null, 'left to the recipe');
  assert.deepEqual(train.resolved.values.mixup, { value: 0.3, source: 'user' });
  assert.equal(train.resolved.recipe, 'paper', 'the default length is the paper schedule');
  assert.deepEqual(train.resolved.values.layerDecay, { value: 0.6, source: 'recipe' });
  train.applyRecipe();
  assert.equal(train.form.mixup, null);
  assert.deepEqual(train.resolved.values.mixup, { value: 0.8, source: 'recipe' });
});

test('system: an invalid settings change is refused with the field named', async () => {
  scriptedApi({});
  const system = useSystemStore();
  assert.equal(await system.save({ cpuJobSlots: 0 }), false);
  assert.equal(system.saveError?.field, 'cpuJobSlots');
});
