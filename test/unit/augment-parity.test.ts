// One augmentation definition, two loaders: the ONNX engine's (TypeScript) and the PyTorch engine's
// (cnx_torch/augment.py, data.py) draw many augmented samples of the same image under the same
// data.augment, and their statistics must agree. Random streams differ between engines, so every check
// compares two independent estimates: |a - b| <= 4 standard errors of the difference (a false failure
// has odds ~6e-5 per check). Each op alone must also give the same pixels on both sides.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Augment, defaultAugment } from '../../common/augment.ts';
import { resolveTransform } from '../../native-worker/data/pipeline/config.ts';
import { INCREASING_OPS, ORIGINAL_OPS } from '../../native-worker/data/pipeline/randaugment.ts';
import { type CropBox, transformSample } from '../../native-worker/data/pipeline/transform.ts';
import type { Rng } from '../../native-worker/nn/random.ts';
import { photo, photoPixels, removeDir, tempDir } from '../helpers/images.ts';
import { needTorch, runPython } from '../helpers/python.ts';

const SCRIPT = join(import.meta.dirname, '..', 'helpers', 'augment_stats.py');
const SIZE = 32;
const N = 1500;

interface SampleRecord {
  mean: number;
  std: number;
  ops: [string, number][];
  erased: [number, number, number, number][];
}

