// Tasks through the API, with the real `cnx` commands: a V1-vs-V2 analysis of a V1 classifier against a V2
// FCMAE model (the paper's comparison) on a catalogued dataset, served files and their limits; exports of a
// real run's checkpoint to ONNX (runs in onnxruntime with the dataset's labels) and to timm safetensors (loads
// back); bad requests, a failing command's message, cancel, and a restart that finds an interrupted task.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { ApiError} from '../../common/api.ts';
import { type Task } from '../../common/api.ts';
import { parseArch } from '../../common/variants.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { resolveFile } from '../../main/web/files.ts';
import { loadCheckpoint, saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { FCMAE_DEFAULTS, fcmaeParams } from '../../native-worker/nn/fcmae.ts';
import { initParams, type ParamSpec } from '../../native-worker/nn/params.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { needTorch } from '../helpers/python.ts';
import { tempDir, tinyJob, tinyManifest, waitFor, waitForState } from '../helpers/services.ts';

async function writeModel(file: string, specs: ParamSpec[], seed: number): Promise<string> {
  const values = initParams(specs, seed);
  await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
  return file;
}

/** Follows a task on the taskState stream until it leaves queued/running. */
function settled(wb: Workbench, id: string, timeoutMs = 240_000): Promise<Task> {
  return waitFor(`task ${id} to finish`, () => {
    const t = wb.tasks.get(id);
    return t.state !== 'queued' && t.state !== 'running' ? t : null;
  }, timeoutMs, 100);
}

describe('tasks: analysis and export', () => {
  let dir: string;
  let wb: Workbench;
  const published: Task[] = [];

  before(async () => {
    dir = tempDir('tasks');
    wb = await Workbench.open({ workspace: join(dir, 'ws'), killGraceMs: 500 });
    wb.hub.subscribe((b) => b.items.forEach((i) => i.stream === 'taskState' && published.push(i.data as Task)));
  });
  after(async () => wb.close());

  test('a V1 classifier against a V2 FCMAE model: per-layer distances, grids, GRN stats, served files; the same on the PyTorch engine', async (t) => {
    await textureDataset(join(dir, 'textures'), 64, 3, 3);
    const imp = await wb.handlers['datasets.import']({ source: join(dir, 'textures'), name: 'textures', kind: 'folder' });
    const imported = await waitFor('the import', () => wb.datasets.importTasks().find((t) => t.taskId === imp.taskId && t.state !== 'running'));
    assert.equal(imported.state, 'completed', imported.error ?? '');
    const v1 = await writeModel(join(dir, 'v1.safetensors'), convnextParams({ arch: parseArch('convnext_atto'), numClasses: 4 }), 3);
    const v2 = await writeModel(join(dir, 'v2-fcmae.safetensors'), fcmaeParams({ ...FCMAE_DEFAULTS, arch: parseArch('convnextv2_atto'), inputSize: 64 }), 4);

    const task = await wb.handlers['analysis.start']({ models: [{ model: { file: v1 }, name: 'V1 atto' }, { model: { file: v2 } }], dataset: 'textures', split: 'val', images: 5, size: 64, gridImage: 2, engine: 'onnx' });
    assert.equal(task.kind, 'analysis');
    assert.equal(task.title, 'V1 atto vs v2-fcmae on textures');
    const done = await settled(wb, task.id);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.ok(published.some((t) => t.id === task.id && t.state === 'running'), 'the running state was published');
    // The hub delivers on the next turn of the event loop: the task can read completed a moment before its event arrives.
    await waitFor('the completed state to be published', () => published.some((t) => t.id === task.id && t.state === 'completed'), 5000);

    const r = await wb.handlers['analysis.result']({ taskId: task.id });
    assert.equal(r.images, 5);
    assert.deepEqual(r.models.map((m) => [m.name, m.arch, m.fcmae]), [['V1 atto', 'convnext_atto', false], ['v2-fcmae', 'convnextv2_atto', true]]);
    for (const m of r.models) {
      assert.equal(m.layers.length, 12);
      assert.equal(m.gridLayer, 9, 'the last block of stage 2 by default');
      for (const l of m.layers) assert.ok(l.distance! > 0 && l.distance! < 0.5, `${m.name} ${l.name}: ${l.distance}`);
    }
    assert.equal(r.models[0]!.grn.length, 0);
    assert.equal(r.models[1]!.grn.length, 12);
    assert.equal(r.gridImage?.index, 2);
    assert.deepEqual(done.files.filter((f) => f !== 'manifest.json'), ['activations-1-V1-atto.png', 'activations-2-v2-fcmae.png', 'analysis.json', 'cosine-distance.csv']);
    const csv = readFileSync(join(done.dir, 'cosine-distance.csv'), 'utf8').split('\n');
    assert.equal(csv[0], 'layer,depth,V1 atto,v2-fcmae');

    // The same analysis on the PyTorch engine (the settings' Python) gives the same distances.
    const python = needTorch(t);
    if (python) {
      await wb.handlers['settings.update']({ pythonPath: python });
      const viaTorch = await settled(wb, (await wb.handlers['analysis.start']({ ...task.request, engine: 'torch' } as Parameters<Workbench['handlers']['analysis.start']>[0])).id);
      assert.equal(viaTorch.state, 'completed', JSON.stringify(viaTorch.error));
      const rt = await wb.handlers['analysis.result']({ taskId: viaTorch.id });
      assert.equal(rt.engine, 'torch');
      rt.models.forEach((m, i) => m.layers.forEach((l, k) => assert.ok(Math.abs(l.distance! - r.models[i]!.layers[k]!.distance!) < 1e-5, `${m.name} ${l.name}`)));
    }

    const served = await resolveFile(wb, `/files/task/${task.id}/activations-2-v2-fcmae.png`, new URLSearchParams());
    assert.equal(served.contentType, 'image/png');
    await assert.rejects(resolveFile(wb, `/files/task/${task.id}/task.json`, new URLSearchParams()), (e: ApiError) => e.code === 'not-found');
    await assert.rejects(resolveFile(wb, `/files/task/${task.id}/../x`, new URLSearchParams()), (e: ApiError) => e.code === 'invalid');
    await assert.rejects(resolveFile(wb, '/files/task/nope/analysis.json', new URLSearchParams()), (e: ApiError) => e.code === 'invalid');
  });

  test('bad analysis requests name the problem; a failing command reports its own message', async () => {
    await assert.rejects(async () => wb.handlers['analysis.start']({ models: [{ model: { file: join(dir, 'missing.safetensors') } }], dataset: 'textures', split: 'val', images: 4, size: 64, gridImage: 0, engine: 'onnx' }), (e: ApiError) => e.code === 'invalid' && e.field === 'models.0.model' && /no such checkpoint file/.test(e.message));
    await assert.rejects(async () => wb.handlers['analysis.start']({ models: [{ model: { runId: 'nope', step: 1 } }], dataset: 'textures', split: 'val', images: 4, size: 64, gridImage: 0, engine: 'onnx' }), (e: ApiError) => e.code === 'not-found');
    await assert.rejects(async () => wb.handlers['analysis.start']({ models: [{ model: { file: join(dir, 'v1.safetensors') } }], dataset: 'nope', split: 'val', images: 4, size: 64, gridImage: 0, engine: 'onnx' }), (e: ApiError) => e.code === 'not-found');
    const t = await wb.handlers['analysis.start']({ models: [{ model: { file: join(dir, 'v1.safetensors') } }], dataset: 'textures', split: 'val', images: 4, size: 64, gridLayer: 40, gridImage: 0, engine: 'onnx' });
    const done = await settled(wb, t.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.message, '--grid-layer must be in 0..11');
    await assert.rejects(async () => wb.handlers['analysis.result']({ taskId: t.id }), (e: ApiError) => e.code === 'conflict');
    await wb.handlers['tasks.delete']({ taskId: t.id });
    assert.ok(!existsSync(done.dir));
    await assert.rejects(async () => wb.handlers['tasks.get']({ taskId: t.id }), (e: ApiError) => e.code === 'not-found');
  });

  test("a run's checkpoint exports to ONNX with its labels and to timm safetensors", async () => {
    const manifest = await tinyManifest(join(dir, 'tiny'));
    const run = await wb.handlers['runs.create']({ config: tinyJob(manifest, { steps: 2, checkpointEvery: 2 }), engine: 'onnx', name: 'tiny v2', priority: 0, start: true });
    const finished = await waitForState(wb, run.id, ['completed', 'failed'], 240_000);
    assert.equal(finished.state, 'completed');
    await assert.rejects(async () => wb.handlers['models.export']({ runId: run.id, step: 1, format: 'onnx' }), (e: ApiError) => e.code === 'not-found' && e.field === 'step');

    const onnxTask = await wb.handlers['models.export']({ runId: run.id, step: 2, format: 'onnx' });
    const timmTask = await wb.handlers['models.export']({ runId: run.id, step: 2, format: 'timm' });
    const [onnxDone, timmDone] = [await settled(wb, onnxTask.id), await settled(wb, timmTask.id)];
    assert.equal(onnxDone.state, 'completed', JSON.stringify(onnxDone.error));
    assert.deepEqual(onnxDone.files, ['labels.txt', 'tiny-v2-step2.onnx', 'tiny-v2-step2.onnx.json']);
    const meta = JSON.parse(readFileSync(join(onnxDone.dir, 'tiny-v2-step2.onnx.json'), 'utf8'));
    assert.deepEqual(meta.labels, ['a', 'b', 'c']);
    assert.equal(meta.inputSize, 32);
    const session = await ort.InferenceSession.create(join(onnxDone.dir, 'tiny-v2-step2.onnx'));
    const out = await session.run({ image: new ort.Tensor('float32', new Float32Array(3 * 32 * 32), [1, 3, 32, 32]) });
    assert.deepEqual(out.logits!.dims, [1, 3]);

    assert.equal(timmDone.state, 'completed', JSON.stringify(timmDone.error));
    const ck = await loadCheckpoint(join(timmDone.dir, 'tiny-v2-step2.safetensors'));
    assert.equal(ck.layout, 'timm');
    assert.equal(ck.arch.numClasses, 3);
  });

  test("a pretraining run's checkpoints reconstruct chosen images under one mask; other runs are refused", async () => {
    const manifest = await tinyManifest(join(dir, 'tiny-pre'));
    const base = tinyJob(manifest, { steps: 2, checkpointEvery: 1 });
    const run = await wb.handlers['runs.create']({ config: { ...base, kind: 'pretrain', model: { arch: 'convnextv2_atto', numClasses: 0, inputSize: 64 } }, engine: 'onnx', name: 'tiny fcmae', priority: 0, start: true });
    assert.equal((await waitForState(wb, run.id, ['completed', 'failed'], 240_000)).state, 'completed');
    const t = await wb.handlers['reconstructions.start']({ runId: run.id, steps: [1, 2], split: 'val', images: 4, pickSeed: 0, maskSeed: 5 });
    assert.equal(t.request.maskRatio, 0.6, "the run's own mask ratio");
    const done = await settled(wb, t.id);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    const r = await wb.handlers['reconstructions.result']({ taskId: t.id });
    assert.deepEqual(r.checkpoints.map((c) => c.name), ['step 1', 'step 2']);
    assert.equal(r.images.length, 3, 'all 3 val images of the run');
    assert.ok(done.files.includes('reconstruction-2.png'));
    assert.deepEqual(r.checkpoints[0]!.patchErrors.map((row) => row.map((e) => e === null)), r.checkpoints[1]!.patchErrors.map((row) => row.map((e) => e === null)));
    await assert.rejects(async () => wb.handlers['reconstructions.start']({ runId: run.id, steps: [7], split: 'val', images: 4, pickSeed: 0, maskSeed: 0 }), (e: ApiError) => e.code === 'not-found' && e.field === 'steps.0');
    const finetune = wb.store.runs({ limit: 100, offset: 0 }).find((x) => x.kind === 'finetune')!;
    await assert.rejects(async () => wb.handlers['reconstructions.start']({ runId: finetune.id, steps: [2], split: 'val', images: 4, pickSeed: 0, maskSeed: 0 }), (e: ApiError) => e.code === 'invalid' && e.field === 'runId');
    await assert.rejects(async () => wb.handlers['analysis.result']({ taskId: t.id }), (e: ApiError) => e.code === 'invalid');
  });

  test('checkpoint files are imported after a check, listed with what they hold, exported; a bad file says why', async () => {
    const v1 = join(dir, 'v1.safetensors');
    const fcmae = join(dir, 'v2-fcmae.safetensors');
    const garbage = join(dir, 'garbage.pt');
    writeFileSync(garbage, 'not a checkpoint');
    await assert.rejects(async () => wb.handlers['models.import']({ file: join(dir, 'nope.pt') }), (e: ApiError) => e.code === 'invalid' && e.field === 'file');
    const tasks = [await wb.handlers['models.import']({ file: v1, name: 'V1 atto' }), await wb.handlers['models.import']({ file: fcmae }), await wb.handlers['models.import']({ file: garbage })];
    const [ok1, ok2, bad] = [await settled(wb, tasks[0]!.id), await settled(wb, tasks[1]!.id), await settled(wb, tasks[2]!.id)];
    assert.deepEqual([ok1.state, ok2.state, bad.state], ['completed', 'completed', 'failed']);
    assert.match(bad.error?.message ?? '', /garbage\.pt: not a checkpoint/);
    const imported = await wb.handlers['models.imported']({});
    assert.deepEqual(imported.map((m) => [m.name, m.arch, m.kind, m.numClasses, m.present]).sort(), [['V1 atto', 'convnext_atto', 'classifier', 4, true], ['v2-fcmae', 'convnextv2_atto', 'fcmae', 0, true]]);

    const ex = await settled(wb, (await wb.handlers['models.exportFile']({ file: v1, format: 'onnx', size: 64, labels: ['w', 'x', 'y', 'z'] })).id);
    assert.equal(ex.state, 'completed', JSON.stringify(ex.error));
    assert.deepEqual(ex.files, ['labels.txt', 'v1.onnx', 'v1.onnx.json']);
    assert.deepEqual(JSON.parse(readFileSync(join(ex.dir, 'v1.onnx.json'), 'utf8')).labels, ['w', 'x', 'y', 'z']);
    const enc = await settled(wb, (await wb.handlers['models.exportFile']({ file: fcmae, format: 'timm', size: 224 })).id);
    assert.equal(enc.state, 'completed', JSON.stringify(enc.error));
    const encoder = await loadCheckpoint(join(enc.dir, 'v2-fcmae.safetensors'));
    assert.deepEqual([encoder.arch.decoder, encoder.arch.head], [false, false], 'the FCMAE file exports its encoder');

    await wb.handlers['tasks.delete']({ taskId: ok2.id });
    assert.ok(existsSync(fcmae), 'forgetting an import leaves the file');
    assert.deepEqual((await wb.handlers['models.imported']({})).map((m) => m.name), ['V1 atto']);
  });

  test('cancel stops a running task; a restart marks a task it found running as interrupted', async () => {
    const t = await wb.handlers['analysis.start']({ models: [{ model: { file: join(dir, 'v1.safetensors') } }], dataset: 'textures', split: 'val', images: 512, size: 224, gridImage: 0, engine: 'onnx' });
    await waitFor('the analysis to run', () => wb.tasks.get(t.id).state === 'running');
    await wb.handlers['tasks.cancel']({ taskId: t.id });
    assert.equal((await settled(wb, t.id, 30_000)).state, 'cancelled');

    const t2 = await wb.handlers['analysis.start']({ models: [{ model: { file: join(dir, 'v1.safetensors') } }], dataset: 'textures', split: 'val', images: 512, size: 224, gridImage: 0, engine: 'onnx' });
    await waitFor('the analysis to run', () => wb.tasks.get(t2.id).state === 'running');
    // A task.json that still says running, as a crash of the workbench would leave it.
    const record = readFileSync(join(t2.dir, 'task.json'), 'utf8');
    await wb.close();
    writeFileSync(join(t2.dir, 'task.json'), record);
    wb = await Workbench.open({ workspace: join(dir, 'ws'), killGraceMs: 500 });
    const again = wb.tasks.get(t2.id);
    assert.equal(again.state, 'interrupted');
    assert.match(again.error?.message ?? '', /stopped while this task was running/);
    assert.ok(wb.tasks.list('analysis').length >= 3, 'earlier analyses are listed after the restart');
  });
});
