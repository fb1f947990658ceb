// Curation with a model: float16 packing, the linear probes against plain gradient descent, confident
// learning on a worked example, exact neighbours against brute force, and `cnx dataset embed / issues` on a
// small catalog dataset: stored, resumed, invalidated by a changed file, refused for a run of other classes.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sealManifest } from '../../common/manifest.ts';
import { parseArch } from '../../common/variants.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { main } from '../../native-worker/cli.ts';
import { confidentLearning } from '../../native-worker/curation/confident.ts';
import { fromHalf, packHalf, toHalf, unpackHalf } from '../../native-worker/curation/half.ts';
import { nearestNeighbours, similarGroups, unitRows } from '../../native-worker/curation/neighbours.ts';
import { mahalanobisScores } from '../../native-worker/curation/outliers.ts';
import { crossValidatedProbabilities, fitProbe, predictRow } from '../../native-worker/curation/probes.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { photo, removeDir, tempDir } from '../helpers/images.ts';
import { relErr } from '../helpers/numeric.ts';

test('float16: exact bit patterns, round to nearest even, relative error <= 2^-11', () => {
  assert.deepEqual([1, -2, 65504, 0.5, 2 ** -24, 1e6, 0].map(toHalf), [0x3c00, 0xc000, 0x7bff, 0x3800, 0x0001, 0x7c00, 0]);
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even mantissa');
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(fromHalf(0x3555), 0.333251953125);
  const rng = new Rng(1);
  const x = Float32Array.from({ length: 1000 }, () => rng.normal() * 10);
  const back = unpackHalf(packHalf(x));
  x.forEach((v, i) => assert.ok(Math.abs(back[i]! - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${v} -> ${back[i]}`));
});

/** Three Gaussian blobs in d dims, means 3 apart on the first axes. */
function blobs(n: number, d: number, seed: number) {
  const rng = new Rng(seed);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const x = Float32Array.from({ length: n * d }, (_, t) => rng.normal() + (t % d === labels[Math.floor(t / d)]! ? 3 : 0));
  return { x, labels };
}

test('linear probe: the same probabilities as full-batch gradient descent run to convergence', () => {
  const d = 4;
  const { x, labels } = blobs(300, d, 2);
  const rows = Int32Array.from({ length: 300 }, (_, i) => i);
  const l2 = 1e-2;
  const probe = fitProbe(x, d, labels, 3, rows, { folds: 1, epochs: 300, batch: 300, lr: 0.05, l2, seed: 0 });
  // Reference: plain gradient descent on the same standardized inputs and penalty, many small steps.
  const { mean, scale } = probe;
  const w = new Float64Array(3 * d);
  const b = new Float64Array(3);
  for (let it = 0; it < 4000; it++) {
    const gw = new Float64Array(3 * d);
    const gb = new Float64Array(3);
    for (let i = 0; i < 300; i++) {
      const z = Array.from({ length: d }, (_, j) => (x[i * d + j]! - mean[j]!) * scale[j]!);
      const logits = [0, 1, 2].map((c) => b[c]! + z.reduce((s, v, j) => s + v * w[c * d + j]!, 0));
      const m = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - m));
      const tot = e.reduce((s, v) => s + v, 0);
      e.forEach((v, c) => {
        const g = v / tot - (labels[i] === c ? 1 : 0);
        gb[c]! += g / 300;
        z.forEach((zj, j) => (gw[c * d + j]! += (g * zj) / 300));
      });
    }
    for (let j = 0; j < w.length; j++) w[j]! -= 0.5 * (gw[j]! + l2 * w[j]!);
    for (let c = 0; c < 3; c++) b[c]! -= 0.5 * gb[c]!;
  }
  let worst = 0;
  for (let i = 0; i < 300; i += 7) {
    const p = predictRow(probe, x, d, 3, i);
    const z = Array.from({ length: d }, (_, j) => (x[i * d + j]! - mean[j]!) * scale[j]!);
    const logits = [0, 1, 2].map((c) => b[c]! + z.reduce((s, v, j) => s + v * w[c * d + j]!, 0));
    const e = logits.map((v) => Math.exp(v - Math.max(...logits)));
    const tot = e.reduce((s, v) => s + v, 0);
    for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(p[c]! - e[c]! / tot));
  }
  // Both minimize a strictly convex objective; 0.02 allows for Adam's last steps around the optimum.
  assert.ok(worst < 0.02, `largest probability difference ${worst}`);
});

test('cross-validated probes: out-of-sample accuracy near the Bayes rate of the blobs', () => {
  const { x, labels } = blobs(1500, 6, 3);
  const probs = crossValidatedProbabilities(x, 6, labels, 3);
  let right = 0;
  for (let i = 0; i < 1500; i++) {
    const p = Array.from(probs.subarray(i * 3, i * 3 + 3));
    if (p.indexOf(Math.max(...p)) === labels[i]) right++;
  }
  // Means 3*sqrt(2) apart: the Bayes error between two blobs is Phi(-1.5*sqrt(2)) ~ 1.7% each, ~3.4% for three.
  assert.ok(right / 1500 > 0.94, `accuracy ${right / 1500}`);
});

test('confident learning: per-class thresholds, the confident joint and its off-diagonal', () => {
  // Four images labelled 0, three labelled 1 (k = 2). Thresholds: t0 = mean p0 over label 0, t1 likewise.
  const probs = Float32Array.from([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.6, 0.4]);
  const labels = Int32Array.from([0, 0, 0, 0, 1, 1, 1]);
  const r = confidentLearning(probs, labels, 2);
  assert.deepEqual(Array.from(r.thresholds, (t) => +t.toFixed(4)), [0.625, 0.6333]);
  // Image 3 (labelled 0, p1 = 0.9 >= t1) and image 6 (labelled 1, p0 = 0.6 < t0, p1 = 0.4 < t1: uncounted).
  assert.deepEqual(Array.from(r.joint), [3, 1, 0, 2]);
  assert.deepEqual(r.issues.map((x) => [x.row, x.given, x.suggested, +x.score.toFixed(2)]), [[3, 0, 1, 0.9]]);
});

test('exact neighbours across tiles agree with brute force; groups', async () => {
  const rng = new Rng(4);
  const n = 1300;
  const d = 8;
  const x = Float32Array.from({ length: n * d }, () => rng.normal());
  x.set(x.subarray(0, d).map((v) => v * 2), 1200 * d); // row 1200 points where row 0 does: cosine 1
  const u = unitRows(x, d);
  const nb = await nearestNeighbours(u, d, 5);
  for (const i of [0, 1, 777, 1024, 1299]) {
    const sims = Array.from({ length: n }, (_, j) => [j, j === i ? -Infinity : u.subarray(i * d, i * d + d).reduce((s, v, t) => s + v * u[j * d + t]!, 0)] as const);
    sims.sort((a, b) => b[1] - a[1]);
    assert.deepEqual(Array.from(nb.index.subarray(i * 5, i * 5 + 5)), sims.slice(0, 5).map((s) => s[0]), `row ${i}`);
    nb.similarity.subarray(i * 5, i * 5 + 5).forEach((s, t) => assert.ok(Math.abs(s - sims[t]![1]) < 1e-5));
  }
  assert.deepEqual(similarGroups(nb, 0.999), [[0, 1200]]);
});

test('outlier scores are squared Mahalanobis distances: the 2x2 closed form, and unchanged by an affine map of the features', () => {
  const rng = new Rng(6);
  const n = 400;
  const x = Float32Array.from({ length: 2 * n }, () => rng.normal());
  for (let r = 0; r < n; r++) x[2 * r + 1] = 0.8 * x[2 * r]! + 0.3 * x[2 * r + 1]! + 5; // correlated, offset
  const mean = [0, 1].map((j) => Array.from({ length: n }, (_, r) => x[2 * r + j]!).reduce((a, b) => a + b) / n);
  const c = [0, 0, 0]; // var0, cov01, var1 (divided by n)
  for (let r = 0; r < n; r++) {
    const [a, b] = [x[2 * r]! - mean[0]!, x[2 * r + 1]! - mean[1]!];
    c[0]! += (a * a) / n;
    c[1]! += (a * b) / n;
    c[2]! += (b * b) / n;
  }
  const shrink = 0.01;
  const ridge = (shrink * (c[0]! + c[2]!)) / 2;
  const [p, q, s] = [c[0]! + ridge, c[1]!, c[2]! + ridge];
  const det = p * s - q * q;
  const scores = mahalanobisScores(x, 2, { shrink });
  for (const r of [0, 17, 399]) {
    const [a, b] = [x[2 * r]! - mean[0]!, x[2 * r + 1]! - mean[1]!];
    const want = (s * a * a - 2 * q * a * b + p * b * b) / det;
    assert.ok(Math.abs(scores[r]! - want) < 1e-4 * want + 1e-6, `row ${r}: ${scores[r]} vs closed form ${want}`);
  }
  // Without shrinkage the distance ignores any invertible affine change of the features.
  const d = 6;
  const y = Float32Array.from({ length: n * d }, () => rng.normal());
  const a = Array.from({ length: d * d }, (_, k) => (k % (d + 1) === 0 ? 2 : 0.3 * rng.normal()));
  const ya = new Float32Array(n * d);
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) ya[r * d + i] = 3 + Array.from({ length: d }, (_, k) => a[i * d + k]! * y[r * d + k]!).reduce((u, v) => u + v);
  const [s0, s1] = [mahalanobisScores(y, d, { shrink: 0 }), mahalanobisScores(ya, d, { shrink: 0 })];
  assert.ok(relErr(s1, s0) < 1e-4, `affine map changed the scores by ${relErr(s1, s0)}`);
});

test('outliers: points that break the features\' correlation rank first, though no single feature of theirs is extreme', () => {
  const rng = new Rng(8);
  const d = 8;
  const rows: number[][] = Array.from({ length: 1000 }, () => {
    const t = rng.normal();
    return Array.from({ length: d }, () => t + 0.1 * rng.normal()); // all features move together
  });
  // Planted: half the features at +1, half at -1 (each within the usual range of one feature).
  for (let k = 0; k < 3; k++) rows.push(Array.from({ length: d }, (_, j) => (j < d / 2 ? 1 : -1) + 0.1 * rng.normal()));
  const x = Float32Array.from(rows.flat());
  const scores = mahalanobisScores(x, d);
  const top = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]!).slice(0, 3);
  assert.deepEqual(top.sort(), [1000, 1001, 1002]);
  const farthest = Math.max(...rows.slice(0, 1000).flat().map(Math.abs));
  assert.ok(farthest > 1.5, `the dataset's own features reach ${farthest}, beyond the planted points' 1`);
});

/**
 * `cnx dataset ...` in this process (a spawned cnx pays seconds of startup per call), its console output
 * captured. process.stdout itself stays alone: node's test runner reports through it.
 */
async function cnx(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => out.push(`${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => err.push(`${a.join(' ')}\n`);
  let status: number;
  try {
    status = await main(['dataset', ...args]);
  } finally {
    [console.log, console.error] = [log, error];
  }
  return { status, stdout: out.join(''), stderr: err.join(''), json: () => JSON.parse(out.join('')) as Record<string, unknown> };
}

describe('cnx dataset embed / issues', () => {
  let root: string;
  let ws: string;
  let weights: string;
  before(async () => {
    root = tempDir('curate-src');
    ws = tempDir('curate-ws');
    for (const [c, cls] of ['red', 'blue', 'green'].entries()) {
      mkdirSync(join(root, 'data', cls), { recursive: true });
      for (let i = 0; i < 8; i++) await photo(100 * c + i, 40, 40).tint(['#f00', '#00f', '#0f0'][c]!).png().toFile(join(root, 'data', cls, `${i}.png`));
    }
    const specs = convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 3 });
    const values = initParams(specs, 5);
    weights = join(root, 'atto.safetensors');
    await saveCheckpoint(weights, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
    assert.equal((await cnx(['import', join(root, 'data'), '--name', 'tints', '--workspace', ws, '--json'])).status, 0);
  });
  after(() => {
    removeDir(root);
    removeDir(ws);
  });

  test('embed stores every image, a second run reuses them, a changed file is embedded again', async () => {
    const first = await cnx(['embed', 'tints', '--weights', weights, '--size', '32', '--batch', '10', '--workspace', ws, '--json']);
    assert.equal(first.status, 0, first.stderr);
    const a = first.json();
    assert.deepEqual([a.images, a.computed, a.reused, a.dim, a.size, a.arch], [24, 24, 0, 320, 32, 'convnextv2_atto']);
    const again = (await cnx(['embed', 'tints', '--weights', weights, '--size', '32', '--workspace', ws, '--json'])).json();
    assert.deepEqual([again.computed, again.reused], [0, 24]);
    await photo(999, 40, 40).png().toFile(join(root, 'data', 'red', '0.png'));
    assert.equal((await cnx(['import', join(root, 'data'), '--name', 'tints', '--workspace', ws, '--json'])).status, 0);
    const changed = (await cnx(['embed', 'tints', '--weights', weights, '--size', '32', '--workspace', ws, '--json'])).json();
    assert.deepEqual([changed.computed, changed.reused], [1, 23]);
  });

  test('issues --json: label issues, outliers, groups, the map and timings', async () => {
    const r = await cnx(['issues', 'tints', '--weights', weights, '--size', '32', '--folds', '3', '--workspace', ws, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const s = r.json() as { labelIssues: { given: string; suggested: string; score: number }[]; outliers: unknown[]; groups: { paths: string[] }[]; classes: string[]; timings: Record<string, number>; report: string };
    assert.deepEqual(s.classes, ['blue', 'green', 'red']);
    assert.equal(s.outliers.length, 24);
    for (const x of s.labelIssues) assert.ok(x.given !== x.suggested && x.score >= 0 && x.score <= 1);
    for (const k of ['embed', 'probes', 'neighbours', 'projection']) assert.ok(s.timings[k]! >= 0, k);
    assert.match(s.report, /curation\.json$/);
    // The duplicate review includes the report's semantic groups.
    const d = (await cnx(['dupes', 'tints', '--workspace', ws, '--json'])).json() as { semantic: { images: { path: string }[] }[] };
    assert.deepEqual(d.semantic.map((g) => g.images.map((i) => i.path).sort()), s.groups.map((g) => [...g.paths].sort()));
  });

  test('a checkpoint of a run fine-tuned on other classes is refused with the reason', async () => {
    const run = join(root, 'run');
    mkdirSync(join(run, 'checkpoints'), { recursive: true });
    const manifest = join(run, 'manifest.json');
    writeFileSync(manifest, JSON.stringify(sealManifest({ version: 1, dataset: 'pets', createdAt: new Date(0).toISOString(), root, classes: ['cat', 'dog', 'fox'], items: [] })));
    writeFileSync(join(run, 'config.json'), JSON.stringify({ version: 1, kind: 'finetune', runDir: run, model: { arch: 'convnextv2_atto', numClasses: 3, inputSize: 32 }, data: { manifest, batchSize: 4 }, optim: { lr: 1e-3, totalSteps: 1 }, checkpointEverySteps: 1 }));
    const file = join(run, 'checkpoints', 'step-1.safetensors');
    copyFileSync(weights, file);
    const r = await cnx(['embed', 'tints', '--weights', file, '--workspace', ws]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /fine-tuned on 3 classes \(cat, dog, fox\), dataset 'tints' has 3 \(blue, green, red\)/);
    const arch = JSON.parse(JSON.stringify({ version: 1, kind: 'finetune', runDir: run, model: { arch: 'convnext_atto', numClasses: 3, inputSize: 32 }, data: { manifest, batchSize: 4 }, optim: { lr: 1e-3, totalSteps: 1 }, checkpointEverySteps: 1 }));
    writeFileSync(join(run, 'config.json'), JSON.stringify(arch));
    assert.match((await cnx(['issues', 'tints', '--weights', file, '--workspace', ws])).stderr, /holds a convnextv2_atto model but its run .* trained convnext_atto/);
    assert.match((await cnx(['embed', 'tints', '--weights', weights, '--size', '48', '--workspace', ws])).stderr, /--size '48' is not a valid value/);
  });
});
