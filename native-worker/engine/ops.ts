// The op table: every op the engine can emit, with its typed attributes, its ONNX encoding, its shape/dtype
// rule (run when the graph is built) and which of its inputs are differentiable. Shared code looks ops up
// here and never switches on op names.
import { type DType, type Dim, type Shape, type Value, GraphError, fmtShape } from './ir.ts';

/** An ONNX attribute value with its explicit type (ints and floats look alike in JS). */
export type OnnxAttr =
  | { i: number }
  | { f: number }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { s: string };

/** A constant input that the ONNX form of an op needs (axes, shapes, pads) after its real inputs. */
export interface ConstInput {
  readonly dtype: 'int64' | 'float32';
  readonly shape: readonly number[];
  readonly values: readonly number[];
}

export interface Encoded {
  readonly attrs: Readonly<Record<string, OnnxAttr>>;
  readonly constInputs?: readonly ConstInput[];
}

export interface TypeInfo {
  readonly dtype: DType;
  readonly shape: Shape;
}

type None = Record<never, never>;
interface Axes {
  readonly axes: readonly number[];
  readonly keepdims: boolean;
}
export interface ConvAttrs {
  readonly strides: readonly number[];
  readonly pads: readonly number[]; // [top, left, bottom, right]
  readonly dilations: readonly number[];
  readonly group: number;
}

/** Attributes of every op; an op's name is a key of this interface. */
export interface OpAttrs {
  Add: None;
  Sub: None;
  Mul: None;
  Div: None;
  Pow: None;
  Min: None;
  Max: None;
  Equal: None;
  Less: None;
  Greater: None;
  Where: None;
  Neg: None;
  Exp: None;
  Log: None;
  Sqrt: None;
  Erf: None;
  Abs: None;
  Reciprocal: None;
  Tanh: None;
  Gelu: None;
  Cast: { readonly to: DType };
  Identity: None;
  ReduceSum: Axes;
  ReduceMean: Axes;
  ReduceSumSquare: Axes;
  ReduceMax: Axes;
  Transpose: { readonly perm: readonly number[] };
  Reshape: { readonly shape: readonly number[] };
  Expand: { readonly shape: readonly number[] };
  Concat: { readonly axis: number };
  Slice: { readonly starts: readonly number[]; readonly ends: readonly number[]; readonly axes: readonly number[]; readonly steps: readonly number[] };
  Pad: { readonly pads: readonly number[] };
  Conv: ConvAttrs;
  ConvTranspose: ConvAttrs & { readonly outputPadding: readonly number[] };
  MatMul: None;
  Gemm: { readonly transA: boolean; readonly transB: boolean };
  LayerNormalization: { readonly axis: number; readonly epsilon: number };
  Softmax: { readonly axis: number };
  LogSoftmax: { readonly axis: number };
}

export type OpName = keyof OpAttrs;

export interface OpSpec<A> {
  /** Number of inputs (an optional last input is allowed when `optionalLast`). */
  readonly arity: number;
  readonly optionalLast?: boolean;
  /** Per input: whether a gradient can flow into it ('all' for variadic ops). */
  readonly differentiable: readonly boolean[] | 'all';
  readonly infer: (ins: readonly Value[], a: A) => TypeInfo[];
  readonly encode: (a: A, ins: readonly Value[]) => Encoded;
}

export const ONNX_OPSET = 20;

const ONNX_DTYPE: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float16: 10 };
export const onnxDType = (d: DType): number => ONNX_DTYPE[d];

const fail = (op: string, ins: readonly Value[], msg: string): never => {
  throw new GraphError(`${op}: ${msg} (inputs: ${ins.map((x) => x.toString()).join(', ')})`);
};

const isFloat = (d: DType) => d === 'float32' || d === 'float16';

const normAxis = (op: string, ins: readonly Value[], axis: number, rank: number): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, ins, `axis ${axis} is out of range for rank ${rank}`);
  return a;
};

/** numpy-style broadcasting of shapes; symbolic dims broadcast only against 1 or the same name. */
export function broadcastShapes(op: string, shapes: readonly Shape[], ins: readonly Value[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const e = s[s.length - rank + i] ?? 1;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (d !== e) fail(op, ins, `shapes do not broadcast at axis ${i} (${d} vs ${e})`);
    }
    out.push(d);
  }
  return out;
}

