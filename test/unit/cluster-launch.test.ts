// `cnx launch --slurm` writes a launch folder whose sbatch script runs for real here: a stand-in `srun`
// execs its command once per simulated node with SLURM_* variables (2 nodes x 1 process, gloo, loopback),
// the run folder is a normal one, and `cnx attach` follows it live to its end.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseRunLine } from '../../main/services/run-log.ts';
import { needTorch } from '../helpers/python.ts';
import { tempDir, tinyJob, tinyManifest } from '../helpers/services.ts';

const CNX = join(import.meta.dirname, '..', '..', 'bin', 'cnx.mjs');

/** srun: the command once per node (SLURM_NNODES of them) at once, each with its SLURM_* place. */
const FAKE_SRUN = `#!/bin/bash
while [[ "$1" == --* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
  SLURM_NODEID=$node SLURM_PROCID=$node SLURM_LOCALID=0 SLURM_NTASKS=$SLURM_NNODES "$@" &
  pids+=($!)
done
status=0
for pid in "\${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
`;
const FAKE_SCONTROL = `#!/bin/bash
if [ "$1 $2" = "show hostnames" ]; then echo 127.0.0.1; else echo "scontrol $*"; fi
`;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(cmd, args, { env: { ...process.env, OMP_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  return { child, done: new Promise((res) => child.on('close', (code) => res({ code, out, err }))) };
}

test('the sbatch script of cnx launch --slurm trains over 2 simulated nodes and cnx attach follows it', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const dir = tempDir('launch');
  const manifest = await tinyManifest(dir);
  const config = join(dir, 'job.json');
  writeFileSync(config, JSON.stringify({ ...tinyJob(manifest, { steps: 4, checkpointEvery: 2 }), runDir: join(dir, 'unused') }));
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
  const job = await run('bash', [join(out, 'submit.sbatch')], { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_ID: '4242', SLURM_NNODES: '2', SLURM_JOB_NODELIST: 'node[1-2]' }).done;
  assert.equal(job.code, 0, job.err);
  const followed = await Promise.race([attach.done, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('cnx attach did not end')), 30_000))]);
  assert.equal(followed.code, 0, followed.err);
  assert.match(followed.out, /^remote run finetune convnextv2_atto \(cluster\) \(read-only\)/);
  assert.match(followed.out, /does not work here|torchrun starts/); // which launcher ran is said
  assert.match(followed.out, /step 4\/4/);
  assert.match(followed.out, /attempt 1 ended: completed/);

  // A normal run folder: the log replays (attempt, events of rank 0 alone, exit) and the checkpoints are there.
  const lines = readFileSync(join(runDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => parseRunLine(l)!);
  assert.ok(lines.every(Boolean), 'every line parses');
  const events = lines.flatMap((l) => ('event' in l ? [l.event] : []));
  const started = events.find((e) => e.type === 'started') as { worldSize?: number } | undefined;
  assert.equal(started?.worldSize, 2);
  assert.deepEqual(events.filter((e) => e.type === 'progress').map((e) => (e as { step: number }).step), [1, 2, 3, 4]);
  assert.deepEqual(lines.flatMap((l) => ('svc' in l ? [l.svc.type] : [])), ['attempt', 'exit']);
  assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8')).step, 4);
});
