// The queue schedules per GPU. The machine's GPU list is faked where the service learns it (cnx doctor's
// report); the scheduling code and the engine resolver are the real ones, the worker a scripted stand-in.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { JobConfigDraft, RunSummary } from '../../common/api.ts';
import { doctorResolver } from '../../main/services/engines.ts';
import { pickGpus } from '../../main/services/gpu-slots.ts';
import type { DoctorReport } from '../../main/services/system.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { fakeLauncher, tempDir, tinyJob, waitForState } from '../helpers/services.ts';

function reportWithGpus(count: number): DoctorReport {
  return {
    onnx: { onnxruntime: '1.x', backends: ['cpu'], chosen: 'cpu', skipped: [] },
    torch: { interpreter: 'python3', torch: '2.x', cuda: Array.from({ length: count }, (_, i) => ({ name: `Fake GPU ${i}`, memoryGiB: 24 })), mps: false },
    torchEngineUsable: true,
  };
}

/** The CUDA_VISIBLE_DEVICES the queue gave each attempt, from the run's log. */
function attemptGpus(wb: Workbench, run: RunSummary): number[][] {
  const log = readFileSync(join(wb.store.run(run.id)!.runDir, 'events.jsonl'), 'utf8').trim().split('\n');
  return log.map((l) => JSON.parse(l) as { svc?: { type: string; gpus?: number[] } }).flatMap((l) => (l.svc?.type === 'attempt' ? [l.svc.gpus ?? []] : []));
}

describe('the queue on a machine with two GPUs', () => {
  let wb: Workbench;
  before(async () => {
    wb = await Workbench.open({
      workspace: join(tempDir('gpus'), 'ws'),
      resolver: doctorResolver(async () => ({ report: reportWithGpus(2) })),
      launcher: fakeLauncher(() => ({ FAKE_STEP_MS: '20' })),
      killGraceMs: 1000,
    });
  });
  after(() => wb.close({ jobTimeoutMs: 5000 }));

  const job = (steps: number, devices?: JobConfigDraft['devices']): JobConfigDraft => ({
    ...tinyJob('/nonexistent/manifest.json', { steps, checkpointEvery: 5, device: 'cuda' }),
    ...(devices === undefined ? {} : { devices }),
  });

  test('two 1-GPU jobs run side by side; a 2-GPU job waits for both GPUs', async () => {
    const a = await wb.jobs.create({ config: job(40), engine: 'torch', priority: 0, start: true });
    const b = await wb.jobs.create({ config: job(40, [1]), engine: 'torch', priority: 0, start: true });
    const both = await wb.jobs.create({ config: job(5, 2), engine: 'auto', priority: 0, start: true });
    await waitForState(wb, a.id, ['running']);
    await waitForState(wb, b.id, ['running']);
    assert.equal(wb.store.summary(a.id)!.state, 'running', 'both 1-GPU jobs run at once');
    assert.equal(wb.store.summary(both.id)!.state, 'queued', 'the 2-GPU job waits');
    for (const r of [a, b, both]) assert.equal((await waitForState(wb, r.id, ['completed', 'failed'])).state, 'completed');
    const attempt = (r: RunSummary) => wb.store.attempts(r.id)[0]!;
    const lastEnd = [attempt(a).endedAt!, attempt(b).endedAt!].sort()[1]!; // ISO times sort as text
    assert.ok(attempt(both).startedAt >= lastEnd, 'it started once both GPUs were free');
    assert.deepEqual([attemptGpus(wb, a), attemptGpus(wb, b), attemptGpus(wb, both)], [[[0]], [[1]], [[0, 1]]]);
    assert.equal(wb.store.summary(both.id)!.engine, 'torch', "'auto' picks the PyTorch engine for a data-parallel run");
  });

  test('a job asking for a GPU the machine does not have fails to start, naming it', async () => {
    const run = await wb.jobs.create({ config: job(5, [0, 2]), engine: 'torch', priority: 0, start: true });
    const failed = await waitForState(wb, run.id, ['failed', 'completed']);
    assert.equal(failed.error!.message, 'devices: GPU 2 not found; cnx doctor lists 2 GPUs (0..1)');
  });
});

test('pickGpus: free GPUs first, a whole request or nothing, one job at a time without a CUDA list', () => {
  assert.deepEqual(pickGpus(null, 4, new Set([0, 2]), 2), [1]);
  assert.deepEqual(pickGpus(2, 4, new Set([1]), 1), [0, 2]);
  assert.equal(pickGpus(3, 4, new Set([1, 2]), 2), null);
  assert.equal(pickGpus([1, 3], 4, new Set([3]), 1), null);
  assert.deepEqual(pickGpus(5, 4, new Set(), 0), { error: 'devices: 5 GPUs asked; cnx doctor lists 4 GPUs (0..3)' });
  assert.deepEqual(pickGpus(null, null, new Set(), 0), []);
  assert.equal(pickGpus(null, null, new Set(), 1), null);
  assert.deepEqual(pickGpus([0], 0, new Set(), 0), { error: 'devices [0]: cnx doctor finds no CUDA GPU on this machine' });
});
