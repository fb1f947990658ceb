// A run folder that no service here runs (a cluster run on a shared disk) is attached read-only: marked
// remote, followed live from its events.jsonl as it grows, never scheduled, paused or deleted from disk.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Workbench } from '../../main/services/workbench.ts';
import { fixedResolver, tempDir, tinyJob, waitForState } from '../helpers/services.ts';

test('runs.attach follows a remote run folder live and read-only', async () => {
  const dir = tempDir('remote');
  const run = join(dir, 'cluster', 'run');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  writeFileSync(join(run, 'run.json'), JSON.stringify({ id: 'ft-cluster', name: 'finetune on 4 nodes', createdAt: new Date(0).toISOString(), engineChoice: 'torch', priority: 0, dataset: null }));
  writeFileSync(join(run, 'config.json'), JSON.stringify({ ...tinyJob('/cluster/manifest.json', { steps: 4, checkpointEvery: 2 }), runDir: run }));
  let seq = 0;
  const line = (body: object) => appendFileSync(join(run, 'events.jsonl'), `${JSON.stringify({ seq: ++seq, t: Date.now(), ...body })}\n`);
  const event = (e: object) => line({ attempt: 1, event: { v: 1, ...e } });
  line({ svc: { type: 'attempt', attempt: 1, engine: 'torch', lane: 'gpu', pid: 4242, resumedFromStep: null } });
  event({ type: 'started', engine: 'torch', device: 'cuda:H100', params: 3_388_363, kind: 'finetune', arch: 'convnextv2_atto', worldSize: 32 });
  event({ type: 'progress', step: 1, totalSteps: 4, epoch: 0.25, imagesPerSec: 900 });

  const wb = await Workbench.open({ workspace: join(dir, 'ws'), resolver: fixedResolver('gpu') });
  try {
    const attached = await wb.jobs.attach(run);
    assert.equal(attached.remote, true);
    assert.equal(attached.state, 'running');
    assert.equal(attached.step, 1);
    assert.throws(() => wb.jobs.pause(attached.id), /remote run, followed read-only/);
    assert.throws(() => wb.jobs.resume(attached.id), /remote run/);

    event({ type: 'progress', step: 4, totalSteps: 4, epoch: 1, imagesPerSec: 950 });
    event({ type: 'done', status: 'completed' });
    line({ svc: { type: 'exit', attempt: 1, code: 0, signal: null, outcome: 'completed', error: null, stderrTail: null } });
    const done = await waitForState(wb, attached.id, ['completed', 'failed'], 15_000);
    assert.equal(done.step, 4);
    assert.equal(readFileSync(join(run, 'events.jsonl'), 'utf8').trim().split('\n').length, seq, 'the service wrote nothing into the folder');

    await wb.jobs.delete(attached.id);
    assert.equal(wb.store.summary(attached.id), undefined);
    assert.ok(existsSync(join(run, 'events.jsonl')), "forgetting a remote run leaves its files alone");
  } finally {
    await wb.close();
  }
});
