// A scripted stand-in for an engine: reads a job config like run_job.py, speaks the same events, writes
// checkpoint files and pointers the same way, and stops with a checkpoint on SIGTERM. The environment
// scripts it:
//   FAKE_STEP_MS       time per step (default 20)
//   FAKE_RATE, FAKE_SECONDS   load mode: FAKE_RATE metrics events per second for FAKE_SECONDS, then done
//   FAKE_CRASH_AT      at this step, print a traceback to stderr and exit 3 without 'done'
//   FAKE_HANG_AT       at this step, go silent (stay alive)
//   FAKE_IGNORE_TERM   ignore SIGTERM (only SIGKILL stops it)
//   FAKE_SAMPLE        with each checkpoint, write samples/step-N.png and announce it as a sample
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const env = process.env;
const stepMs = Number(env.FAKE_STEP_MS ?? 20);
const total = config.optim?.totalSteps ?? 1;
const every = config.checkpointEverySteps ?? total;
const ckptDir = join(config.runDir, 'checkpoints');
mkdirSync(ckptDir, { recursive: true });
let stopping = false;
process.on('SIGTERM', () => {
  if (!env.FAKE_IGNORE_TERM) stopping = true;
});

const emit = (type, fields) => process.stdout.write(`${JSON.stringify({ v: 1, type, ...fields })}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function checkpoint(step) {
  const weights = `step-${step}.safetensors`;
  const state = `step-${step}.state.safetensors`;
  writeFileSync(join(ckptDir, weights), Buffer.alloc(64, step));
  writeFileSync(join(ckptDir, state), Buffer.alloc(32, step));
  writeFileSync(join(ckptDir, 'last.json.tmp'), JSON.stringify({ step, weights, state }));
  renameSync(join(ckptDir, 'last.json.tmp'), join(ckptDir, 'last.json'));
  emit('checkpoint', { step, path: join(ckptDir, weights), statePath: join(ckptDir, state) });
}

let step = 0;
// Like run_job.py: resume takes a pointer (last.json) or a step-N(.state).safetensors file.
if (config.resume) step = config.resume.endsWith('.json') ? JSON.parse(readFileSync(config.resume, 'utf8')).step : Number(/step-(\d+)\./.exec(config.resume)[1]);
emit('started', { engine: 'torch', device: 'fake', params: 1, kind: config.kind, arch: config.model.arch });
if (config.resume) emit('log', { level: 'info', message: `resumed at step ${step}` });

if (env.FAKE_RATE) {
  // Load mode: metrics events at a fixed rate, written in chunks every few milliseconds.
  const rate = Number(env.FAKE_RATE);
  const seconds = Number(env.FAKE_SECONDS ?? 1);
  const start = Date.now();
  let sent = 0;
  while (sent < rate * seconds) {
    const due = Math.min(rate * seconds, Math.floor(((Date.now() - start) / 1000) * rate));
    let chunk = '';
    for (; sent < due; sent++) chunk += `{"v":1,"type":"metrics","step":${sent + 1},"values":{"loss":${1 / (sent + 1)},"lr":0.001,"gradNorm":${sent % 7}}}\n`;
    if (chunk && !process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    await sleep(5);
  }
  emit('done', { status: 'completed' });
} else {
  while (step < total) {
    await sleep(stepMs);
    step++;
    if (Number(env.FAKE_CRASH_AT) === step) {
      process.stderr.write('Traceback (most recent call last):\n  File "train.py", line 1, in <module>\nRuntimeError: simulated crash\n');
      process.exit(3);
    }
    if (Number(env.FAKE_HANG_AT) === step) await new Promise(() => setInterval(() => {}, 1000));
    emit('progress', { step, totalSteps: total, epoch: step / 4, imagesPerSec: 100 });
    emit('metrics', { step, values: { loss: 1 / step, lr: 0.001 } });
    if (stopping) {
      checkpoint(step);
      emit('done', { status: 'cancelled' });
      process.exit(0);
    }
    if (step % every === 0 || step === total) {
      checkpoint(step);
      if (env.FAKE_SAMPLE) {
        mkdirSync(join(config.runDir, 'samples'), { recursive: true });
        const path = join(config.runDir, 'samples', `step-${step}.png`);
        writeFileSync(path, Buffer.from('89504e470d0a1a0a', 'hex'));
        emit('sample', { step, kind: 'reconstruction', path });
      }
    }
  }
  emit('done', { status: 'completed' });
}
