// Expected parameters, layout detection and the official <-> timm mapping, on every variant, with no Python:
// parameter counts against the paper's table, names and shapes against the official and timm layouts written out by hand, exact round trips.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VARIANTS } from '../../common/variants.ts';
import { detectLayout, toCanonical, toOfficial } from '../../native-worker/checkpoint/layout.ts';
import { type LazyTensor, type Tensor, type TensorMap, numel } from '../../native-worker/checkpoint/tensor.ts';
import { type DetectedArch, expectedParams, validateParams } from '../../native-worker/checkpoint/validate.ts';
import { assertSameTensors } from '../helpers/tensors.ts';

const f = 'ckpt.pt';

/** Tensors of the given shapes; with `fill` their values are distinct, otherwise they hold no data (names/shapes only). */
function tensorsOf(shapes: ReadonlyMap<string, readonly number[]>, fill = false): TensorMap {
  let k = 0;
  return new Map(
    [...shapes].map(([name, shape]) => {
      const data = fill ? Float32Array.from({ length: numel(shape) }, () => Math.fround(Math.sin(++k) * 3)) : new Float32Array(0);
      return [name, { dtype: 'float32', shape: [...shape], data }];
    }),
  );
}

const lazy = (m: TensorMap): Map<string, LazyTensor> => new Map([...m].map(([k, t]) => [k, { shape: t.shape, storedAs: 'F32', read: (): Tensor => t }]));
const shapesOf = (m: ReadonlyMap<string, { shape: readonly number[] }>) => new Map([...m].map(([k, t]) => [k, [...t.shape]]));
const prefixed = (m: TensorMap, prefix: string): TensorMap => new Map([...m].map(([k, t]) => [prefix + k, t]));

describe('expectedParams', () => {
  test('parameter counts match the paper (V2, 1000 classes), to its rounding', () => {
    const paper: Record<string, number> = { atto: 3.7, femto: 5.2, pico: 9.1, nano: 15.6, tiny: 28.6, base: 89, large: 198, huge: 660 };
    for (const v of VARIANTS.filter((x) => x.versions.includes(2))) {
      let n = 0;
      for (const s of expectedParams({ variant: v.name, version: 2 }).values()) n += numel(s);
      const printed = paper[v.name]!;
      const halfStep = Number.isInteger(printed) ? 0.5 : 0.05;
      assert.ok(Math.abs(n / 1e6 - printed) <= halfStep, `${v.name}: ${n} parameters, paper ${printed}M`);
    }
  });

  test('names and shapes follow timm: conv MLP up to nano, Linear from tiny, GRN 1-D, V1 layer scale', () => {
    const atto = expectedParams({ variant: 'atto', version: 2 });
    assert.deepEqual(atto.get('stem.0.weight'), [40, 3, 4, 4]);
    assert.deepEqual(atto.get('stages.1.downsample.1.weight'), [80, 40, 2, 2]);
    assert.deepEqual(atto.get('stages.0.blocks.1.mlp.fc1.weight'), [160, 40, 1, 1]);
    assert.deepEqual(atto.get('stages.3.blocks.1.mlp.fc2.weight'), [320, 1280, 1, 1]);
    assert.deepEqual(atto.get('stages.2.blocks.5.mlp.grn.weight'), [640]);
    assert.deepEqual(atto.get('head.fc.weight'), [1000, 320]);
    assert.equal(atto.has('stages.0.downsample.0.weight'), false);
    const tiny = expectedParams({ variant: 'tiny', version: 1, numClasses: 10 });
    assert.deepEqual(tiny.get('stages.0.blocks.2.mlp.fc1.weight'), [384, 96]);
    assert.deepEqual(tiny.get('stages.0.blocks.2.gamma'), [96]);
    assert.equal([...tiny.keys()].some((k) => k.includes('grn')), false);
    assert.deepEqual(tiny.get('head.fc.bias'), [10]);
    assert.deepEqual([...expectedParams({ variant: 'nano', version: 2, numClasses: 0 }).keys()].slice(-2), ['head.norm.weight', 'head.norm.bias']);
    assert.equal([...expectedParams({ variant: 'nano', version: 2, head: false }).keys()].some((k) => k.startsWith('head')), false);
  });

  test('an FCMAE model: encoder under encoder., no head, the official decoder', () => {
    const p = expectedParams({ variant: 'atto', version: 2, decoder: true });
    assert.deepEqual(p.get('encoder.stem.0.weight'), [40, 3, 4, 4]);
    assert.deepEqual(p.get('proj.weight'), [512, 320, 1, 1]);
    assert.deepEqual(p.get('mask_token'), [1, 512, 1, 1]);
    assert.deepEqual(p.get('decoder.0.grn.gamma'), [1, 1, 1, 2048]);
    assert.deepEqual(p.get('decoder.0.pwconv1.weight'), [2048, 512]);
    assert.deepEqual(p.get('pred.weight'), [3072, 512, 1, 1]);
    assert.equal([...p.keys()].some((k) => k.includes('head')), false);
  });

  test('refuses variants that do not exist', () => {
    assert.throws(() => expectedParams({ variant: 'huge', version: 1 }), { name: 'RangeError', message: "ConvNeXt V1 has no 'huge' variant" });
    assert.throws(() => expectedParams({ variant: 'giant' as 'huge', version: 2 }), /unknown ConvNeXt variant 'giant'/);
  });
});

