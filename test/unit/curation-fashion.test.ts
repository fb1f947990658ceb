// Done-when of curation with a model, on real data: 10k Fashion-MNIST training images with 5% of the labels
// flipped (seeded); a convnextv2_atto fine-tuned by the workbench on the clean rest (32 px, 200 steps of 64
// with the short-run recipe's augmentation: about 1.4 epochs) embeds them all; cross-validated probes +
// confident learning must rank the flipped images first, far above chance. Then foreign images (noise and
// colour pictures drawn by the test) mixed in must rank among the top outliers. Timings are printed as test
// diagnostics.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { confidentLearning } from '../../native-worker/curation/confident.ts';
import { type EmbedItem, type Embeddings, embedItems, sha256File } from '../../native-worker/curation/embed.ts';
import { Embedder, loadEncoder } from '../../native-worker/curation/embedder.ts';
import { nearestNeighbours, unitRows } from '../../native-worker/curation/neighbours.ts';
import { mahalanobisScores } from '../../native-worker/curation/outliers.ts';
import { crossValidatedProbabilities } from '../../native-worker/curation/probes.ts';
import { project } from '../../native-worker/curation/projection.ts';
import { EventSink } from '../../native-worker/jobs/events.ts';
import { runJob } from '../../native-worker/jobs/run-job.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { removeDir, tempDir } from '../helpers/images.ts';
import { type NoisySlice, haveFashion, noisyFashion } from '../helpers/noisy-fashion.ts';

const COUNT = 10_000;
/** Of each kind: noise, colour pictures. */
const FOREIGN = 8;
const STEPS = 200;
const timings: Record<string, number> = {};
const timed = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
  const t = performance.now();
  const r = await f();
  timings[name] = Math.round(performance.now() - t) / 1000;
  return r;
};

