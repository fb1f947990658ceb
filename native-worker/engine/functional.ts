// Short, typed builders over the op table: the vocabulary that models, losses and optimizers are written in.
import type { DType, Value } from './ir.ts';
import { type OpAttrs, type OpName, apply } from './ops.ts';

const one = <K extends OpName>(op: K, ins: readonly Value[], attrs: OpAttrs[K]): Value => apply(op, ins, attrs)[0]!;

/** A scalar, or a value, as a graph value (numbers become shared float32 constants). */
export type Operand = Value | number;
const lift = (ref: Value, x: Operand): Value => (typeof x === 'number' ? ref.graph.scalar(x) : x);
const pair = (a: Operand, b: Operand): [Value, Value] => {
  const ref = typeof a === 'number' ? (b as Value) : a;
  return [lift(ref, a), lift(ref, b)];
};

export const add = (a: Operand, b: Operand) => one('Add', pair(a, b), {});
export const sub = (a: Operand, b: Operand) => one('Sub', pair(a, b), {});
export const mul = (a: Operand, b: Operand) => one('Mul', pair(a, b), {});
export const div = (a: Operand, b: Operand) => one('Div', pair(a, b), {});
export const pow = (a: Operand, b: Operand) => one('Pow', pair(a, b), {});
export const min = (a: Operand, b: Operand) => one('Min', pair(a, b), {});
export const max = (a: Operand, b: Operand) => one('Max', pair(a, b), {});
export const equal = (a: Value, b: Value) => one('Equal', [a, b], {});
export const less = (a: Operand, b: Operand) => one('Less', pair(a, b), {});
export const greater = (a: Operand, b: Operand) => one('Greater', pair(a, b), {});
export const where = (cond: Value, a: Operand, b: Operand) => one('Where', [cond, ...pair(a, b)], {});
export const neg = (x: Value) => one('Neg', [x], {});
export const exp = (x: Value) => one('Exp', [x], {});
export const log = (x: Value) => one('Log', [x], {});
export const sqrt = (x: Value) => one('Sqrt', [x], {});
export const erf = (x: Value) => one('Erf', [x], {});
export const abs = (x: Value) => one('Abs', [x], {});
export const reciprocal = (x: Value) => one('Reciprocal', [x], {});
export const tanh = (x: Value) => one('Tanh', [x], {});
/** GELU, erf form (ONNX Gelu with approximate='none'). */
export const gelu = (x: Value) => one('Gelu', [x], {});
export const cast = (x: Value, to: DType) => (x.dtype === to ? x : one('Cast', [x], { to }));
export const identity = (x: Value) => one('Identity', [x], {});

export const sum = (x: Value, axes: readonly number[], keepdims = false) => one('ReduceSum', [x], { axes, keepdims });
export const mean = (x: Value, axes: readonly number[], keepdims = false) => one('ReduceMean', [x], { axes, keepdims });
export const sumSquare = (x: Value, axes: readonly number[], keepdims = false) => one('ReduceSumSquare', [x], { axes, keepdims });
export const reduceMax = (x: Value, axes: readonly number[], keepdims = false) => one('ReduceMax', [x], { axes, keepdims });
/** Sum of every element, as a scalar. */
export const sumAll = (x: Value) => (x.rank === 0 ? x : sum(x, x.shape.map((_, i) => i)));

export const transpose = (x: Value, perm: readonly number[]) => one('Transpose', [x], { perm });
export const reshape = (x: Value, shape: readonly number[]) => one('Reshape', [x], { shape });
export const expand = (x: Value, shape: readonly number[]) => one('Expand', [x], { shape });
export const concat = (xs: readonly Value[], axis: number) => (xs.length === 1 ? xs[0]! : one('Concat', xs, { axis }));
export const slice = (x: Value, axes: readonly number[], starts: readonly number[], ends: readonly number[], steps?: readonly number[]) =>
  one('Slice', [x], { axes, starts, ends, steps: steps ?? axes.map(() => 1) });
export const pad = (x: Value, pads: readonly number[]) => one('Pad', [x], { pads });

export interface ConvOptions {
  stride?: number;
  pad?: number | readonly number[];
  dilation?: number;
  group?: number;
}
export const convAttrs = (o: ConvOptions) => {
  const p = o.pad ?? 0;
  return {
    strides: [o.stride ?? 1, o.stride ?? 1],
    pads: typeof p === 'number' ? [p, p, p, p] : p,
    dilations: [o.dilation ?? 1, o.dilation ?? 1],
    group: o.group ?? 1,
  };
};
export const conv = (x: Value, w: Value, b: Value | null, o: ConvOptions = {}) => one('Conv', b ? [x, w, b] : [x, w], convAttrs(o));
export const convTranspose = (x: Value, w: Value, attrs: OpAttrs['ConvTranspose']) => one('ConvTranspose', [x, w], attrs);
export const matmul = (a: Value, b: Value) => one('MatMul', [a, b], {});
export const gemm = (a: Value, b: Value, c: Value | null, transA = false, transB = false) =>
  one('Gemm', c ? [a, b, c] : [a, b], { transA, transB });

/** LayerNorm over the axes from `axis` on; returns the output and the saved statistics. */
export const layerNormWithStats = (x: Value, scale: Value, bias: Value, axis = -1, epsilon = 1e-6) => {
  const [y, mean, invStd] = apply('LayerNormalization', [x, scale, bias], { axis, epsilon });
  return { y: y!, mean: mean!, invStd: invStd! };
};
export const layerNorm = (x: Value, scale: Value, bias: Value, axis = -1, epsilon = 1e-6) => layerNormWithStats(x, scale, bias, axis, epsilon).y;

export const softmax = (x: Value, axis = -1) => one('Softmax', [x], { axis });
export const logSoftmax = (x: Value, axis = -1) => one('LogSoftmax', [x], { axis });
