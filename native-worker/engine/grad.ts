// Reverse-mode autodiff over the IR. Each op has one small gradient rule in GRADS (a missing entry is a type
// error); ops whose inputs never carry gradients say 'nondiff'. The walker knows no op by name.
import * as F from './functional.ts';
import { type Node, type Value, GraphError, fmtShape, numel } from './ir.ts';
import { type OpAttrs, type OpName, isDifferentiable } from './ops.ts';

export interface GradContext<K extends OpName> {
  readonly attrs: OpAttrs[K];
  readonly ins: readonly Value[];
  readonly outs: readonly Value[];
  /** Gradient of each output (null where no gradient flows back). */
  readonly gys: readonly (Value | null)[];
  /** Which inputs need a gradient; a rule may skip work for the others. */
  readonly needs: readonly boolean[];
}

/** Returns one gradient per input (null for inputs that need none). */
export type GradRule<K extends OpName> = (c: GradContext<K>) => readonly (Value | null)[];

/** Sums `g` over the axes that broadcasting added, so it has `like`'s shape. */
export function unbroadcast(g: Value, like: Value): Value {
  const gs = g.staticShape(`gradient of ${like.name}`);
  const xs = like.staticShape(`gradient of ${like.name}`);
  const lead = gs.length - xs.length;
  const axes = gs.flatMap((d, i) => (i < lead || (xs[i - lead] === 1 && d !== 1) ? [i] : []));
  if (!axes.length) return g;
  const r = F.sum(g, axes, true);
  return lead ? F.reshape(r, xs) : r;
}

const first = (c: GradContext<OpName>): Value => {
  const gy = c.gys[0];
  if (!gy) throw new GraphError('internal: rule called without an output gradient');
  return gy;
};

const unsupported = (op: string, why: string): never => {
  throw new GraphError(`${op}: gradient not supported yet: ${why}`);
};

/** Broadcasts a reduced gradient back over the reduced axes of `x`. */
function expandReduced(gy: Value, x: Value, axes: readonly number[], keepdims: boolean): Value {
  const xs = x.staticShape(`gradient of ${x.name}`);
  const ax = axes.map((a) => (a < 0 ? a + xs.length : a));
  const kept = keepdims ? gy : F.reshape(gy, xs.map((d, i) => (ax.includes(i) ? 1 : d)));
  return F.expand(kept, xs);
}

const reducedCount = (x: Value, axes: readonly number[]): number =>
  numel(axes.map((a) => x.staticShape()[a < 0 ? a + x.rank : a]!));

/** (..., M, K) -> (..., K, M) */
const swapLast = (x: Value): Value => F.transpose(x, x.shape.map((_, i) => (i < x.rank - 2 ? i : i === x.rank - 2 ? x.rank - 1 : x.rank - 2)));

function convGrad(c: GradContext<'Conv'>): (Value | null)[] {
  const gy = first(c);
  const [x, w, b] = c.ins as [Value, Value, Value | undefined];
  const { strides, pads, dilations, group } = c.attrs;
  const [n, cin, h, wd] = x.staticShape();
  const [cout, , kh, kw] = w.staticShape();
  const [, , ho, wo] = gy.staticShape();
  const gb = b && c.needs[2] ? F.sum(gy, [0, 2, 3]) : null;
  const where = `group ${group}, kernel ${kh}x${kw}, strides ${fmtShape(strides)}, pads ${fmtShape(pads)}`;
  if (dilations.some((d) => d !== 1)) return unsupported('Conv', `dilations ${fmtShape(dilations)}`);

  if (group === cin && group === cout && strides.every((s) => s === 1)) {
    // Depthwise, stride 1. Input gradient: depthwise conv of gy with the flipped kernel ("full" padding
    // minus the forward pads). Weight gradient: one group per (sample, channel) correlating the padded
    // input with gy, then a sum over the batch. Both measured faster on CPU than grouped ConvTranspose.
    let gx: Value | null = null;
    if (c.needs[0]) {
      const back = [kh! - 1 - pads[0]!, kw! - 1 - pads[1]!, kh! - 1 - pads[2]!, kw! - 1 - pads[3]!];
      if (back.some((p) => p < 0)) return unsupported('Conv', `pads larger than the kernel (${where})`);
      const flipped = F.slice(w, [2, 3], [-1, -1], [-kh! - 1, -kw! - 1], [-1, -1]);
      gx = F.conv(gy, flipped, null, { pad: back, group });
    }
    let gw: Value | null = null;
    if (c.needs[1]) {
      const xs = F.reshape(x, [1, n! * cin!, h!, wd!]); // (N, C, H, W) -> (1, N*C, H, W)
      const ks = F.reshape(gy, [n! * cin!, 1, ho!, wo!]); // (N, C, Ho, Wo) -> (N*C, 1, Ho, Wo)
      const perSample = F.conv(xs, ks, null, { pad: pads, group: n! * cin! }); // (1, N*C, kh, kw)
      gw = F.reshape(F.sum(F.reshape(perSample, [n!, cin!, kh!, kw!]), [0]), [cin!, 1, kh!, kw!]);
    }
    return [gx, gw, gb];
  }

  const patchify = group === 1 && strides[0] === kh && strides[1] === kw && pads.every((p) => p === 0);
  if (patchify && h! % kh! === 0 && wd! % kw! === 0) {
    // Non-overlapping patches (stem 4x4/4, downsample 2x2/2, 1x1): each output pixel sees one patch.
    let gw: Value | null = null;
    if (c.needs[1]) {
      // (N, Cin, Ho, kh, Wo, kw) -> (N, Ho, Wo, Cin, kh, kw) -> (N*Ho*Wo, Cin*kh*kw)
      const patches = kh === 1 && kw === 1
        ? F.reshape(F.transpose(x, [0, 2, 3, 1]), [n! * ho! * wo!, cin!])
        : F.reshape(F.transpose(F.reshape(x, [n!, cin!, ho!, kh!, wo!, kw!]), [0, 2, 4, 1, 3, 5]), [n! * ho! * wo!, cin! * kh! * kw!]);
      const g2 = F.reshape(F.transpose(gy, [0, 2, 3, 1]), [n! * ho! * wo!, cout!]); // (N*Ho*Wo, Cout)
      gw = F.reshape(F.gemm(g2, patches, null, true, false), [cout!, cin!, kh!, kw!]);
    }
    const gx = c.needs[0]
      ? F.convTranspose(gy, w, { strides, pads, dilations, group, outputPadding: [0, 0] })
      : null;
    return [gx, gw, gb];
  }
  return unsupported('Conv', where);
}

