import { join } from 'node:path';
import { noisyFashion } from '../test/helpers/noisy-fashion.ts';
import { runJob } from '../native-worker/jobs/run-job.ts';
import { EventSink } from '../native-worker/jobs/events.ts';
const dir = '/tmp/h15/data';
let t = Date.now();
const s = { items: [] };
console.log('slice', Date.now() - t); t = Date.now();
const steps = Number(process.argv[2] ?? 20);
const sink = new EventSink({ write: (x: string) => { for (const l of x.split('\n')) if (l.includes('"eval"') || l.includes('error')) console.log(l.slice(0, 300)); return true; } });
await runJob({ version: 1, kind: 'finetune', runDir: '/tmp/h15/run', model: { arch: 'convnextv2_atto', numClasses: 10, inputSize: 32 },
  data: { manifest: join(dir, 'clean.json'), batchSize: 64, workers: 1, seed: 0 }, optim: { lr: 4e-3, totalSteps: steps, warmupSteps: 5, weightDecay: 0.05 }, checkpointEverySteps: steps, evalEverySteps: steps }, { sink, signal: new AbortController().signal, threads: 2 });
console.log('train', Date.now() - t, s.items.length);