describe('curation on Fashion-MNIST with flipped labels', { skip: !haveFashion() && process.env.CI !== 'true' ? 'needs Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)' : false }, () => {
  let dir = '';
  let slice: NoisySlice;
  let weights = '';
  let embedder: Embedder;
  let meta: Parameters<typeof embedItems>[0]['meta'];
  let items: EmbedItem[];
  let emb: Embeddings;

  before(async () => {
    dir = tempDir('curate-fashion');
    slice = await timed('slice', () => noisyFashion(join(dir, 'data'), COUNT, 0.05, 15));
    const runDir = join(dir, 'run');
    const events: string[] = [];
    const sink = new EventSink({ write: (s: string) => events.push(s) > 0 });
    await timed('finetune', () => runJob({
      version: 1, kind: 'finetune', runDir, model: { arch: 'convnextv2_atto', numClasses: 10, inputSize: 32 },
      data: { manifest: join(dir, 'data', 'clean.json'), batchSize: 64, workers: 1, seed: 0, augment: { scale: [0.35, 1], randAugment: null, reprob: 0 } },
      optim: { lr: 2e-3, totalSteps: STEPS, warmupSteps: 20 }, checkpointEverySteps: STEPS,
    }, { sink, signal: new AbortController().signal, threads: 2 }));
    weights = join(runDir, 'checkpoints', `step-${STEPS}.safetensors`);
    assert.ok(events.join('').includes('"status":"completed"'), events.join('').slice(-2000));
    const enc = await loadEncoder(weights);
    embedder = await Embedder.create(enc, 128, 32, { threads: 2 });
    meta = { version: 2, dataset: 'noisy-fashion', datasetId: 1, weights, weightsSha256: await sha256File(weights), arch: enc.arch.name, size: 32, dim: embedder.dim, statsDim: embedder.statsDim, createdAt: new Date().toISOString() };
    items = slice.items.map((x, id) => ({ id, path: x.path, hash: createHash('sha1').update(readFileSync(join(dir, 'data', x.path))).digest('hex') }));
    emb = (await timed('embed', () => embedItems({ root: join(dir, 'data'), items, dir: join(dir, 'store'), meta, embedder }))).embeddings;
  });
  after(async () => {
    await embedder?.release();
    removeDir(dir);
  });

  test('the flipped labels rank first: top-N precision and recall far above chance', async (t) => {
    const labels = Int32Array.from(slice.items, (x) => x.given);
    const probs = await timed('probes', () => crossValidatedProbabilities(emb.vectors, emb.dim, labels, 10));
    const cl = confidentLearning(probs, labels, 10);
    const flipped = slice.items.filter((x) => x.flipped).length;
    const top = Array.from(cl.scores.keys()).sort((a, b) => cl.scores[b]! - cl.scores[a]!).slice(0, flipped);
    const hits = top.filter((i) => slice.items[i]!.flipped).length;
    const found = cl.issues.filter((x) => slice.items[x.row]!.flipped).length;
    const suggestedRight = cl.issues.filter((x) => slice.items[x.row]!.flipped && x.suggested === slice.items[x.row]!.truth).length;
    const r = { flipped, topNPrecision: hits / flipped, flaggedPrecision: found / cl.issues.length, flaggedRecall: found / flipped, flagged: cl.issues.length, suggestedRight: suggestedRight / Math.max(1, found), timings };
    t.diagnostic(JSON.stringify(r));
    assert.equal(flipped, 500);
    // Top-N with N = flipped: precision equals recall. Measured 0.76 with this 200-step fine-tune (0.55-0.60
    // with the 10-step one it replaced); a random ranking expects 0.05 (500 of 10k) with sd ~0.01, so 0.55
    // is 50 sd above chance and leaves room for run-to-run differences of the fine-tune.
    assert.ok(r.topNPrecision >= 0.55, `top-N precision ${r.topNPrecision}`);
    // The confident joint's off-diagonal finds most flips (measured 0.80) at a precision (0.20, 2,032
    // flagged) that is 4x the base rate.
    assert.ok(r.flaggedRecall >= 0.6, `flagged recall ${r.flaggedRecall}`);
    assert.ok(r.flaggedPrecision >= 0.12, `flagged precision ${r.flaggedPrecision}`);
  });

  test('foreign images (noise, colour pictures) mixed in rank among the top outliers; the map projects them all', async (t) => {
    const foreign = await foreignImages(join(dir, 'data'), FOREIGN);
    const extra = foreign.map((path, k) => ({ id: COUNT + k, path, hash: createHash('sha1').update(readFileSync(join(dir, 'data', path))).digest('hex') }));
    const all = await embedItems({ root: join(dir, 'data'), items: [...items, ...extra], dir: join(dir, 'store'), meta, embedder });
    assert.deepEqual([all.computed, all.reused], [foreign.length, COUNT], 'only the new images are embedded');
    const scores = await timed('outliers', () => mahalanobisScores(all.stats, all.statsDim));
    const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]!);
    const inTop = order.slice(0, 40).filter((i) => i >= COUNT).length;
    const ranks = order.flatMap((i, r) => (i >= COUNT ? [r] : []));
    const unit = unitRows(all.embeddings.vectors, all.embeddings.dim);
    const nb = await timed('neighbours', () => nearestNeighbours(unit, all.embeddings.dim, 15));
    const xy = await timed('projection', () => project(all.embeddings.vectors, all.embeddings.dim, nb));
    t.diagnostic(JSON.stringify({ foreignInTop40: inTop, of: foreign.length, ranks, timings }));
    // The top 40 is 0.4% of the 10,016 images: chance would put 16 * 40 / 10016 = 0.06 foreign images there.
    // Measured: 15 of 16 (ranks 0-45; 16 of 16 with 1% shrinkage) by the middle stages' Mahalanobis
    // distance; the earlier rule (cosine distance to the 10th neighbour in the last-stage embedding) put
    // none of the noise there.
    assert.ok(inTop >= 12, `${inTop} of ${foreign.length} foreign images in the top 40 outliers (ranks ${ranks.join(', ')})`);
    assert.equal(xy.length, 2 * (COUNT + foreign.length));
    assert.ok(xy.every(Number.isFinite));
  });
});

/** `n` uniform RGB noise images and `n` colour pictures (a coloured disc on a coloured ground), 28x28. */
async function foreignImages(root: string, n: number): Promise<string[]> {
  mkdirSync(join(root, 'foreign'), { recursive: true });
  const rng = new Rng(21);
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const noise = Buffer.from(Array.from({ length: 28 * 28 * 3 }, () => rng.int(0, 256)));
    await sharp(noise, { raw: { width: 28, height: 28, channels: 3 } }).png().toFile(join(root, 'foreign', `noise-${k}.png`));
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28" fill="rgb(${(40 * k) % 256},${90 + 20 * k},200)"/><circle cx="${8 + k}" cy="14" r="7" fill="rgb(250,${30 * k},20)"/></svg>`;
    await sharp(Buffer.from(svg)).png().toFile(join(root, 'foreign', `picture-${k}.png`));
    out.push(`foreign/noise-${k}.png`, `foreign/picture-${k}.png`);
  }
  return out;
}