function layerNormGrad(c: GradContext<'LayerNormalization'>): (Value | null)[] {
  if (c.gys[1] || c.gys[2]) return unsupported('LayerNormalization', 'gradients of Mean/InvStdDev outputs');
  const gy = first(c);
  const [x, scale] = c.ins as [Value, Value];
  const [, mean, invStd] = c.outs as [Value, Value, Value];
  const axis = c.attrs.axis < 0 ? c.attrs.axis + x.rank : c.attrs.axis;
  const lead = x.shape.slice(0, axis).map((_, i) => i);
  const norm = x.shape.slice(axis).map((_, i) => axis + i);
  const xhat = F.mul(F.sub(x, mean), invStd);
  const gscale = c.needs[1] ? F.sum(F.mul(gy, xhat), lead) : null;
  const gbias = c.needs[2] ? F.sum(gy, lead) : null;
  let gx: Value | null = null;
  if (c.needs[0]) {
    const gxhat = F.mul(gy, scale);
    const m1 = F.mean(gxhat, norm, true);
    const m2 = F.mean(F.mul(gxhat, xhat), norm, true);
    gx = F.mul(invStd, F.sub(F.sub(gxhat, m1), F.mul(xhat, m2)));
  }
  return [gx, gscale, gbias];
}

function sliceGrad(c: GradContext<'Slice'>): (Value | null)[] {
  const gy = first(c);
  const x = c.ins[0]!;
  const xs = x.staticShape();
  const { axes, starts, steps } = c.attrs;
  const pads = new Array<number>(2 * x.rank).fill(0);
  let g = gy;
  axes.forEach((ax0, k) => {
    const ax = ax0 < 0 ? ax0 + x.rank : ax0;
    const size = xs[ax]!;
    const out = gy.staticShape()[ax]!;
    const step = steps[k]!;
    if (Math.abs(step) !== 1) unsupported('Slice', `step ${step}`);
    const norm = (v: number, lo: number) => Math.min(Math.max(v < 0 ? v + size : v, lo), size - (step > 0 ? 0 : 1));
    // The slice covers indices [lo, lo + out) of the input, reversed when the step is -1.
    const lo = step > 0 ? norm(starts[k]!, 0) : norm(starts[k]!, -1) - out + 1;
    if (step < 0) g = F.slice(g, [ax], [-1], [-(2 ** 31)], [-1]);
    pads[ax] = lo;
    pads[ax + x.rank] = size - lo - out;
  });
  return [F.pad(g, pads)];
}

