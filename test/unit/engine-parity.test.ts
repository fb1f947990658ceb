// The engine against PyTorch on the CPU: a whole ConvNeXt block (V2, V2 under an FCMAE mask, V1) forward and
// every gradient against a float64 torch reference, and AdamW steps (in the graph, and fused on the host as
// the CPU trainer runs them) against torch.optim.AdamW.
// Tolerance: 1e-4 relative L2 error per tensor (float32 accumulation over a few thousand terms gives ~1e-6).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { parseArch } from '../../common/variants.ts';
import * as F from '../../native-worker/engine/functional.ts';
import { gradients } from '../../native-worker/engine/grad.ts';
import { Graph, numel } from '../../native-worker/engine/ir.ts';
import { toOnnx } from '../../native-worker/engine/onnx.ts';
import { CompiledGraph, StepRunner, tensor } from '../../native-worker/engine/runtime.ts';
import { readNpy, writeNpy } from '../../native-worker/data/npy.ts';
import { Model } from '../../native-worker/nn/convnext.ts';
import type { ParamSpec } from '../../native-worker/nn/params.ts';
import { Rng } from '../../native-worker/nn/random.ts';
import { HostAdamW } from '../../native-worker/optim/host-adamw.ts';
import { buildTrainStep } from '../../native-worker/optim/train-step.ts';
import { relErr } from '../helpers/numeric.ts';
import { needTorch, runPython } from '../helpers/python.ts';

const REF = 'test/python/engine_ref.py';


const randn = (rng: Rng, shape: readonly number[], scale = 1) => Float32Array.from({ length: numel(shape) }, () => rng.normal() * scale);

