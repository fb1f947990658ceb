// Every op of the table: it loads and runs in onnxruntime-node with the shape its rule inferred, and every
// differentiable op's gradient rule agrees with central finite differences along random directions.
// A new op without a case here fails to type-check (CASES is keyed by OpName).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import * as F from '../../native-worker/engine/functional.ts';
import { GRADS, gradients } from '../../native-worker/engine/grad.ts';
import { Graph, type Value, numel } from '../../native-worker/engine/ir.ts';
import { OPS, type OpName, apply, isDifferentiable } from '../../native-worker/engine/ops.ts';
import { toOnnx } from '../../native-worker/engine/onnx.ts';
import { Rng } from '../../native-worker/nn/random.ts';

type Init = 'normal' | 'positive' | 'awayFromZero';
interface Case {
  readonly label: string;
  readonly inputs: readonly (readonly [readonly number[], Init?])[];
  readonly build: (xs: Value[]) => Value;
}

const c = (label: string, inputs: Case['inputs'], build: Case['build']): Case => ({ label, inputs, build });
const un = (op: (x: Value) => Value, init: Init = 'normal') => [c('', [[[2, 3, 4], init]], ([x]) => op(x!))];
const bin = (op: (a: Value, b: Value) => Value, init: Init = 'normal') => [
  c('same shape', [[[2, 3], 'normal'], [[2, 3], init]], ([a, b]) => op(a!, b!)),
  c('broadcast', [[[2, 3, 4], 'normal'], [[3, 1], init]], ([a, b]) => op(a!, b!)),
];
const conv = (o: F.ConvOptions) => ([x, w, b]: Value[]) => F.conv(x!, w!, b ?? null, o);

