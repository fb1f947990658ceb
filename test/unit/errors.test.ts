// Errors a user can act on share one base class: a job reports them by message alone, and anything else
// (a bug) with its stack.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../common/errors.ts';
import { JobConfigError } from '../../common/job.ts';
import { ManifestError } from '../../common/manifest.ts';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';
import { CheckpointError } from '../../native-worker/checkpoint/tensor.ts';
import { CliError } from '../../native-worker/cli/command.ts';
import { CatalogError } from '../../native-worker/data/catalog/catalog.ts';
import { IdxError } from '../../native-worker/data/import/idx.ts';
import { ImportError } from '../../native-worker/data/import/importer.ts';
import { LoaderError } from '../../native-worker/data/pipeline/loader.ts';
import { GraphError } from '../../native-worker/engine/ir.ts';
import { EventSink } from '../../native-worker/jobs/events.ts';
import { JobError, runJob } from '../../native-worker/jobs/run-job.ts';

test('job, config, checkpoint, manifest, loader, dataset and CLI errors are UserErrors and keep their names', () => {
  const errors = [new JobError('x'), new JobConfigError('model.arch', 'x'), new CheckpointError('x'), new ManifestError('x'), new LoaderError('x'), new CatalogError('x'), new ImportError('x'), new IdxError('x'), new CliError('x')];
  for (const e of errors) {
    assert.ok(e instanceof UserError, e.name);
    assert.ok(e instanceof Error, e.name);
    assert.equal(e.name, e.constructor.name);
  }
  assert.equal(new GraphError('x') instanceof UserError, false, 'a graph error is a bug, not the user’s to fix');
});

async function errorOf(config: unknown): Promise<Extract<JobEvent, { type: 'error' }>> {
  const events: JobEvent[] = [];
  const sink = new EventSink({ write: (s: string) => (s.split('\n').filter(Boolean).forEach((l) => events.push(parseEventLine(l)!)), true) });
  assert.equal(await runJob(config, { sink, signal: new AbortController().signal, threads: 1 }), 'failed');
  return events.find((e): e is Extract<JobEvent, { type: 'error' }> => e.type === 'error')!;
}

test('a job reports a UserError (a manifest it cannot read) by its message, without a stack trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cnx-errors-'));
  try {
    const manifest = join(dir, 'manifest.json');
    writeFileSync(manifest, '{"not": "a manifest"}');
    const e = await errorOf({ version: 1, kind: 'finetune', runDir: join(dir, 'run'), model: { arch: 'convnextv2_atto', numClasses: 2, inputSize: 32 }, data: { manifest, batchSize: 2, workers: 0 }, optim: { lr: 1e-3, totalSteps: 1, warmupSteps: 0 }, checkpointEverySteps: 1 });
    assert.match(e.message, /manifest\.json/);
    assert.equal(e.detail, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