export const GRADS: { readonly [K in OpName]: GradRule<K> | 'nondiff' } = {
  Add: (c) => [unbroadcast(first(c), c.ins[0]!), unbroadcast(first(c), c.ins[1]!)],
  Sub: (c) => [unbroadcast(first(c), c.ins[0]!), c.needs[1] ? unbroadcast(F.neg(first(c)), c.ins[1]!) : null],
  Mul: (c) => [
    c.needs[0] ? unbroadcast(F.mul(first(c), c.ins[1]!), c.ins[0]!) : null,
    c.needs[1] ? unbroadcast(F.mul(first(c), c.ins[0]!), c.ins[1]!) : null,
  ],
  Div: (c) => [
    c.needs[0] ? unbroadcast(F.div(first(c), c.ins[1]!), c.ins[0]!) : null,
    c.needs[1] ? unbroadcast(F.neg(F.div(F.mul(first(c), c.outs[0]!), c.ins[1]!)), c.ins[1]!) : null,
  ],
  Pow: (c) => {
    const [a, b] = c.ins as [Value, Value];
    return [
      c.needs[0] ? unbroadcast(F.mul(first(c), F.mul(b, F.pow(a, F.sub(b, 1)))), a) : null,
      c.needs[1] ? unbroadcast(F.mul(first(c), F.mul(c.outs[0]!, F.log(a))), b) : null,
    ];
  },
  Min: 'nondiff',
  Max: 'nondiff',
  Equal: 'nondiff',
  Less: 'nondiff',
  Greater: 'nondiff',
  Where: (c) => {
    const [cond, a, b] = c.ins as [Value, Value, Value];
    return [
      null,
      c.needs[1] ? unbroadcast(F.where(cond, first(c), 0), a) : null,
      c.needs[2] ? unbroadcast(F.where(cond, 0, first(c)), b) : null,
    ];
  },
  Neg: (c) => [F.neg(first(c))],
  Exp: (c) => [F.mul(first(c), c.outs[0]!)],
  Log: (c) => [F.div(first(c), c.ins[0]!)],
  // At 0 the gradient is taken as 0, as torch.norm's is: a GRN channel whose activations all underflow to 0
  // would otherwise turn every gradient into NaN (inf * 0).
  Sqrt: (c) => {
    const y = c.outs[0]!;
    return [F.where(F.greater(y, 0), F.div(F.mul(first(c), 0.5), y), 0)];
  },
  Erf: (c) => {
    const x = c.ins[0]!;
    return [F.mul(first(c), F.mul(2 / Math.sqrt(Math.PI), F.exp(F.neg(F.mul(x, x)))))];
  },
  Abs: (c) => [F.where(F.less(c.ins[0]!, 0), F.neg(first(c)), first(c))],
  Reciprocal: (c) => [F.neg(F.mul(first(c), F.mul(c.outs[0]!, c.outs[0]!)))],
  Tanh: (c) => [F.mul(first(c), F.sub(1, F.mul(c.outs[0]!, c.outs[0]!)))],
  Gelu: (c) => {
    // d/dx x*Phi(x) = Phi(x) + x*phi(x)
    const x = c.ins[0]!;
    const cdf = F.mul(0.5, F.add(1, F.erf(F.mul(x, Math.SQRT1_2))));
    const pdf = F.mul(1 / Math.sqrt(2 * Math.PI), F.exp(F.mul(F.mul(x, x), -0.5)));
    return [F.mul(first(c), F.add(cdf, F.mul(x, pdf)))];
  },
  Cast: (c) => [F.cast(first(c), c.ins[0]!.dtype)],
  Identity: (c) => [first(c)],
  ReduceSum: (c) => [expandReduced(first(c), c.ins[0]!, c.attrs.axes, c.attrs.keepdims)],
  ReduceMean: (c) => [
    F.mul(expandReduced(first(c), c.ins[0]!, c.attrs.axes, c.attrs.keepdims), 1 / reducedCount(c.ins[0]!, c.attrs.axes)),
  ],
  ReduceSumSquare: (c) => [F.mul(expandReduced(first(c), c.ins[0]!, c.attrs.axes, c.attrs.keepdims), F.mul(c.ins[0]!, 2))],
  ReduceMax: 'nondiff',
  Transpose: (c) => {
    const inv = new Array<number>(c.attrs.perm.length);
    c.attrs.perm.forEach((p, i) => (inv[p] = i));
    return [F.transpose(first(c), inv)];
  },
  Reshape: (c) => [F.reshape(first(c), c.ins[0]!.staticShape())],
  Expand: (c) => [unbroadcast(first(c), c.ins[0]!)],
  Concat: (c) => {
    const axis = c.attrs.axis < 0 ? c.attrs.axis + c.ins[0]!.rank : c.attrs.axis;
    let at = 0;
    return c.ins.map((x, i) => {
      const size = x.staticShape()[axis]!;
      const g = c.needs[i] ? F.slice(first(c), [axis], [at], [at + size]) : null;
      at += size;
      return g;
    });
  },
  Slice: sliceGrad,
  Pad: (c) => {
    const x = c.ins[0]!;
    const { pads } = c.attrs;
    if (pads.some((p) => p < 0)) return unsupported('Pad', 'negative pads');
    const axes = x.shape.map((_, i) => i);
    return [F.slice(first(c), axes, axes.map((i) => pads[i]!), axes.map((i) => pads[i]! + x.staticShape()[i]!))];
  },
  Conv: convGrad,
  ConvTranspose: 'nondiff',
  MatMul: (c) => {
    const [a, b] = c.ins as [Value, Value];
    const gy = first(c);
    if (b.rank === 2) {
      // A (..., K) @ W (K, N): dW = A2^T @ gy2 over all leading positions, as one Gemm.
      const [k, n] = b.staticShape();
      const rows = numel(a.staticShape()) / k!;
      return [
        c.needs[0] ? F.matmul(gy, F.transpose(b, [1, 0])) : null,
        c.needs[1] ? F.gemm(F.reshape(a, [rows, k!]), F.reshape(gy, [rows, n!]), null, true, false) : null,
      ];
    }
    return [
      c.needs[0] ? unbroadcast(F.matmul(gy, swapLast(b)), a) : null,
      c.needs[1] ? unbroadcast(F.matmul(swapLast(a), gy), b) : null,
    ];
  },
  Gemm: (c) => {
    const [a, b, bias] = c.ins as [Value, Value, Value | undefined];
    const gy = first(c);
    const { transA, transB } = c.attrs;
    return [
      c.needs[0] ? (transA ? F.gemm(b, gy, null, transB, true) : F.gemm(gy, b, null, false, !transB)) : null,
      c.needs[1] ? (transB ? F.gemm(gy, a, null, true, transA) : F.gemm(a, gy, null, !transA, false)) : null,
      bias && c.needs[2] ? unbroadcast(gy, bias) : null,
    ];
  },
  LayerNormalization: layerNormGrad,
  Softmax: (c) => {
    const y = c.outs[0]!;
    return [F.mul(y, F.sub(first(c), F.sum(F.mul(first(c), y), [c.attrs.axis], true)))];
  },
  LogSoftmax: (c) => {
    const y = c.outs[0]!;
    return [F.sub(first(c), F.mul(F.exp(y), F.sum(first(c), [c.attrs.axis], true)))];
  },
};

