// The job service with the real PyTorch engine on a tiny dataset: a run end to end, a worker killed with
// SIGKILL and resumed, pause and cancel; and, with a scripted fake worker, the GPU lane queue, crashes,
// hangs and a rebuild of the database from the run folders.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunSummary } from '../../common/api.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { needTorch } from '../helpers/python.ts';
import { fakeLauncher, fixedResolver, recordStates, tempDir, tinyJob, tinyManifest, waitFor, waitForState } from '../helpers/services.ts';

// One thread per worker: the machine is shared and the runs are tiny.
process.env.OMP_NUM_THREADS = '1';

describe('jobs on the PyTorch engine', () => {
  let manifest: string;
  let wb: Workbench;
  let states: ReturnType<typeof recordStates>;
  let python: string | null = null;

  before(async () => {
    const dir = tempDir('jobs');
    manifest = await tinyManifest(dir);
    wb = await Workbench.open({ workspace: join(dir, 'ws'), resolver: fixedResolver('cpu'), killGraceMs: 30_000 });
    states = recordStates(wb);
  });
  after(() => wb.close({ jobTimeoutMs: 10_000 }));

  test('a run goes queued -> running -> metrics -> checkpoint -> completed', async (t) => {
    python = needTorch(t);
    if (!python) return;
    wb.settings.update({ pythonPath: python });
    const run = await wb.jobs.create({ config: tinyJob(manifest, { steps: 4, checkpointEvery: 2 }), engine: 'torch', priority: 0, start: true });
    assert.equal(run.state, 'queued');
    const done = await waitForState(wb, run.id, ['completed', 'failed']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    // The hub delivers on the next turn of the event loop, a moment after the store changes.
    await waitFor('the completed state to be published', () => states.get(run.id)?.at(-1) === 'completed', 5000);
    assert.deepEqual(states.get(run.id), ['queued', 'running', 'completed']);
    assert.equal(done.engine, 'torch');
    assert.equal(done.device, 'cpu');
    assert.equal(done.step, 4);
    assert.equal(done.lastCheckpointStep, 4);
    const series = wb.store.metricSeries(run.id, { names: ['loss', 'lr'], points: 100 });
    assert.deepEqual(series.series[0]!.toStep, [1, 2, 3, 4]);
    assert.ok(series.series[0]!.last.every((v) => v !== null && v > 0 && v < 10));
    assert.deepEqual(wb.store.checkpoints(run.id).map((c) => c.step), [2, 4]);
    assert.ok(existsSync(join(wb.store.runDir(run.id), 'checkpoints', 'step-4.safetensors')));
    const log = readFileSync(join(wb.store.runDir(run.id), 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number });
    assert.deepEqual(log.map((l) => l.seq), log.map((_, i) => i + 1));
  });

  test('a worker killed with SIGKILL leaves the run interrupted; resume continues from the last checkpoint', async (t) => {
    if (!python && !needTorch(t)) return;
    const run = await wb.jobs.create({ config: tinyJob(manifest, { steps: 30, checkpointEvery: 5 }), engine: 'torch', priority: 0, start: true });
    await waitFor('a checkpoint', () => (wb.store.summary(run.id)?.lastCheckpointStep ?? 0) >= 5, 90_000);
    const pid = wb.store.lastAttempt(run.id)!.pid!;
    process.kill(pid, 'SIGKILL');
    const stopped = await waitForState(wb, run.id, ['interrupted', 'failed', 'completed']);
    assert.equal(stopped.state, 'interrupted', JSON.stringify(stopped));
    assert.match(stopped.error!.message, /SIGKILL/);
    const killedAt = stopped.step!;
    const checkpointStep = stopped.lastCheckpointStep!;
    assert.ok(killedAt < 30 && checkpointStep <= killedAt, `killed at ${killedAt}, checkpoint ${checkpointStep}`);

    wb.jobs.resume(run.id);
    const done = await waitForState(wb, run.id, ['completed', 'failed', 'interrupted']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    const attempts = wb.store.attempts(run.id);
    assert.equal(attempts.length, 2);
    assert.equal(attempts[0]!.outcome, 'interrupted');
    assert.equal(attempts[0]!.signal, 'SIGKILL');
    assert.equal(attempts[1]!.resumedFromStep, checkpointStep);
    // Every step has its loss: the first attempt's up to the kill, the resumed attempt's after the checkpoint.
    const loss = wb.store.metricSeries(run.id, { names: ['loss'], points: 1000 }).series[0]!;
    assert.deepEqual(loss.toStep, Array.from({ length: 30 }, (_, i) => i + 1));
    const resumedLog = wb.store.events(run.id, { types: ['log'], afterSeq: 0, limit: 100 }).map((e) => (e.event.type === 'log' ? e.event.message : ''));
    assert.ok(resumedLog.some((m) => m.includes(`at step ${checkpointStep}`)), resumedLog.join('\n'));
  });

  test('pause checkpoints and stops; resume finishes; cancel stops for good', async (t) => {
    if (!python && !needTorch(t)) return;
    const run = await wb.jobs.create({ config: tinyJob(manifest, { steps: 40, checkpointEvery: 100 }), engine: 'torch', priority: 0, start: true });
    await waitFor('step 2', () => (wb.store.summary(run.id)?.step ?? 0) >= 2, 90_000);
    wb.jobs.pause(run.id);
    const paused = await waitForState(wb, run.id, ['paused', 'failed', 'completed', 'interrupted']);
    assert.equal(paused.state, 'paused');
    assert.ok(paused.lastCheckpointStep !== null && paused.lastCheckpointStep < 40, 'pausing wrote a checkpoint before the end');
    await waitFor('the paused state to be published', () => states.get(run.id)?.at(-1) === 'paused', 5000);
    assert.deepEqual(states.get(run.id)!.slice(-3), ['running', 'pausing', 'paused']);
    wb.jobs.resume(run.id);
    await waitFor('the resumed run to pass its checkpoint', () => (wb.store.summary(run.id)?.step ?? 0) > paused.lastCheckpointStep! && wb.store.summary(run.id)?.state === 'running', 90_000);
    wb.jobs.cancel(run.id);
    const cancelled = await waitForState(wb, run.id, ['cancelled', 'failed', 'completed']);
    assert.equal(cancelled.state, 'cancelled');
    assert.deepEqual(wb.store.attempts(run.id).map((a) => a.outcome), ['paused', 'cancelled']);
    assert.equal(wb.store.attempts(run.id)[1]!.resumedFromStep, paused.lastCheckpointStep);
  });
});

test("engine 'auto' picks the ONNX engine without a GPU; cnx run-job pauses and resumes like the PyTorch engine", async (t) => {
  const dir = tempDir('onnxjobs');
  const manifest = await tinyManifest(dir);
  // The real resolver: it asks `cnx doctor` what this machine has.
  const wb = await Workbench.open({ workspace: join(dir, 'ws'), killGraceMs: 30_000 });
  try {
    const info = await wb.system.info();
    if (info.autoEngine !== 'onnx') return t.skip(`this machine has a GPU for torch; 'auto' picks ${info.autoEngine}`);
    const run = await wb.jobs.create({ config: tinyJob(manifest, { steps: 8, checkpointEvery: 2 }), engine: 'auto', priority: 0, start: true });
    await waitFor('step 2', () => (wb.store.summary(run.id)?.step ?? 0) >= 2, 60_000);
    wb.jobs.pause(run.id);
    const paused = await waitForState(wb, run.id, ['paused', 'failed', 'completed']);
    assert.equal(paused.state, 'paused', JSON.stringify(paused.error));
    assert.equal(paused.engine, 'onnx');
    wb.jobs.resume(run.id);
    const done = await waitForState(wb, run.id, ['completed', 'failed']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.equal(wb.store.attempts(run.id)[1]!.resumedFromStep, paused.lastCheckpointStep);
    const loss = wb.store.metricSeries(run.id, { names: ['loss'], points: 100 }).series[0]!;
    assert.deepEqual(loss.toStep, [1, 2, 3, 4, 5, 6, 7, 8]);
  } finally {
    await wb.close();
  }
});

describe('jobs with a scripted worker', () => {
  let wb: Workbench;
  let env: NodeJS.ProcessEnv = {};
  let workspace: string;

  before(async () => {
    workspace = join(tempDir('fakejobs'), 'ws');
    wb = await Workbench.open({ workspace, resolver: fixedResolver('gpu'), launcher: fakeLauncher(() => env), killGraceMs: 1000, startupTimeoutMs: 5000 });
  });
  after(() => wb.close({ jobTimeoutMs: 5000 }));

  const job = (steps: number, device: 'cuda' | 'cpu' = 'cuda') => tinyJob('/nonexistent/manifest.json', { steps, checkpointEvery: 5, device });

  test('two GPU jobs queue on the one GPU (priority first); a CPU job runs alongside', async () => {
    env = { FAKE_STEP_MS: '15' };
    const first = await wb.jobs.create({ config: job(20), engine: 'torch', priority: 0, start: true });
    await waitForState(wb, first.id, ['running']);
    const low = await wb.jobs.create({ config: job(5), engine: 'torch', priority: 0, start: true });
    const high = await wb.jobs.create({ config: job(5), engine: 'torch', priority: 5, start: true });
    const cpu = await wb.jobs.create({ config: job(5, 'cpu'), engine: 'torch', priority: 0, start: true });
    await waitForState(wb, cpu.id, ['running', 'completed']);
    assert.equal(wb.store.summary(first.id)!.state, 'running', 'the CPU job started while the GPU job ran');
    assert.equal(wb.store.summary(low.id)!.state, 'queued');
    assert.equal(wb.store.summary(high.id)!.state, 'queued');
    for (const r of [first, high, low, cpu]) await waitForState(wb, r.id, ['completed']);
    const started = (r: RunSummary) => wb.store.attempts(r.id)[0]!.startedAt;
    const ended = (r: RunSummary) => wb.store.attempts(r.id)[0]!.endedAt!;
    assert.ok(started(high) >= ended(first), 'the second GPU job waited for the first');
    assert.ok(started(low) >= ended(high), 'higher priority started first');
    assert.equal(wb.store.summary(low.id)!.lane, 'gpu');
    assert.equal(wb.store.summary(cpu.id)!.lane, 'cpu');
  });

  test('cancelling a worker that ignores SIGTERM kills it after the grace time', async () => {
    env = { FAKE_STEP_MS: '10', FAKE_IGNORE_TERM: '1' };
    const run = await wb.jobs.create({ config: job(1000), engine: 'torch', priority: 0, start: true });
    await waitFor('a step', () => (wb.store.summary(run.id)?.step ?? 0) >= 1);
    const t0 = Date.now();
    assert.equal(wb.jobs.cancel(run.id).state, 'cancelling');
    const cancelled = await waitForState(wb, run.id, ['cancelled', 'failed', 'interrupted'], 10_000);
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(wb.store.attempts(run.id)[0]!.signal, 'SIGKILL');
    assert.ok(Date.now() - t0 >= 900, 'SIGTERM first, SIGKILL after the 1 s grace');
  });

  test('a crashing worker fails its run with the last stderr lines', async () => {
    env = { FAKE_STEP_MS: '5', FAKE_CRASH_AT: '3' };
    const run = await wb.jobs.create({ config: job(10), engine: 'torch', priority: 0, start: true });
    const failed = await waitForState(wb, run.id, ['failed', 'completed', 'interrupted']);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error!.message, /exited with code 3/);
    assert.match(failed.error!.detail, /RuntimeError: simulated crash/);
    assert.match(wb.store.attempts(run.id)[0]!.stderrTail!, /Traceback/);
  });

  test('a worker that goes silent is stopped after the stall timeout and its run fails', async () => {
    wb.settings.update({ stallTimeoutSec: 10 });
    env = { FAKE_STEP_MS: '5', FAKE_HANG_AT: '2', FAKE_IGNORE_TERM: '1' };
    const t0 = Date.now();
    const run = await wb.jobs.create({ config: job(10), engine: 'torch', priority: 0, start: true });
    const failed = await waitForState(wb, run.id, ['failed', 'completed', 'interrupted'], 30_000);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error!.message, /no event for 1\d s/);
    assert.ok(Date.now() - t0 < 20_000);
    wb.settings.update({ stallTimeoutSec: 1800 });
  });

  test('a run that cannot start (no such interpreter) fails with the reason', async () => {
    const broken = await Workbench.open({ workspace: join(workspace, '..', 'ws2'), resolver: fixedResolver('cpu'), settings: { pythonPath: '/nonexistent/python3' } });
    try {
      const run = await broken.jobs.create({ config: job(2), engine: 'torch', priority: 0, start: true });
      const failed = await waitForState(broken, run.id, ['failed', 'completed']);
      assert.match(failed.error!.message, /cannot start the torch engine: .*ENOENT/);
    } finally {
      await broken.close();
    }
  });

  test('queued runs can be held, cancelled, reprioritised and deleted; active ones cannot be deleted', async () => {
    env = { FAKE_STEP_MS: '20' };
    const blocker = await wb.jobs.create({ config: job(50), engine: 'torch', priority: 0, start: true });
    await waitForState(wb, blocker.id, ['running']);
    const held = await wb.jobs.create({ config: job(2), engine: 'torch', priority: 0, start: true });
    const doomed = await wb.jobs.create({ config: job(2), engine: 'torch', priority: 0, start: false });
    assert.equal(doomed.state, 'paused', 'created without starting');
    assert.equal(wb.jobs.pause(held.id).state, 'paused');
    assert.equal(wb.jobs.cancel(doomed.id).state, 'cancelled');
    assert.equal(wb.jobs.setPriority(held.id, 7).priority, 7);
    await assert.rejects(wb.jobs.delete(blocker.id), /is running; cancel or pause it/);
    assert.throws(() => wb.jobs.resume(blocker.id), /only paused, interrupted, failed, cancelled runs can resume/);
    await wb.jobs.delete(doomed.id);
    assert.equal(wb.store.summary(doomed.id), undefined);
    assert.equal(existsSync(wb.store.runDir(doomed.id)), false, 'its folder is gone');
    wb.jobs.cancel(blocker.id);
    await waitForState(wb, blocker.id, ['cancelled']);
    wb.jobs.resume(held.id);
    await waitForState(wb, held.id, ['completed']);
  });

  test('samples become artifacts of their run', async () => {
    env = { FAKE_STEP_MS: '5', FAKE_SAMPLE: '1' };
    const run = await wb.jobs.create({ config: job(10), engine: 'torch', priority: 0, start: true });
    await waitForState(wb, run.id, ['completed']);
    assert.deepEqual(wb.store.artifacts(run.id).map((a) => [a.step, a.kind, a.path]), [
      [5, 'reconstruction', 'samples/step-5.png'],
      [10, 'reconstruction', 'samples/step-10.png'],
    ]);
    assert.deepEqual(wb.store.events(run.id, { types: ['sample'], afterSeq: 0, limit: 10 }).map((e) => e.event.type), ['sample', 'sample']);
  });

  test('closing the workbench pauses a running job with a checkpoint; it resumes after reopening', async () => {
    env = { FAKE_STEP_MS: '20' };
    const ws = join(workspace, '..', 'ws3');
    let wb2 = await Workbench.open({ workspace: ws, resolver: fixedResolver('gpu'), launcher: fakeLauncher(() => env) });
    const run = await wb2.jobs.create({ config: job(200), engine: 'torch', priority: 0, start: true });
    await waitFor('a few steps', () => (wb2.store.summary(run.id)?.step ?? 0) >= 3);
    await wb2.close({ jobTimeoutMs: 5000 });
    wb2 = await Workbench.open({ workspace: ws, resolver: fixedResolver('gpu'), launcher: fakeLauncher(() => ({ FAKE_STEP_MS: '1' })) });
    try {
      const paused = wb2.store.summary(run.id)!;
      assert.equal(paused.state, 'paused');
      assert.ok(paused.lastCheckpointStep! >= 3);
      wb2.jobs.resume(run.id);
      await waitForState(wb2, run.id, ['completed']);
      assert.equal(wb2.store.attempts(run.id)[1]!.resumedFromStep, paused.lastCheckpointStep);
    } finally {
      await wb2.close();
    }
  });

  test('lines the database missed (a crash between log and transaction) are replayed from the log on start', async () => {
    env = { FAKE_STEP_MS: '1' };
    const ws = join(workspace, '..', 'ws4');
    let wb2 = await Workbench.open({ workspace: ws, resolver: fixedResolver('gpu'), launcher: fakeLauncher(() => env) });
    const run = await wb2.jobs.create({ config: job(20), engine: 'torch', priority: 0, start: true });
    await waitForState(wb2, run.id, ['completed']);
    const full = wb2.store.metricSeries(run.id, { points: 100 });
    // Roll the database back to just after the attempt started, as if the service died right then.
    const attemptSeq = wb2.store.db.prepare("SELECT seq FROM run_events WHERE run_id = ? AND type = 'started'").pluck().get(run.id) as number;
    wb2.store.db.prepare("UPDATE runs SET state = 'running', event_seq = ?, step = NULL WHERE id = ?").run(attemptSeq - 1, run.id);
    wb2.store.db.prepare('DELETE FROM metrics WHERE run_id = ?').run(run.id);
    wb2.store.db.prepare("UPDATE jobs SET outcome = NULL, ended_at = NULL, done_status = NULL WHERE run_id = ?").run(run.id);
    await wb2.close();
    wb2 = await Workbench.open({ workspace: ws, resolver: fixedResolver('gpu'), launcher: fakeLauncher(() => env) });
    try {
      assert.equal(wb2.store.summary(run.id)!.state, 'completed', 'the replayed lines say it finished');
      assert.deepEqual(wb2.store.metricSeries(run.id, { points: 100 }), full);
    } finally {
      await wb2.close();
    }
  });

  test('the database is rebuilt from the run folders with the same runs, attempts and metrics', async () => {
    env = {};
    const before = wb.store.runs();
    const metrics = before.map((r) => wb.store.metricSeries(r.id, { points: 1000 }));
    const attempts = before.map((r) => wb.store.attempts(r.id));
    const restored = await wb.store.rebuildFromRunFolders();
    assert.equal(restored.length, before.length);
    const strip = (s: RunSummary) => ({ ...s, updatedAt: '' });
    assert.deepEqual(wb.store.runs().map(strip), before.map(strip));
    assert.deepEqual(before.map((r) => wb.store.metricSeries(r.id, { points: 1000 })), metrics);
    assert.deepEqual(before.map((r) => wb.store.attempts(r.id)), attempts);
  });
});