for (const variant of [
  // 8x8 and smaller maps run the depthwise conv as per-channel matrices, 20x20 as an onnxruntime Conv.
  { label: 'V2 block', v2: true, masked: false, h: 8, w: 8 },
  { label: 'V2 block under an FCMAE mask', v2: true, masked: true, h: 8, w: 8 },
  { label: 'V1 block (layer scale)', v2: false, masked: false, h: 8, w: 8 },
  { label: 'V2 block on a 2x2 map', v2: true, masked: false, h: 2, w: 2 },
  { label: 'V2 block on a 1x3 map', v2: true, masked: false, h: 1, w: 3 },
  { label: 'V2 block on a 20x20 map (Conv)', v2: true, masked: true, h: 20, w: 20 },
]) {
  test(`${variant.label}: output and all gradients match PyTorch (float64) within 1e-4`, async (t) => {
    const python = needTorch(t);
    if (!python) return;
    const rng = new Rng(variant.label.length);
    const [n, c, h, w] = [2, 16, variant.h, variant.w];
    const shapes: Record<string, number[]> = {
      'b.conv_dw.weight': [c, 1, 7, 7], 'b.conv_dw.bias': [c], 'b.norm.weight': [c], 'b.norm.bias': [c],
      'b.mlp.fc1.weight': [4 * c, c], 'b.mlp.fc1.bias': [4 * c], 'b.mlp.fc2.weight': [c, 4 * c], 'b.mlp.fc2.bias': [c],
      ...(variant.v2 ? { 'b.mlp.grn.weight': [4 * c], 'b.mlp.grn.bias': [4 * c] } : { 'b.gamma': [c] }),
    };
    const g = new Graph('block');
    const x = g.input('x', 'float32', [n, c, h, w]);
    const r = g.input('r', 'float32', [n, c, h, w]);
    const keep = variant.masked ? g.input('keep', 'float32', [n, 1, h, w]) : undefined;
    const params = new Map(Object.entries(shapes).map(([k, s]) => [k, g.input(k, 'float32', s)] as const));
    const model = new Model({ arch: { ...parseArch('convnextv2_tiny'), v2: variant.v2 }, numClasses: 0 }, params);
    const y = model.block(x, 'b', undefined, keep);
    const grads = gradients(F.sumAll(F.mul(y, r)), [x, ...params.values()]);
    g.output(y, 'y');
    for (const [v, gv] of grads) g.output(gv, `${v.name}_grad`);
    const session = await ort.InferenceSession.create(toOnnx(g));

    const dir = mkdtempSync(join(tmpdir(), 'cnx-block-'));
    try {
      const feeds: Record<string, ort.Tensor> = {};
      const put = (name: string, shape: readonly number[], data: Float32Array) => {
        feeds[name] = tensor('float32', data, shape);
        writeNpy(join(dir, `${name}.npy`), { dtype: 'float32', shape, data });
      };
      put('x', [n, c, h, w], randn(rng, [n, c, h, w]));
      put('r', [n, c, h, w], randn(rng, [n, c, h, w]));
      if (keep) put('keep', [n, 1, h, w], Float32Array.from({ length: n * h * w }, () => (rng.uniform() < 0.6 ? 0 : 1)));
      for (const [k, s] of Object.entries(shapes)) {
        // Non-trivial values everywhere (GRN and layer scale start at 0 / 1e-6 in a fresh model).
        put(k, s, k.endsWith('norm.weight') ? randn(rng, s, 0.2).map((v) => 1 + v) : randn(rng, s, k.includes('conv_dw') ? 0.1 : 0.3));
      }
      writeFileSync(join(dir, 'spec.json'), JSON.stringify({ params: Object.keys(shapes), v2: variant.v2, masked: variant.masked }));
      const out = await session.run(feeds);
      runPython(python, REF, ['block', dir]);
      const check = (ours: string, ref: string) => {
        const e = relErr(out[ours]!.data as Float32Array, readNpy(join(dir, `${ref}.npy`)).data as Float32Array);
        assert.ok(e < 1e-4, `${ours}: relative error ${e.toExponential(2)} vs PyTorch`);
      };
      check('y', 'y');
      check('x_grad', 'x_grad');
      for (const k of Object.keys(shapes)) check(`${k}_grad`, `${k}_grad`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('AdamW steps (weight decay groups, layer lr scale, global-norm clipping) match torch.optim.AdamW, in the graph and fused on the host', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const rng = new Rng(7);
  const specs: ParamSpec[] = [
    { name: 'w1', shape: [4, 5], init: { kind: 'constant', value: 0 }, noDecay: false },
    { name: 'b1', shape: [5], init: { kind: 'constant', value: 0 }, noDecay: true },
    { name: 'w0', shape: [3, 2, 2], init: { kind: 'constant', value: 0 }, noDecay: false },
  ];
  const lrScale = (p: ParamSpec) => (p.name === 'w0' ? 0.5 : 1);
  const [beta1, beta2, eps, clip, wd, ema] = [0.9, 0.95, 1e-8, 0.5, 0.05, 0.9];
  const options = { optim: { beta1, beta2, eps, clipGrad: clip, lossScale: 1 }, weightDecay: wd, lrScale, emaDecay: ema };
  const step = buildTrainStep(
    'adamw',
    specs,
    (g, p) => {
      // loss = sum(p^2 * G): gradients change every step, so moments and bias corrections are exercised.
      const terms = specs.map((s) => F.sumAll(F.mul(F.mul(p.get(s.name)!, p.get(s.name)!), g.input(`G_${s.name}`, 'float32', s.shape))));
      return { loss: terms.reduce((a, b) => F.add(a, b)) };
    },
    options,
  );
  const compiled = await CompiledGraph.create(step.graph, { provider: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'cnx-adamw-'));
  try {
    const initial = new Map<string, ort.Tensor>();
    const gfeeds: Record<string, ort.Tensor> = {};
    const values = new Map<string, Float32Array>();
    const coef = new Map<string, Float32Array>();
    for (const s of specs) {
      const v = randn(rng, s.shape);
      const gc = randn(rng, s.shape);
      values.set(s.name, v);
      coef.set(s.name, gc);
      writeNpy(join(dir, `${s.name}.npy`), { dtype: 'float32', shape: s.shape, data: v });
      writeNpy(join(dir, `G_${s.name}.npy`), { dtype: 'float32', shape: s.shape, data: gc });
      initial.set(s.name, tensor('float32', v, s.shape));
      initial.set(`${s.name}.exp_avg`, tensor('float32', new Float32Array(v.length), s.shape));
      initial.set(`${s.name}.exp_avg_sq`, tensor('float32', new Float32Array(v.length), s.shape));
      initial.set(`${s.name}.ema`, tensor('float32', Float32Array.from(v), s.shape));
      gfeeds[`G_${s.name}`] = tensor('float32', gc, s.shape);
    }
    const runner = new StepRunner(compiled, step.carry, initial);
    const host = new HostAdamW(specs, values, null, options);
    const lrs = [1e-2, 5e-3, 2e-3];
    let clipped = false;
    for (const [i, lr] of lrs.entries()) {
      const out = await runner.step({ ...gfeeds, lr: tensor('float32', Float32Array.of(lr), []), step: tensor('float32', Float32Array.of(i + 1), []) });
      const graphNorm = (out.grad_norm!.data as Float32Array)[0]!;
      // d/dp sum(p^2 G) = 2 p G, from the host's own current weights.
      const grads = new Map(specs.map((s) => [s.name, host.param(s.name).map((p, k) => 2 * p * coef.get(s.name)![k]!)] as const));
      const hostNorm = host.update(grads, lr, i + 1);
      assert.ok(Math.abs(hostNorm - graphNorm) <= 1e-5 * graphNorm, `step ${i + 1}: gradient norm ${hostNorm} on the host, ${graphNorm} in the graph`);
      clipped ||= graphNorm > clip;
    }
    assert.ok(clipped, 'the test should exercise clipping');
    writeFileSync(join(dir, 'spec.json'), JSON.stringify({
      params: specs.map((s) => s.name), lrs, betas: [beta1, beta2], eps, clip,
      groups: specs.map((s) => ({ name: s.name, wd: s.noDecay ? 0 : wd, lrScale: lrScale(s) })),
    }));
    runPython(python, REF, ['adamw', dir]);
    const hostState = host.state();
    const hostWeights = host.weights();
    for (const s of specs) {
      for (const k of [s.name, `${s.name}.exp_avg`, `${s.name}.exp_avg_sq`]) {
        const want = readNpy(join(dir, `${k}.npy`)).data as Float32Array;
        const e = relErr(await runner.read(k), want);
        assert.ok(e < 1e-5, `${k}: relative error ${e.toExponential(2)} vs torch.optim.AdamW (graph)`);
        const h = relErr(k === s.name ? hostWeights.get(k)! : hostState.get(k)!, want);
        assert.ok(h < 1e-5, `${k}: relative error ${h.toExponential(2)} vs torch.optim.AdamW (host)`);
      }
      // EMA (timm's ModelEma rule) has no torch.optim counterpart: the two forms must agree.
      const e = relErr(hostState.get(`${s.name}.ema`)!, await runner.read(`${s.name}.ema`));
      assert.ok(e < 1e-6, `${s.name}.ema: host and graph differ by ${e.toExponential(2)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