/**
 * Gradients of the scalar `loss` with respect to each value in `wrt`. Only the nodes between them get
 * backward nodes; a value the loss does not depend on gets zeros.
 */
export function gradients(loss: Value, wrt: readonly Value[], seed?: Value): Map<Value, Value> {
  const g = loss.graph;
  if (!seed && numel(loss.staticShape('loss')) !== 1) throw new GraphError(`gradients: loss ${loss} is not a scalar`);
  // Values that depend on some `wrt` (forward reach).
  const dependsOnWrt = new Set<Value>(wrt);
  for (const n of g.nodes) {
    if (n.inputs.some((x, i) => dependsOnWrt.has(x) && isDifferentiable(n.op as OpName, i))) n.outputs.forEach((o) => dependsOnWrt.add(o));
  }
  const pending = new Map<Value, Value[]>([[loss, [seed ?? (loss.rank ? F.expand(g.scalar(1), loss.staticShape()) : g.scalar(1))]]]);
  const total = (v: Value): Value | null => {
    const parts = pending.get(v);
    if (!parts) return null;
    const s = parts.reduce((acc, p) => F.add(acc, p));
    pending.set(v, [s]);
    return s;
  };
  const stop = loss.producer?.node.id ?? -1;
  for (let id = stop; id >= 0; id--) {
    const node: Node = g.nodes[id]!;
    if (!node.outputs.some((o) => pending.has(o))) continue;
    const op = node.op as OpName;
    const needs = node.inputs.map((x, i) => dependsOnWrt.has(x) && isDifferentiable(op, i));
    if (!needs.some(Boolean)) continue;
    const rule = GRADS[op];
    if (rule === 'nondiff') {
      throw new GraphError(`${op} (${node.name}) is not differentiable, but a gradient reaches it from ${loss.name}`);
    }
    const gys = node.outputs.map(total);
    const grads = g.scope(`grad/${node.name}`, () =>
      (rule as GradRule<OpName>)({ attrs: node.attrs as never, ins: node.inputs, outs: node.outputs, gys, needs }),
    );
    node.inputs.forEach((x, i) => {
      const gx = grads[i];
      if (!needs[i] || !gx) return;
      if (fmtShape(gx.shape) !== fmtShape(x.shape)) {
        throw new GraphError(`internal: ${op} rule gave gradient ${fmtShape(gx.shape)} for ${x}`);
      }
      const list = pending.get(x);
      if (list) list.push(gx);
      else pending.set(x, [gx]);
    });
  }
  return new Map(wrt.map((x) => [x, total(x) ?? F.expand(g.scalar(0), x.staticShape())]));
}