describe('layout mapping', () => {
  const archs: DetectedArch[] = VARIANTS.flatMap((v) =>
    v.versions.flatMap((version) => [
      { variant: v.name, version, head: true, numClasses: 1000, decoder: false },
      { variant: v.name, version, head: false, numClasses: 0, decoder: false },
    ]),
  );

  test('every variant: canonical -> official -> detected and converted back to the same names and shapes', () => {
    for (const arch of archs) {
      const expected = expectedParams(arch);
      const official = toOfficial(tensorsOf(expected), arch);
      const report = detectLayout(official, f);
      assert.deepEqual(report.arch, arch, `${arch.variant} V${arch.version}`);
      assert.equal(report.naming, 'official');
      const { tensors } = toCanonical(lazy(official), report, f);
      assert.deepEqual(shapesOf(tensors), expected, `${arch.variant} V${arch.version}`);
      // timm-named input is recognised as such and kept.
      const timmReport = detectLayout(tensorsOf(expected), f);
      assert.deepEqual({ ...timmReport.arch, naming: timmReport.naming }, { ...arch, naming: 'timm' });
    }
  });

  test('official names and shapes follow the official repositories', () => {
    const arch = { variant: 'atto', version: 2, head: true, numClasses: 1000, decoder: false } as const;
    const official = shapesOf(toOfficial(tensorsOf(expectedParams(arch)), arch));
    assert.deepEqual(official.get('downsample_layers.0.0.weight'), [40, 3, 4, 4]);
    assert.deepEqual(official.get('downsample_layers.0.1.bias'), [40]);
    assert.deepEqual(official.get('downsample_layers.2.1.weight'), [160, 80, 2, 2]);
    assert.deepEqual(official.get('stages.2.5.dwconv.weight'), [160, 1, 7, 7]);
    assert.deepEqual(official.get('stages.2.5.pwconv1.weight'), [640, 160]);
    assert.deepEqual(official.get('stages.2.5.grn.gamma'), [1, 1, 1, 640]);
    assert.deepEqual(official.get('stages.2.5.grn.beta'), [1, 1, 1, 640]);
    assert.deepEqual(official.get('norm.weight'), [320]);
    assert.deepEqual(official.get('head.weight'), [1000, 320]);
    assert.equal(official.size, expectedParams(arch).size);
    const v1 = { variant: 'tiny', version: 1, head: true, numClasses: 1000, decoder: false } as const;
    assert.deepEqual(shapesOf(toOfficial(tensorsOf(expectedParams(v1)), v1)).get('stages.3.2.gamma'), [768]);
  });

  test('values survive canonical -> official -> canonical exactly (V2 atto, V1 femto, FCMAE)', () => {
    const cases: DetectedArch[] = [
      { variant: 'atto', version: 2, head: true, numClasses: 1000, decoder: false },
      { variant: 'femto', version: 1, head: true, numClasses: 7, decoder: false },
      { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: true, decoderDim: 512, decoderDepth: 1 },
    ];
    for (const arch of cases) {
      const canonical = tensorsOf(expectedParams(arch), true);
      const official = toOfficial(canonical, arch);
      const report = detectLayout(official, f);
      assert.deepEqual(report.arch, arch);
      assertSameTensors(toCanonical(lazy(official), report, f).tensors, canonical);
    }
  });

  test('GRN stored as (1, 4C), the shape in FCMAE pretrain files, becomes (4C,)', () => {
    const arch = { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: false } as const;
    const official = toOfficial(tensorsOf(expectedParams(arch), true), arch);
    for (const [k, t] of official) if (k.includes('grn')) official.set(k, { ...t, shape: [1, t.shape[3]!] });
    const { tensors } = toCanonical(lazy(official), detectLayout(official, f), f);
    assert.deepEqual(tensors.get('stages.1.blocks.0.mlp.grn.bias')!.shape, [320]);
    validateParams(tensors, expectedParams(arch), f);
  });

  test('wrappers: model / model_ema / module. prefixes, the choice among them, and what was left out', () => {
    const arch = { variant: 'pico', version: 2, head: true, numClasses: 5, decoder: false } as const;
    const official = toOfficial(tensorsOf(expectedParams(arch)), arch);
    const file = new Map([...prefixed(official, 'model.'), ...prefixed(official, 'model_ema.module.'), ['optimizer.state.0.exp_avg', official.get('head.weight')!]]);
    const report = detectLayout(file, f);
    assert.equal(report.prefix, 'model.');
    assert.deepEqual(report.notes, [
      "the file holds several models ('model.', 'model_ema.module.'); read 'model.'",
      `ignored ${official.size + 1} tensors outside the model weights (e.g. 'model_ema.module.downsample_layers.0.0.weight')`,
    ]);
    const ema = detectLayout(file, f, { entry: 'model_ema' });
    assert.equal(ema.prefix, 'model_ema.module.');
    assert.deepEqual(shapesOf(toCanonical(lazy(file), ema, f).tensors), expectedParams(arch));
    assert.throws(() => detectLayout(file, f, { entry: 'state_dict' }), { name: 'CheckpointError', message: `${f}: no ConvNeXt weights under 'state_dict'` });
  });

  test('FCMAE files: encoder. prefix with and without decoder', () => {
    const full = { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: true } as const;
    const withDecoder = prefixed(toOfficial(tensorsOf(expectedParams(full)), full), 'model.');
    const r = detectLayout(withDecoder, f);
    assert.deepEqual([r.prefix, r.arch.decoder, r.notes], ['model.encoder.', true, ["model weights read from under 'model.encoder.'", 'FCMAE model: encoder and decoder']]);
    const encoderOnly = new Map([...withDecoder].filter(([k]) => k.startsWith('model.encoder.')));
    const e = detectLayout(encoderOnly, f);
    assert.deepEqual(e.arch, { ...full, decoder: false });
    assert.deepEqual(e.notes.slice(1), ['no classifier head: encoder weights only (head.* is missing)', "encoder weights taken out of 'encoder.'; the file has no decoder"]);
    const { tensors } = toCanonical(lazy(encoderOnly), e, f);
    assert.equal(tensors.has('stem.0.weight'), true);
    validateParams(tensors, expectedParams(e.arch), f);
  });

  test('refuses what it cannot place', () => {
    const nothing = new Map([['weight', { shape: [3] }]]);
    assert.throws(() => detectLayout(nothing, f), { message: `${f}: no ConvNeXt weights found (looked for 'downsample_layers.0.0.weight' or 'stem.0.weight')` });
    const arch = { variant: 'atto', version: 2 } as const;
    const shapes = shapesOf(tensorsOf(expectedParams(arch)));
    const odd = new Map([...shapes].filter(([k]) => !k.startsWith('stages.2.blocks.5.')).map(([k, s]) => [k, { shape: s }]));
    assert.throws(() => detectLayout(odd, f), { message: `${f}: dims [40, 80, 160, 320] and depths [2, 2, 5, 2] match no ConvNeXt variant` });
    const both = new Map([...shapes, ['stages.0.blocks.0.gamma', [40]]].map(([k, s]) => [k as string, { shape: s as number[] }]));
    assert.throws(() => detectLayout(both, f), { message: `${f}: blocks have both GRN (V2) and layer scale (V1)` });
    const sparseInTimm = new Map([['stem.0.weight', { shape: [40, 3, 4, 4] }], ['stages.0.blocks.0.conv_dw.kernel', { shape: [49, 40] }]]);
    assert.throws(() => detectLayout(sparseInTimm, f), { message: `${f}: 'stages.0.blocks.0.conv_dw.kernel' is a MinkowskiEngine sparse weight among timm names` });
  });
});