async function onnxSamples(file: string, augment: Augment): Promise<SampleRecord[]> {
  const cfg = resolveTransform({ size: SIZE, train: true, mode: 'finetune', ...augment });
  const out = new Float32Array(3 * SIZE * SIZE);
  const records: SampleRecord[] = [];
  for (let seed = 0; seed < N; seed++) {
    const r: SampleRecord = { mean: 0, std: 0, ops: [], erased: [] };
    await transformSample(file, cfg, seed, out, 0, undefined, { op: (name, m) => r.ops.push([name, m]), erase: (b: CropBox) => r.erased.push([b.top, b.left, b.height, b.width]) });
    r.mean = out.reduce((s, v) => s + v, 0) / out.length;
    r.std = Math.sqrt(out.reduce((s, v) => s + (v - r.mean) ** 2, 0) / out.length);
    records.push(r);
  }
  return records;
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const variance = (xs: number[]) => mean(xs.map((x) => (x - mean(xs)) ** 2));

/** Two independent sample means agree within 4 standard errors of their difference (CLT). */
function sameMean(what: string, a: number[], b: number[]): void {
  const se = Math.sqrt(variance(a) / a.length + variance(b) / b.length);
  const d = Math.abs(mean(a) - mean(b));
  assert.ok(d <= 4 * se + 1e-9, `${what}: onnx ${mean(a).toFixed(4)} (n ${a.length}) vs torch ${mean(b).toFixed(4)} (n ${b.length}), |diff| ${d.toFixed(4)} > 4 se ${(4 * se).toFixed(4)}`);
}

/** Two binomial counts out of n trials each agree within 4 standard errors (normal approximation). */
function sameRate(what: string, ka: number, kb: number, n: number): void {
  const p = (ka + kb) / (2 * n);
  const se = Math.sqrt((2 * p * (1 - p)) / n);
  const d = Math.abs(ka - kb) / n;
  assert.ok(d <= 4 * se + 1e-9, `${what}: onnx ${ka}/${n} vs torch ${kb}/${n}, |diff| ${d.toFixed(4)} > 4 se ${(4 * se).toFixed(4)}`);
}

function compare(a: SampleRecord[], b: SampleRecord[], opNames: readonly string[], layers: number): void {
  sameMean('tensor mean', a.map((r) => r.mean), b.map((r) => r.mean));
  sameMean('tensor std', a.map((r) => r.std), b.map((r) => r.std));
  const draws = N * layers;
  const count = (rs: SampleRecord[], name: string) => rs.reduce((s, r) => s + r.ops.filter(([o]) => o === name).length, 0);
  for (const name of opNames) sameRate(`${name} fired`, count(a, name), count(b, name), draws);
  const magnitudes = (rs: SampleRecord[]) => rs.flatMap((r) => r.ops.map(([, m]) => m));
  sameMean('op magnitude', magnitudes(a), magnitudes(b));
  // The spread too: squared deviations from the pooled mean are themselves averaged samples.
  const centre = mean([...magnitudes(a), ...magnitudes(b)]);
  sameMean('op magnitude variance', magnitudes(a).map((m) => (m - centre) ** 2), magnitudes(b).map((m) => (m - centre) ** 2));
  sameRate('samples erased', a.filter((r) => r.erased.length).length, b.filter((r) => r.erased.length).length, N);
  const boxes = (rs: SampleRecord[]) => rs.flatMap((r) => r.erased);
  sameMean('boxes per erased sample', a.filter((r) => r.erased.length).map((r) => r.erased.length), b.filter((r) => r.erased.length).map((r) => r.erased.length));
  sameMean('erased area', boxes(a).map(([, , h, w]) => (h * w) / SIZE ** 2), boxes(b).map(([, , h, w]) => (h * w) / SIZE ** 2));
  sameMean('erased log aspect', boxes(a).map(([, , h, w]) => Math.log(h / w)), boxes(b).map(([, , h, w]) => Math.log(h / w)));
  sameMean('erased box centre row', boxes(a).map(([t, , h]) => t + h / 2), boxes(b).map(([t, , h]) => t + h / 2));
}

describe('both engines augment alike', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = tempDir('augment-parity');
    file = join(dir, 'photo.png');
    await photo(7, 48, 40).png().toFile(file);
  });
  after(() => removeDir(dir));

  const cases: [string, Augment, readonly string[], number][] = [
    ["the paper's fine-tuning recipe (RandomResizedCrop, flip, rand-m9-mstd0.5-inc1, pixel erasing 0.25)", defaultAugment('finetune'), INCREASING_OPS.map((o) => o.name), 2],
    [
      'pad-crop 4, flip 0.3, rand-n3-m5-mstd101-p0.7 (original ops, uniform magnitude), erasing 0.5 in rand mode, up to 3 boxes',
      { ...defaultAugment('finetune'), padCrop: 4, hflip: 0.3, randAugment: 'rand-n3-m5-mstd101-p0.7', reprob: 0.5, remode: 'rand', recount: 3 },
      ORIGINAL_OPS.map((o) => o.name),
      3,
    ],
  ];
  for (const [name, augment, opNames, layers] of cases) {
    test(name, async (t) => {
      const python = needTorch(t);
      if (!python) return;
      const torch = JSON.parse(runPython(python, SCRIPT, ['samples', file, String(SIZE), String(N), JSON.stringify(augment)])) as SampleRecord[];
      const onnx = await onnxSamples(file, augment);
      compare(onnx, torch, opNames, layers);
    });
  }

  test('every RandAugment op gives the same pixels on both engines (forced sign, magnitude 9)', (t) => {
    const python = needTorch(t);
    if (!python) return;
    const [w, h] = [40, 30];
    const pixels = new Uint8Array(photoPixels(5, w, h));
    writeFileSync(join(dir, 'ops.raw'), pixels);
    runPython(python, SCRIPT, ['ops', join(dir, 'ops.raw'), String(w), String(h), '9', join(dir, 'ops.out')]);
    const theirs = readFileSync(join(dir, 'ops.out'));
    const plane = w * h * 3;
    let k = 0;
    const bad: string[] = [];
    const report: string[] = [];
    for (const op of [...INCREASING_OPS, ...ORIGINAL_OPS]) {
      for (const sign of [0.9, 0.1]) {
        const ours = op.apply({ data: pixels, width: w, height: h }, 9, { float: () => sign } as unknown as Rng).data;
        const ref = theirs.subarray(k * plane, (k + 1) * plane);
        let sum = 0;
        for (let i = 0; i < plane; i++) sum += Math.abs(ours[i]! - ref[i]!);
        // Lookup-table and blend ops compute the same integers (measured: <= 0.01 level on average, a
        // float rounding now and then); geometric ops resample bilinearly on both sides, but PIL in fixed
        // point with its own edge handling (measured 0.5..1.0 level on average).
        const geometric = /Rotate|Shear|Translate/.test(op.name);
        report.push(`${op.name}${sign > 0.5 ? '-' : '+'} ${(sum / plane).toFixed(3)}`);
        if (sum / plane > (geometric ? 1.5 : 0.05)) bad.push(report.at(-1)!);
        k++;
      }
    }
    t.diagnostic(`mean |diff| per op, in levels: ${report.join(', ')}`);
    assert.deepEqual(bad, [], 'ops whose pixels differ between engines');
  });
});