const none = (): Encoded => ({ attrs: {} });

function elementwise(op: string, opts: { out?: DType; needFloat?: boolean; sameDType?: boolean } = {}) {
  return (ins: readonly Value[]): TypeInfo[] => {
    const dt = ins[0]!.dtype;
    if ((opts.sameDType ?? true) && ins.some((x) => x.dtype !== dt)) fail(op, ins, 'inputs have different dtypes');
    if (opts.needFloat && !isFloat(dt)) fail(op, ins, `needs a float input, got ${dt}`);
    return [{ dtype: opts.out ?? dt, shape: broadcastShapes(op, ins.map((x) => x.shape), ins) }];
  };
}

const binary = (op: string, diff = true): OpSpec<None> => ({
  arity: 2,
  differentiable: [diff, diff],
  infer: elementwise(op),
  encode: none,
});
const compare = (op: string): OpSpec<None> => ({
  arity: 2,
  differentiable: [false, false],
  infer: elementwise(op, { out: 'bool' }),
  encode: none,
});
const unary = (op: string): OpSpec<None> => ({
  arity: 1,
  differentiable: [true],
  infer: elementwise(op, { needFloat: true }),
  encode: none,
});

function reduce(op: string): OpSpec<Axes> {
  return {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => {
      const x = ins[0]!;
      const axes = a.axes.map((ax) => normAxis(op, ins, ax, x.rank));
      if (new Set(axes).size !== axes.length) fail(op, ins, `repeated axes ${fmtShape(a.axes)}`);
      const shape = x.shape.flatMap((d, i) => (axes.includes(i) ? (a.keepdims ? [1] : []) : [d]));
      return [{ dtype: x.dtype, shape }];
    },
    encode: (a) => ({
      attrs: { keepdims: { i: a.keepdims ? 1 : 0 } },
      constInputs: [{ dtype: 'int64', shape: [a.axes.length], values: a.axes }],
    }),
  };
}

/** A symbolic dim is a name ('N') or a name times a count ('N*256'), as reshapes of a symbolic batch make. */
function symbolic(d: string): { name: string; k: number } {
  const [name, k] = d.split('*');
  return { name: name!, k: k ? Number(k) : 1 };
}

/** Output shape of Reshape: 0 copies the input's dim, -1 takes what is left (symbolic batch dims allowed). */
function reshapeShape(ins: readonly Value[], target: readonly number[]): Dim[] {
  const x = ins[0]!;
  if (target.some((t) => t < -1)) fail('Reshape', ins, `bad target ${fmtShape(target)}`);
  if (target.filter((t) => t === -1).length > 1) fail('Reshape', ins, `more than one -1 in ${fmtShape(target)}`);
  const out: Dim[] = target.map((t, i) => (t === 0 ? (x.shape[i] ?? fail('Reshape', ins, `0 at axis ${i} beyond rank`)) : t));
  // Sizes as (symbol names, numeric product): both sides must agree, the -1 takes the difference.
  const size = (dims: readonly Dim[]) => {
    const names: string[] = [];
    let k = 1;
    for (const d of dims) {
      if (typeof d === 'string') {
        const s = symbolic(d);
        names.push(s.name);
        k *= s.k;
      } else if (d !== -1) k *= d;
    }
    return { names, k };
  };
  const a = size(x.shape);
  const b = size(out);
  const free = [...a.names];
  for (const n of b.names) {
    const i = free.indexOf(n);
    if (i < 0) return fail('Reshape', ins, `symbolic dim ${n} is not in the input`);
    free.splice(i, 1);
  }
  const hole = out.indexOf(-1);
  const rest = a.k / b.k;
  if (hole >= 0) {
    if (free.length > 1 || !Number.isInteger(rest)) fail('Reshape', ins, `cannot infer -1 in ${fmtShape(target)}`);
    out[hole] = free.length ? (rest === 1 ? free[0]! : `${free[0]}*${rest}`) : rest;
  } else if (free.length || rest !== 1) {
    fail('Reshape', ins, `cannot reshape to ${fmtShape(target)}`);
  }
  return out;
}

