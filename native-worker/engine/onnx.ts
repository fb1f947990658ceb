// Serializes a Graph to an ONNX ModelProto. Deterministic: the same graph gives the same bytes.
import { type DType, type Graph, type Shape, type TensorData, type Value, GraphError } from './ir.ts';
import { type ConstInput, type OnnxAttr, type OpName, ONNX_OPSET, OPS, onnxDType } from './ops.ts';
import { Message } from './protobuf.ts';

const IR_VERSION = 9;

function tensorProto(name: string, dtype: DType, dims: readonly number[], data: TensorData): Message {
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
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
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

  for (const n of nodes) {
    const spec = OPS[n.op as OpName];
    const enc = spec.encode(n.attrs as never, n.inputs);
    const node = new Message();
    for (const x of n.inputs) node.string(1, x.name);
    for (const c of enc.constInputs ?? []) node.string(1, extraName(n.name, c));
    for (const y of n.outputs) node.string(2, y.name);
    node.string(3, n.name).string(4, n.op);
    for (const [k, a] of Object.entries(enc.attrs)) node.message(5, attribute(k, a));
    graph.message(1, node);
  }
  graph.string(2, g.name);
  for (const c of g.constants) {
    if (used.has(c.value)) graph.message(5, tensorProto(c.value.name, c.value.dtype, c.value.staticShape(), c.data));
  }
  for (const x of g.inputs) {
    const baked = opts.bake?.get(x.name);
    if (baked) graph.message(5, tensorProto(x.name, x.dtype, x.staticShape(), baked));
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
    .message(8, new Message().string(1, '').int(2, ONNX_OPSET));
  for (const [k, v] of Object.entries(opts.metadata ?? {})) model.message(14, new Message().string(1, k).string(2, v));
  return model.toBytes();
}