const CASES: { readonly [K in OpName]: readonly Case[] } = {
  Add: bin(F.add),
  Sub: bin(F.sub),
  Mul: bin(F.mul),
  Div: bin(F.div, 'positive'),
  Pow: [c('', [[[2, 3], 'positive'], [[3], 'positive']], ([a, b]) => F.pow(a!, b!))],
  Min: bin(F.min),
  Max: bin(F.max),
  Equal: [c('', [[[2, 3]], [[2, 3]]], ([a, b]) => F.cast(F.equal(a!, b!), 'float32'))],
  Less: [c('', [[[2, 3]], [[2, 3]]], ([a, b]) => F.where(F.less(a!, b!), a!, b!))],
  Greater: [c('', [[[2, 3]], [[3]]], ([a, b]) => F.where(F.greater(a!, b!), a!, b!))],
  Where: [c('', [[[2, 3]], [[2, 3]], [[3]]], ([k, a, b]) => F.where(F.greater(k!, 0), a!, b!))],
  Neg: un(F.neg),
  Exp: un(F.exp),
  Log: un(F.log, 'positive'),
  Sqrt: un(F.sqrt, 'positive'),
  Erf: un(F.erf),
  Abs: un(F.abs, 'awayFromZero'),
  Reciprocal: un(F.reciprocal, 'positive'),
  Tanh: un(F.tanh),
  Gelu: un(F.gelu),
  Cast: un((x) => apply('Cast', [x], { to: 'float32' })[0]!),
  Identity: un(F.identity),
  ReduceSum: [c('axis 1', [[[2, 3, 4]]], ([x]) => F.sum(x!, [1])), c('keepdims', [[[2, 3, 4]]], ([x]) => F.sum(x!, [0, 2], true))],
  ReduceMean: [c('axes 0,2', [[[2, 3, 4]]], ([x]) => F.mean(x!, [0, 2])), c('keepdims -1', [[[2, 3, 4]]], ([x]) => F.mean(x!, [-1], true))],
  ReduceSumSquare: [c('', [[[2, 3, 4]]], ([x]) => F.sumSquare(x!, [1, 2], true))],
  ReduceMax: [c('', [[[2, 3, 4]]], ([x]) => F.reduceMax(x!, [2]))],
  Transpose: [c('', [[[2, 3, 4]]], ([x]) => F.transpose(x!, [2, 0, 1]))],
  Reshape: [c('', [[[2, 3, 4]]], ([x]) => F.reshape(x!, [4, 0, -1]))],
  Expand: [c('', [[[3, 1]]], ([x]) => F.expand(x!, [2, 3, 4]))],
  Concat: [c('', [[[2, 3]], [[2, 2]]], ([a, b]) => F.concat([a!, b!], 1))],
  Slice: [
    c('step 1', [[[4, 5]]], ([x]) => F.slice(x!, [0, 1], [1, -4], [3, 100])),
    c('step -1 (flip)', [[[2, 5]]], ([x]) => F.slice(x!, [1], [-1], [-(2 ** 31)], [-1])),
    c('step -1 partial', [[[2, 6]]], ([x]) => F.slice(x!, [1], [4], [0], [-1])),
  ],
  Pad: [c('', [[[2, 3]]], ([x]) => F.pad(x!, [1, 0, 0, 2]))],
  Conv: [
    c('depthwise 3x3 pad 1', [[[2, 3, 5, 5]], [[3, 1, 3, 3]], [[3]]], conv({ pad: 1, group: 3 })),
    c('depthwise 7x7 pad 3', [[[1, 2, 8, 8]], [[2, 1, 7, 7]], [[2]]], conv({ pad: 3, group: 2 })),
    c('patchify 2x2 stride 2', [[[2, 3, 4, 6]], [[4, 3, 2, 2]], [[4]]], conv({ stride: 2 })),
    c('stem 4x4 stride 4, no bias', [[[1, 3, 8, 8]], [[5, 3, 4, 4]]], conv({ stride: 4 })),
    c('pointwise 1x1', [[[2, 4, 3, 3]], [[6, 4, 1, 1]], [[6]]], conv({})),
  ],
  ConvTranspose: [
    c('', [[[1, 4, 2, 3]], [[4, 3, 2, 2]]], ([x, w]) =>
      F.convTranspose(x!, w!, { strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1, outputPadding: [0, 0] })),
  ],
  MatMul: [
    c('by a matrix', [[[2, 3, 4]], [[4, 5]]], ([a, b]) => F.matmul(a!, b!)),
    c('batched', [[[2, 3, 4]], [[2, 4, 5]]], ([a, b]) => F.matmul(a!, b!)),
    c('broadcast batch', [[[3, 4]], [[2, 4, 5]]], ([a, b]) => F.matmul(a!, b!)),
  ],
  Gemm: [
    c('plain + bias', [[[3, 4]], [[4, 5]], [[5]]], ([a, b, k]) => F.gemm(a!, b!, k!)),
    c('transB', [[[3, 4]], [[5, 4]], [[5]]], ([a, b, k]) => F.gemm(a!, b!, k!, false, true)),
    c('transA', [[[4, 3]], [[4, 5]]], ([a, b]) => F.gemm(a!, b!, null, true, false)),
    c('transA transB', [[[4, 3]], [[5, 4]]], ([a, b]) => F.gemm(a!, b!, null, true, true)),
  ],
  LayerNormalization: [
    c('last axis', [[[2, 3, 6]], [[6]], [[6]]], ([x, s, b]) => F.layerNorm(x!, s!, b!, -1, 1e-6)),
    c('last two axes', [[[2, 3, 4]], [[3, 4]], [[3, 4]]], ([x, s, b]) => F.layerNorm(x!, s!, b!, 1, 1e-5)),
  ],
  Softmax: [c('', [[[3, 5]]], ([x]) => F.softmax(x!, -1))],
  LogSoftmax: [c('', [[[3, 5]]], ([x]) => F.logSoftmax(x!, 1))],
};

function sample(rng: Rng, shape: readonly number[], init: Init = 'normal'): Float32Array {
  return Float32Array.from({ length: numel(shape) }, () => {
    const z = rng.normal();
    return init === 'positive' ? 1 + Math.abs(z) : init === 'awayFromZero' ? Math.sign(z || 1) * (0.3 + Math.abs(z)) : z;
  });
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);