describe('validateParams', () => {
  const expected = expectedParams({ variant: 'atto', version: 2 });
  const good = () => tensorsOf(expected);

  test('accepts exactly the expected parameters', () => {
    validateParams(good(), expected, f);
  });

  test('names the file, the first offending key and both shapes', () => {
    const wrong = good();
    wrong.set('stages.1.blocks.0.mlp.fc1.weight', { dtype: 'float32', shape: [320, 81, 1, 1], data: new Float32Array(0) });
    assert.throws(() => validateParams(wrong, expected, f, new Map([['stages.1.blocks.0.mlp.fc1.weight', 'model.stages.1.0.pwconv1.weight']])), {
      name: 'CheckpointError',
      message: `${f}: parameter 'stages.1.blocks.0.mlp.fc1.weight' (read from 'model.stages.1.0.pwconv1.weight') has shape [320, 81, 1, 1], expected [320, 80, 1, 1]`,
    });

    const missing = good();
    missing.delete('head.fc.bias');
    missing.delete('stem.1.weight');
    assert.throws(() => validateParams(missing, expected, f), { message: `${f}: missing parameter 'stem.1.weight' (expected shape [40]) (and 1 more problem)` });

    const extra = good();
    extra.set('head.fc.extra', { dtype: 'float32', shape: [2], data: new Float32Array(0) });
    assert.throws(() => validateParams(extra, expected, f), { message: `${f}: unexpected parameter 'head.fc.extra' with shape [2]` });

    const ints = good();
    ints.set('stem.0.bias', { dtype: 'int64', shape: [40], data: new BigInt64Array(0) });
    assert.throws(() => validateParams(ints, expected, f), { message: `${f}: parameter 'stem.0.bias' has dtype int64, expected float32` });
  });
});