function convOutShape(op: string, ins: readonly Value[], a: ConvAttrs, transpose: readonly number[] | null): Dim[] {
  const [x, w] = [ins[0]!, ins[1]!];
  if (x.rank !== 4 || w.rank !== 4) fail(op, ins, 'expects 4-D input and weight (N, C, H, W)');
  if (a.pads.length !== 4 || a.strides.length !== 2 || a.dilations.length !== 2) fail(op, ins, 'needs 2-D strides/dilations and 4 pads');
  const [, cin, h, wd] = x.shape;
  const [wo, wi, kh, kw] = w.staticShape(`${op} weight`);
  if (typeof cin !== 'number' || typeof h !== 'number' || typeof wd !== 'number') {
    return fail(op, ins, 'needs static channels and spatial size');
  }
  const cout = transpose ? wi! * a.group : wo!;
  if (transpose ? wo !== cin : wi! * a.group !== cin) {
    fail(op, ins, `input has ${cin} channels, weight ${fmtShape(w.shape)} with group ${a.group} expects ${transpose ? wo : wi! * a.group}`);
  }
  if (cout % a.group || cin % a.group) fail(op, ins, `channels are not divisible by group ${a.group}`);
  const b = ins[2];
  if (b && (b.rank !== 1 || b.shape[0] !== cout)) fail(op, ins, `bias must be [${cout}]`);
  const spatial = [h, wd].map((n, i) => {
    const k = (i === 0 ? kh! : kw!) - 1;
    const [s, d, p] = [a.strides[i]!, a.dilations[i]!, a.pads[i]! + a.pads[i + 2]!];
    const o = transpose ? (n - 1) * s + d * k + 1 - p + transpose[i]! : Math.floor((n + p - d * k - 1) / s) + 1;
    if (o < 1) fail(op, ins, `output size ${o} < 1 along spatial axis ${i}`);
    return o;
  });
  return [x.shape[0]!, cout, ...spatial];
}

const convEncode = (a: ConvAttrs): Record<string, OnnxAttr> => ({
  strides: { ints: a.strides },
  pads: { ints: a.pads },
  dilations: { ints: a.dilations },
  group: { i: a.group },
});

const matmulShape = (ins: readonly Value[]): Dim[] => {
  const [a, b] = [ins[0]!, ins[1]!];
  if (a.rank < 2 || b.rank < 2) fail('MatMul', ins, 'needs inputs of rank >= 2');
  const k1 = a.shape[a.rank - 1]!;
  const k2 = b.shape[b.rank - 2]!;
  if (k1 !== k2) fail('MatMul', ins, `inner dimensions differ (${k1} vs ${k2})`);
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes('MatMul', [batchA, batchB], ins);
  return [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!];
};

