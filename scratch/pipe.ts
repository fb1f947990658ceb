import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Embedder, loadEncoder } from '../native-worker/curation/embedder.ts';
import { embedItems, sha256File } from '../native-worker/curation/embed.ts';
import { crossValidatedProbabilities } from '../native-worker/curation/probes.ts';
import { confidentLearning } from '../native-worker/curation/confident.ts';
import { runJob } from '../native-worker/jobs/run-job.ts';
import { EventSink } from '../native-worker/jobs/events.ts';
const dir = '/tmp/h15/data';
const [steps, batch, lr, tag] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
const runDir = `/tmp/h15/run-${tag}`;
let t = performance.now();
if (steps > 0) {
const sink = new EventSink({ write: (x: string) => { for (const l of x.split('\n')) if (l.includes('"eval"') || l.includes('error')) console.log(l.slice(0, 120)); return true; } });
await runJob({ version: 1, kind: 'finetune', runDir, model: { arch: 'convnextv2_atto', numClasses: 10, inputSize: 32 },
  data: { manifest: join(dir, 'clean.json'), batchSize: batch, workers: 1, seed: 0 }, optim: { lr, totalSteps: steps, warmupSteps: 3 }, checkpointEverySteps: steps, evalEverySteps: steps }, { sink, signal: new AbortController().signal, threads: 2 });
console.log('train s', (performance.now() - t) / 1000); t = performance.now();
}
const all = JSON.parse(readFileSync(join(dir, 'all.json'), 'utf8'));
const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as boolean[];
const items = all.items.map((it: { path: string }, id: number) => ({ id, path: it.path, hash: createHash('sha1').update(readFileSync(join(dir, it.path))).digest('hex') }));
const w = steps > 0 ? `${runDir}/checkpoints/step-${steps}.safetensors` : process.argv[6]!;
const enc = await loadEncoder(w);
const emb = await Embedder.create(enc, 256, 32, { threads: 2 });
const meta = { version: 1 as const, dataset: 'x', datasetId: 1, weights: w, weightsSha256: await sha256File(w), arch: enc.arch.name, size: 32, dim: emb.dim, createdAt: new Date().toISOString() };
const r = await embedItems({ root: dir, items, dir: `/tmp/h15/store-${tag}`, meta, embedder: emb });
console.log('embed s', r.seconds, r.computed); t = performance.now();
const labels = Int32Array.from(all.items, (x: { label: number }) => x.label);
const probs = crossValidatedProbabilities(r.embeddings.vectors, r.embeddings.dim, labels, 10);
console.log('probes s', (performance.now() - t) / 1000);
let acc = 0; for (let i = 0; i < labels.length; i++) { const p = probs.subarray(i * 10, i * 10 + 10); if (p.indexOf(Math.max(...p)) === labels[i]) acc++; }
console.log('probe acc vs given', acc / labels.length);
const cl = confidentLearning(probs, labels, 10);
const nflip = truth.filter(Boolean).length;
const ranked = Array.from(cl.scores.keys()).sort((a, b) => cl.scores[b]! - cl.scores[a]!).slice(0, nflip);
const hits = ranked.filter((i) => truth[i]).length;
const flaggedHits = cl.issues.filter((x) => truth[x.row]).length;
console.log(JSON.stringify({ nflip, topN_precision: hits / nflip, flagged: cl.issues.length, flagged_precision: flaggedHits / cl.issues.length, flagged_recall: flaggedHits / nflip }));