for (const op of Object.keys(CASES) as OpName[]) {
  for (const k of CASES[op]) {
    test(`${op}${k.label ? ` (${k.label})` : ''}: runs in onnxruntime${GRADS[op] === 'nondiff' ? '' : ' and its gradient matches finite differences'}`, async () => {
      const rng = new Rng(op.length * 7919 + k.label.length);
      const g = new Graph(op);
      const xs = k.inputs.map(([shape], i) => g.input(`x${i}`, 'float32', shape));
      const y = k.build(xs);
      const node = g.nodes.find((n) => n.op === op);
      assert.ok(node, `case for ${op} builds no ${op} node`);
      const diff = xs.filter((x) => node.inputs.includes(x) && isDifferentiable(op, node.inputs.indexOf(x)));
      const r = g.input('r', 'float32', y.shape);
      const loss = F.sumAll(F.mul(y, r));
      g.output(y, 'y');
      g.output(loss, 'loss');
      const nondiff = GRADS[op] === 'nondiff';
      const grads = nondiff ? new Map<Value, Value>() : gradients(loss, diff);
      for (const x of diff) if (grads.has(x)) g.output(grads.get(x)!, `${x.name}_grad`);
      const session = await ort.InferenceSession.create(toOnnx(g));

      const values = k.inputs.map(([shape, init]) => sample(rng, shape, init));
      const rv = sample(rng, y.staticShape());
      const feeds = (vals: Float32Array[]) => ({
        ...Object.fromEntries(vals.map((v, i) => [`x${i}`, new ort.Tensor('float32', v, [...k.inputs[i]![0]])])),
        r: new ort.Tensor('float32', rv, y.staticShape()),
      });
      const out = await session.run(feeds(values));
      assert.deepEqual(out.y!.dims, y.staticShape(), 'onnxruntime output shape differs from the inferred shape');
      if (nondiff) return;

      // Central differences of loss = sum(y * r) along random directions d of all differentiable inputs.
      // float32 forward passes: eps 1e-2 keeps rounding error (~1e-5) and truncation error (~1e-4) small.
      const eps = 1e-2;
      for (let trial = 0; trial < 3; trial++) {
        const dirs = values.map((v) => sample(rng, [v.length]));
        const shifted = (sgn: number) => values.map((v, i) => (diff.includes(xs[i]!) ? v.map((e, j) => e + sgn * eps * dirs[i]![j]!) : v));
        const lp = ((await session.run(feeds(shifted(1)))).loss!.data as Float32Array)[0]!;
        const lm = ((await session.run(feeds(shifted(-1)))).loss!.data as Float32Array)[0]!;
        const numeric = (lp - lm) / (2 * eps);
        const analytic = xs.reduce((s, x, i) => (diff.includes(x) ? s + dot(out[`${x.name}_grad`]!.data as Float32Array, dirs[i]!) : s), 0);
        const tol = 2e-3 * Math.max(1, Math.abs(numeric));
        assert.ok(Math.abs(numeric - analytic) <= tol, `${op}: directional derivative ${analytic} vs finite difference ${numeric} (tol ${tol})`);
      }
    });
  }
}

test('every registered op has a gradient rule or is explicitly non-differentiable', () => {
  for (const op of Object.keys(OPS) as OpName[]) {
    assert.ok(GRADS[op] !== undefined, `${op} has no gradient entry`);
    assert.ok(CASES[op].length > 0, `${op} has no test case`);
  }
});

test('a bad graph fails at build time naming the op, the inputs and the shapes', () => {
  const g = new Graph('bad');
  const a = g.input('a', 'float32', [2, 3]);
  const b = g.input('b', 'float32', [4, 5]);
  assert.throws(() => F.matmul(a, b), /MatMul: inner dimensions differ \(3 vs 4\) \(inputs: a: float32\[2, 3\], b: float32\[4, 5\]\)/);
  assert.throws(() => F.add(a, b), /Add: shapes do not broadcast at axis 0 \(2 vs 4\)/);
  const x = g.input('x', 'float32', [1, 3, 8, 8]);
  const w = g.input('w', 'float32', [4, 2, 3, 3]);
  assert.throws(() => F.conv(x, w, null), /Conv: input has 3 channels, weight \[4, 2, 3, 3\] with group 1 expects 2/);
  assert.throws(() => F.reshape(a, [4, -1]), /Reshape: cannot infer -1 in \[4, -1\]/);
});