export const OPS: { readonly [K in OpName]: OpSpec<OpAttrs[K]> } = {
  Add: binary('Add'),
  Sub: binary('Sub'),
  Mul: binary('Mul'),
  Div: binary('Div'),
  Pow: binary('Pow'),
  Min: binary('Min', false),
  Max: binary('Max', false),
  Equal: compare('Equal'),
  Less: compare('Less'),
  Greater: compare('Greater'),
  Where: {
    arity: 3,
    differentiable: [false, true, true],
    infer: (ins) => {
      if (ins[0]!.dtype !== 'bool') fail('Where', ins, 'condition must be bool');
      if (ins[1]!.dtype !== ins[2]!.dtype) fail('Where', ins, 'branches have different dtypes');
      return [{ dtype: ins[1]!.dtype, shape: broadcastShapes('Where', ins.map((x) => x.shape), ins) }];
    },
    encode: none,
  },
  Neg: unary('Neg'),
  Exp: unary('Exp'),
  Log: unary('Log'),
  Sqrt: unary('Sqrt'),
  Erf: unary('Erf'),
  Abs: unary('Abs'),
  Reciprocal: unary('Reciprocal'),
  Tanh: unary('Tanh'),
  Gelu: { ...unary('Gelu'), encode: () => ({ attrs: { approximate: { s: 'none' } } }) },
  Cast: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => [{ dtype: a.to, shape: ins[0]!.shape }],
    encode: (a) => ({ attrs: { to: { i: onnxDType(a.to) } } }),
  },
  Identity: { arity: 1, differentiable: [true], infer: (ins) => [{ dtype: ins[0]!.dtype, shape: ins[0]!.shape }], encode: none },
  ReduceSum: reduce('ReduceSum'),
  ReduceMean: reduce('ReduceMean'),
  ReduceSumSquare: reduce('ReduceSumSquare'),
  ReduceMax: { ...reduce('ReduceMax'), differentiable: [false] },
  Transpose: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => {
      const x = ins[0]!;
      const sorted = [...a.perm].sort((p, q) => p - q);
      if (a.perm.length !== x.rank || sorted.some((p, i) => p !== i)) fail('Transpose', ins, `bad perm ${fmtShape(a.perm)}`);
      return [{ dtype: x.dtype, shape: a.perm.map((p) => x.shape[p]!) }];
    },
    encode: (a) => ({ attrs: { perm: { ints: a.perm } } }),
  },
  Reshape: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => [{ dtype: ins[0]!.dtype, shape: reshapeShape(ins, a.shape) }],
    encode: (a) => ({ attrs: {}, constInputs: [{ dtype: 'int64', shape: [a.shape.length], values: a.shape }] }),
  },
  Expand: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => [{ dtype: ins[0]!.dtype, shape: broadcastShapes('Expand', [ins[0]!.shape, a.shape], ins) }],
    encode: (a) => ({ attrs: {}, constInputs: [{ dtype: 'int64', shape: [a.shape.length], values: a.shape }] }),
  },
  Concat: {
    arity: Infinity,
    differentiable: 'all',
    infer: (ins, a) => {
      const x = ins[0]!;
      const axis = normAxis('Concat', ins, a.axis, x.rank);
      let total = 0;
      for (const y of ins) {
        if (y.rank !== x.rank || y.dtype !== x.dtype) fail('Concat', ins, 'inputs differ in rank or dtype');
        y.shape.forEach((d, i) => {
          if (i !== axis && d !== x.shape[i]) fail('Concat', ins, `inputs differ at axis ${i}`);
        });
        const d = y.shape[axis];
        if (typeof d !== 'number') return fail('Concat', ins, 'concat axis must be static');
        total += d;
      }
      return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? total : d)) }];
    },
    encode: (a) => ({ attrs: { axis: { i: a.axis } } }),
  },
  Slice: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => {
      const x = ins[0]!;
      const shape = [...x.shape];
      a.axes.forEach((ax, k) => {
        const axis = normAxis('Slice', ins, ax, x.rank);
        const n = x.shape[axis];
        if (typeof n !== 'number') return fail('Slice', ins, `axis ${axis} must be static`);
        const step = a.steps[k]!;
        if (step === 0) fail('Slice', ins, 'step 0');
        const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + n : v, lo), hi);
        const [s, e] = step > 0 ? [clamp(a.starts[k]!, 0, n), clamp(a.ends[k]!, 0, n)] : [clamp(a.starts[k]!, -1, n - 1), clamp(a.ends[k]!, -1, n - 1)];
        shape[axis] = Math.max(0, Math.ceil((e - s) / step));
      });
      return [{ dtype: x.dtype, shape }];
    },
    encode: (a) => ({
      attrs: {},
      constInputs: [a.starts, a.ends, a.axes, a.steps].map((v) => ({ dtype: 'int64' as const, shape: [v.length], values: v })),
    }),
  },
  Pad: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => {
      const x = ins[0]!;
      if (a.pads.length !== 2 * x.rank) fail('Pad', ins, `needs ${2 * x.rank} pads`);
      const shape = x.shape.map((d, i) => (typeof d === 'number' ? d + a.pads[i]! + a.pads[i + x.rank]! : a.pads[i] || a.pads[i + x.rank] ? fail('Pad', ins, 'cannot pad a symbolic axis') : d));
      return [{ dtype: x.dtype, shape }];
    },
    encode: (a) => ({ attrs: { mode: { s: 'constant' } }, constInputs: [{ dtype: 'int64', shape: [a.pads.length], values: a.pads }] }),
  },
  Conv: {
    arity: 3,
    optionalLast: true,
    differentiable: [true, true, true],
    infer: (ins, a) => [{ dtype: ins[0]!.dtype, shape: convOutShape('Conv', ins, a, null) }],
    encode: (a) => ({ attrs: convEncode(a) }),
  },
  ConvTranspose: {
    arity: 2,
    differentiable: [false, false],
    infer: (ins, a) => [{ dtype: ins[0]!.dtype, shape: convOutShape('ConvTranspose', ins, a, a.outputPadding) }],
    encode: (a) => ({ attrs: { ...convEncode(a), output_padding: { ints: a.outputPadding } } }),
  },
  MatMul: {
    arity: 2,
    differentiable: [true, true],
    infer: (ins) => {
      if (ins[0]!.dtype !== ins[1]!.dtype) fail('MatMul', ins, 'inputs have different dtypes');
      return [{ dtype: ins[0]!.dtype, shape: matmulShape(ins) }];
    },
    encode: none,
  },
  Gemm: {
    arity: 3,
    optionalLast: true,
    differentiable: [true, true, true],
    infer: (ins, a) => {
      const [x, w, c] = ins;
      if (x!.rank !== 2 || w!.rank !== 2) fail('Gemm', ins, 'needs 2-D A and B');
      const [m, k1] = a.transA ? [x!.shape[1]!, x!.shape[0]!] : [x!.shape[0]!, x!.shape[1]!];
      const [k2, n] = a.transB ? [w!.shape[1]!, w!.shape[0]!] : [w!.shape[0]!, w!.shape[1]!];
      if (k1 !== k2) fail('Gemm', ins, `inner dimensions differ (${k1} vs ${k2})`);
      if (c) broadcastShapes('Gemm', [[m, n], c.shape], ins);
      return [{ dtype: x!.dtype, shape: [m, n] }];
    },
    encode: (a) => ({ attrs: { transA: { i: a.transA ? 1 : 0 }, transB: { i: a.transB ? 1 : 0 } } }),
  },
  LayerNormalization: {
    arity: 3,
    differentiable: [true, true, true],
    infer: (ins, a) => {
      const [x, scale, bias] = ins;
      const axis = normAxis('LayerNormalization', ins, a.axis, x!.rank);
      const normShape = x!.shape.slice(axis);
      for (const p of [scale!, bias!]) {
        if (fmtShape(p.shape) !== fmtShape(normShape)) fail('LayerNormalization', ins, `scale/bias must be ${fmtShape(normShape)}`);
      }
      const statShape = x!.shape.map((d, i) => (i < axis ? d : 1));
      // Outputs: Y, Mean, InvStdDev (the statistics feed the gradient).
      return [
        { dtype: x!.dtype, shape: x!.shape },
        { dtype: 'float32', shape: statShape },
        { dtype: 'float32', shape: statShape },
      ];
    },
    encode: (a) => ({ attrs: { axis: { i: a.axis }, epsilon: { f: a.epsilon }, stash_type: { i: 1 } } }),
  },
  Softmax: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => {
      normAxis('Softmax', ins, a.axis, ins[0]!.rank);
      return [{ dtype: ins[0]!.dtype, shape: ins[0]!.shape }];
    },
    encode: (a) => ({ attrs: { axis: { i: a.axis } } }),
  },
  LogSoftmax: {
    arity: 1,
    differentiable: [true],
    infer: (ins, a) => {
      normAxis('LogSoftmax', ins, a.axis, ins[0]!.rank);
      return [{ dtype: ins[0]!.dtype, shape: ins[0]!.shape }];
    },
    encode: (a) => ({ attrs: { axis: { i: a.axis } } }),
  },
};

/** Whether input `i` of a node of this op can carry a gradient. */
export const isDifferentiable = (op: OpName, i: number): boolean => {
  const d = OPS[op].differentiable;
  return d === 'all' || (d[i] ?? false);
};

/** Builds a node of `op` after checking arity and running the op's shape rule. */
export function apply<K extends OpName>(op: K, ins: readonly Value[], attrs: OpAttrs[K]): Value[] {
  const spec = OPS[op] as OpSpec<OpAttrs[K]>;
  const g = ins[0]?.graph;
  if (!g) throw new GraphError(`${op}: needs at least one input`);
  const okArity = spec.arity === Infinity || ins.length === spec.arity || (spec.optionalLast && ins.length === spec.arity - 1);
  if (!okArity) fail(op, ins, `expects ${spec.arity} inputs, got ${ins.length}`);
  const types = spec.infer(ins, attrs);
  return g.addNode(op, ins, attrs, types);
}
