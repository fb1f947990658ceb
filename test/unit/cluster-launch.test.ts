// `cnx launch --slurm` writes a launch folder whose sbatch script runs for real here: a stand-in `srun`
// execs its command once per simulated node with SLURM_* variables (2 nodes x 1 process, gloo, loopback).
// SLURM's warning signal before the time limit requeues the job and stops the run with a checkpoint; the
// requeued start resumes from it; the run folder is a normal one and `cnx attach` follows both attempts.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseRunLine } from '../../main/services/run-log.ts';
import { needTorch } from '../helpers/python.ts';
import { tempDir, tinyJob, tinyManifest, waitFor } from '../helpers/services.ts';

const CNX = join(import.meta.dirname, '..', '..', 'bin', 'cnx.mjs');

/** srun: the command once per node (SLURM_NNODES of them) at once, each with its SLURM_* place; SIGTERM is
 * passed on to every node's task, as srun does. */
const FAKE_SRUN = `#!/bin/bash
while [[ "$1" == --* ]]; do shift; done
pids=()
trap 'kill -TERM "\${pids[@]}" 2>/dev/null' TERM
for ((node = 0; node < SLURM_NNODES; node++)); do
  SLURM_NODEID=$node SLURM_PROCID=$node SLURM_LOCALID=0 SLURM_NTASKS=$SLURM_NNODES "$@" &
  pids+=($!)
done
status=0
for pid in "\${pids[@]}"; do
  while true; do
    wait "$pid"; code=$?
    # A wait cut short by the TERM trap returns > 128 while the task runs (or is not reaped yet): wait again.
    if [ $code -gt 128 ] && kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  [ $code -eq 0 ] || status=$code
done
exit $status
`;
/** scontrol: node 0's host is this one; a requeue is written down for the test to see. */
const FAKE_SCONTROL = `#!/bin/bash
if [ "$1 $2" = "show hostnames" ]; then echo 127.0.0.1; else echo "$*" >> "$(dirname "$0")/scontrol.log"; fi
`;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(cmd, args, { env: { ...process.env, OMP_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  return { child, done: new Promise((res) => child.on('close', (code) => res({ code, out, err }))) };
}

test('the sbatch script of cnx launch --slurm trains over 2 simulated nodes, requeues at the time limit and resumes; cnx attach follows it', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const dir = tempDir('launch');
  const manifest = await tinyManifest(dir);
  const config = join(dir, 'job.json');
  writeFileSync(config, JSON.stringify({ ...tinyJob(manifest, { steps: 6, checkpointEvery: 2 }), runDir: join(dir, 'unused') }));
  const out = join(dir, 'launch');
  const made = await run(process.execPath, [CNX, 'launch', '--slurm', '--config', config, '--out', out, '--nodes', '2', '--gpus-per-node', '0', '--nproc', '1', '--time', '0:10:00', '--partition', 'debug', '--account', 'lab', '--python', python], {}).done;
  assert.equal(made.code, 0, made.err);
  assert.match(made.out, /submit: sbatch .*submit\.sbatch/);
  const script = readFileSync(join(out, 'submit.sbatch'), 'utf8');
  for (const d of ['--nodes=2', '--ntasks-per-node=1', '--time=0:10:00', '--partition=debug', '--account=lab', '--requeue', '--signal=B:USR1@180']) assert.ok(script.includes(`#SBATCH ${d}\n`), d);

  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'srun'), FAKE_SRUN);
  writeFileSync(join(bin, 'scontrol'), FAKE_SCONTROL);
  for (const f of ['srun', 'scontrol']) chmodSync(join(bin, f), 0o755);
  const runDir = join(out, 'run');
  const attach = run(process.execPath, [CNX, 'attach', runDir, '--poll-ms', '200'], {});
  t.after(() => attach.child.kill());
  const slurm = { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_ID: '4242', SLURM_NNODES: '2', SLURM_JOB_NODELIST: 'node[1-2]' };
  // The first start: SLURM's USR1 before the time limit (sent once step 2 is logged) requeues the job.
  const first = run('bash', [join(out, 'submit.sbatch')], slurm);
  await waitFor('step 2 in the log', () => existsSync(join(runDir, 'events.jsonl')) && readFileSync(join(runDir, 'events.jsonl'), 'utf8').includes('"type":"progress","step":2,'), 120_000, 200);
  first.child.kill('SIGUSR1');
  const stopped = await first.done;
  assert.equal(stopped.code, 0, stopped.err);
  assert.equal(readFileSync(join(bin, 'scontrol.log'), 'utf8'), 'requeue 4242\n');
  // The requeued start resumes from the checkpoint the stop wrote.
  const job = await run('bash', [join(out, 'submit.sbatch')], { ...slurm, SLURM_RESTART_COUNT: '1' }).done;
  assert.equal(job.code, 0, job.err);
  const followed = await Promise.race([attach.done, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('cnx attach did not end')), 30_000))]);
  assert.match(followed.out, /attempt 1 ended: interrupted/);
  assert.match(followed.out, /attempt 2 started/);
  assert.equal(followed.code, 0, followed.err);
  assert.match(followed.out, /^remote run finetune convnextv2_atto \(cluster\) \(read-only\)/);
  assert.match(followed.out, /does not work here|torchrun starts/); // which launcher ran is said
  assert.match(followed.out, /step 6\/6/);
  assert.match(followed.out, /attempt 2 ended: completed/);

  // A normal run folder: the log replays (attempt, events of rank 0 alone, exit) and the checkpoints are there.
  const lines = readFileSync(join(runDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => parseRunLine(l)!);
  assert.ok(lines.every(Boolean), 'every line parses');
  const events = lines.flatMap((l) => ('event' in l ? [l.event] : []));
  const started = events.find((e) => e.type === 'started') as { worldSize?: number } | undefined;
  assert.equal(started?.worldSize, 2);
  const steps = events.filter((e) => e.type === 'progress').map((e) => (e as { step: number }).step);
  const stopStep = Math.max(...lines.flatMap((l) => ('event' in l && l.attempt === 1 && l.event.type === 'checkpoint' ? [l.event.step] : [])));
  assert.ok(stopStep >= 2 && stopStep < 6, `stopped with a checkpoint at step ${stopStep}`);
  assert.deepEqual(steps, [...Array.from({ length: stopStep }, (_, i) => i + 1), ...Array.from({ length: 6 - stopStep }, (_, i) => stopStep + i + 1)]);
  assert.deepEqual(lines.flatMap((l) => ('svc' in l ? [l.svc.type === 'exit' ? l.svc.outcome : l.svc.type] : [])), ['attempt', 'interrupted', 'attempt', 'completed']);
  assert.ok(events.some((e) => e.type === 'log' && /resumed from .*step-\d+\.state\.safetensors at step/.test(e.message)), 'the second attempt resumed');
  assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8')).step, 6);
});
