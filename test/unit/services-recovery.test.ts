// The service process itself killed with SIGKILL in the middle of a PyTorch run (`cnx serve`, driven over
// its HTTP API), then a new service opened on the same workspace: the run is marked interrupted, the
// checkpoint the orphaned worker wrote is found, and resuming finishes the run with its whole metric history.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { ApiResult, RunDetail, RunSummary } from '../../common/api.ts';
import { REPO_ROOT } from '../../main/services/engines.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { needTorch } from '../helpers/python.ts';
import { fixedResolver, tempDir, tinyJob, tinyManifest, waitForState } from '../helpers/services.ts';

test('killing the service mid-run and restarting it leaves the run interrupted and resumable', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const dir = tempDir('recovery');
  const workspace = join(dir, 'ws');
  const manifest = await tinyManifest(dir);
  const serve = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'cnx.mjs'), 'serve', '--workspace', workspace], {
    env: { ...process.env, CNX_PYTHON: python, OMP_NUM_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => {
    if (serve.exitCode === null && serve.signalCode === null) serve.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: serve.stdout }).once('line', resolve);
    serve.once('exit', (code) => reject(new Error(`cnx serve exited (${code}) before printing its URL`)));
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{40,}$/, 'loopback unless asked');
  const base = url.slice(0, url.indexOf('/?'));
  const token = url.slice(url.indexOf('token=') + 6);
  const call = async <T>(method: string, body: unknown): Promise<T> => {
    const r = (await (await fetch(`${base}/api/${method}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as ApiResult;
    if (!r.ok) throw new Error(`${method}: ${r.error.message}`);
    return r.value as T;
  };

  const run = await call<RunSummary>('runs.create', { config: tinyJob(manifest, { steps: 30, checkpointEvery: 5 }), engine: 'torch' });
  const deadline = Date.now() + 120_000;
  let seen: RunDetail;
  do {
    await new Promise((r) => setTimeout(r, 100));
    seen = await call<RunDetail>('runs.get', { runId: run.id });
    assert.ok(Date.now() < deadline, `no checkpoint in time: ${JSON.stringify(seen)}`);
  } while ((seen.lastCheckpointStep ?? 0) < 5);
  assert.equal(seen.state, 'running');
  const workerPid = seen.attemptsList[0]!.pid!;
  serve.kill('SIGKILL');
  await new Promise((r) => serve.once('exit', r));

  const wb = await Workbench.open({ workspace, resolver: fixedResolver('cpu'), settings: { pythonPath: python }, killGraceMs: 60_000 });
  try {
    const after = wb.store.summary(run.id)!;
    assert.equal(after.state, 'interrupted');
    assert.match(after.error!.message, /workbench stopped/);
    assert.throws(() => process.kill(workerPid, 0), 'the orphaned worker is gone');
    // The orphaned worker noticed its reader was gone, wrote a checkpoint and stopped; that file is found,
    // but resuming starts from the newest checkpoint the log announced, so no step's metrics go missing.
    const announced = wb.store.lastAnnouncedCheckpoint(run.id)!.step;
    assert.ok(announced >= seen.lastCheckpointStep!);
    assert.ok(after.lastCheckpointStep! >= announced, `found on disk: ${after.lastCheckpointStep}`);
    assert.ok(after.step! >= seen.step!);

    wb.jobs.resume(run.id);
    const done = await waitForState(wb, run.id, ['completed', 'failed', 'interrupted']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    const attempts = wb.store.attempts(run.id);
    assert.deepEqual(attempts.map((a) => a.outcome), ['interrupted', 'completed']);
    assert.equal(attempts[1]!.resumedFromStep, announced);
    const loss = wb.store.metricSeries(run.id, { names: ['loss'], points: 1000 }).series[0]!;
    assert.deepEqual(loss.toStep, Array.from({ length: 30 }, (_, i) => i + 1), 'metric history intact');
  } finally {
    await wb.close();
  }
});
