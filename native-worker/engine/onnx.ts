// Serializes a Graph to an ONNX ModelProto. Deterministic: the same graph gives the same bytes.
import { type DType, type Graph, type Shape, type TensorData, type Value, GraphError } from './ir.ts';
import { type ConstInput, type OnnxAttr, type OpName, ONNX_OPSET, OPS, onnxDType } from './ops.ts';
import { Message } from './protobuf.ts';

const IR_VERSION = 9;

function tensorProto(name: string, dtype: DType, dims: readonly number[], data: TensorData | Uint16Array): Message {
  const m = new Message();
  for (const d of dims) m.int(1, d);
  m.int(2, onnxDType(dtype));
  m.string(8, name);
  m.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return m;
}

function valueInfo(name: string, dtype: DType, shape: Shape): Message {
  const dims = new Message();
  for (const d of shape) dims.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, onnxDType(dtype)).message(2, dims);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

function attribute(name: string, a: OnnxAttr): Message {
  const m = new Message().string(1, name);
  // AttributeProto.type: FLOAT=1, INT=2, STRING=3, FLOATS=6, INTS=7
  if ('i' in a) m.int(3, a.i).int(20, 2);
  else if ('f' in a) m.float(2, a.f).int(20, 1);
  else if ('s' in a) m.string(4, a.s).int(20, 3);
  else if ('ints' in a) {
    for (const v of a.ints) m.int(8, v);
    m.int(20, 7);
  } else {
    for (const v of a.floats) m.float(7, v);
    m.int(20, 6);
  }
  return m;
}

function constData(c: ConstInput): TensorData {
  return c.dtype === 'int64' ? BigInt64Array.from(c.values, (v) => BigInt(v)) : Float32Array.from(c.values);
}

export interface SerializeOptions {
  /** Graph values to store as initializers (weights baked into an exported model), by input name. */
  readonly bake?: ReadonlyMap<string, TensorData>;
  /** float16: baked float32 weights are stored as float16 and cast back to float32 in the graph (half the file). */
  readonly bakeAs?: 'float32' | 'float16';
  /** The default-domain opset the model declares: 18..21 (Gelu, opset 20, is written as Erf below 20). */
  readonly opset?: number;
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Opsets our op forms are valid in: ReduceMean's axes input needs 18; nothing used changed up to 21. */
export const EXPORT_OPSETS = [18, 19, 20, 21] as const;

/** float32 -> IEEE half bits, rounding to nearest even (overflow to infinity, NaN kept). */
export function toHalfBits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i]!;
    const x = u[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    // Normal halves keep 10 mantissa bits; subnormals shift the implicit 1 in.
    const shift = e <= 0 ? 14 - e : 13;
    if (shift > 24) {
      out[i] = sign;
      continue;
    }
    if (e <= 0) mant |= 0x800000;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const rounded = half + (rest > mid || (rest === mid && half & 1) ? 1 : 0);
    out[i] = sign | ((e <= 0 ? 0 : e << 10) + rounded);
  }
  return out;
}

function node(name: string, op: string, inputs: readonly string[], outputs: readonly string[], attrs: Record<string, OnnxAttr> = {}): Message {
  const m = new Message();
  for (const x of inputs) m.string(1, x);
  for (const y of outputs) m.string(2, y);
  m.string(3, name).string(4, op);
  for (const [k, a] of Object.entries(attrs)) m.message(5, attribute(k, a));
  return m;
}

/** The ONNX bytes of `g`: its live nodes, constants as initializers, inputs and outputs typed. */
export function toOnnx(g: Graph, opts: SerializeOptions = {}): Uint8Array {
  if (!g.outputs.length) throw new GraphError(`graph '${g.name}' has no outputs`);
  const graph = new Message();
  const nodes = g.liveNodes();
  const used = new Set<Value>(nodes.flatMap((n) => n.inputs));
  // Constant inputs of ONNX op forms (axes, shapes) are shared when equal.
  const extra = new Map<string, string>();
  const initializers: Message[] = [];
  const extraName = (nodeName: string, c: ConstInput): string => {
    const key = `${c.dtype}|${c.shape.join(',')}|${c.values.join(',')}`;
    let name = extra.get(key);
    if (!name) {
      name = `${nodeName}/const_${extra.size}`;
      extra.set(key, name);
      initializers.push(tensorProto(name, c.dtype, c.shape, constData(c)));
    }
    return name;
  };

  const opset = opts.opset ?? ONNX_OPSET;
  if (!(EXPORT_OPSETS as readonly number[]).includes(opset)) throw new GraphError(`opset ${opset} is not supported (choose one of ${EXPORT_OPSETS.join(', ')})`);
  const scalar = (nodeName: string, v: number) => extraName(nodeName, { dtype: 'float32', shape: [], values: [v] });
  const half = opts.bakeAs === 'float16';
  for (const x of g.inputs) {
    if (half && opts.bake?.has(x.name) && x.dtype === 'float32') graph.message(1, node(`${x.name}/cast`, 'Cast', [`${x.name}/fp16`], [x.name], { to: { i: onnxDType('float32') } }));
  }
  for (const n of nodes) {
    if (n.op === 'Gelu' && opset < 20) {
      // gelu(x) = x * 0.5 * (1 + erf(x / sqrt 2)), the exact (erf) form the Gelu op computes.
      const [x, y, t] = [n.inputs[0]!.name, n.outputs[0]!.name, (k: string) => `${n.name}/${k}`];
      graph.message(1, node(t('div'), 'Div', [x, scalar(n.name, Math.SQRT2)], [t('d')]));
      graph.message(1, node(t('erf'), 'Erf', [t('d')], [t('e')]));
      graph.message(1, node(t('add'), 'Add', [t('e'), scalar(n.name, 1)], [t('a')]));
      graph.message(1, node(t('mul'), 'Mul', [x, t('a')], [t('m')]));
      graph.message(1, node(t('half'), 'Mul', [t('m'), scalar(n.name, 0.5)], [y]));
      continue;
    }
    const enc = OPS[n.op as OpName].encode(n.attrs as never, n.inputs);
    const inputs = [...n.inputs.map((x) => x.name), ...(enc.constInputs ?? []).map((c) => extraName(n.name, c))];
    graph.message(1, node(n.name, n.op, inputs, n.outputs.map((y) => y.name), enc.attrs));
  }
  graph.string(2, g.name);
  for (const c of g.constants) {
    if (used.has(c.value)) graph.message(5, tensorProto(c.value.name, c.value.dtype, c.value.staticShape(), c.data));
  }
  for (const x of g.inputs) {
    const baked = opts.bake?.get(x.name);
    if (!baked) continue;
    if (half && baked instanceof Float32Array) graph.message(5, tensorProto(`${x.name}/fp16`, 'float16', x.staticShape(), toHalfBits(baked)));
    else graph.message(5, tensorProto(x.name, x.dtype, x.staticShape(), baked));
  }
  for (const t of initializers) graph.message(5, t);
  if (opts.docString) graph.string(10, opts.docString);
  for (const x of g.inputs) if (!opts.bake?.has(x.name)) graph.message(11, valueInfo(x.name, x.dtype, x.shape));
  for (const y of g.outputs) graph.message(12, valueInfo(y.name, y.dtype, y.shape));

  const model = new Message()
    .int(1, IR_VERSION)
    .string(2, 'convnext-workbench')
    .string(3, '0.1.0')
    .message(7, graph)
    .message(8, new Message().string(1, '').int(2, opset));
  for (const [k, v] of Object.entries(opts.metadata ?? {})) model.message(14, new Message().string(1, k).string(2, v));
  return model.toBytes();
}
