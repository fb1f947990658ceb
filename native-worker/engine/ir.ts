// Graph IR: typed values with static dtypes and shapes (a dimension may be a symbolic name such as 'N'),
// and nodes drawn from the one op table in ops.ts. Shape rules run while the graph is built, so a bad
// graph fails at the line that built it, not inside onnxruntime.

export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool';
export type Dim = number | string;
export type Shape = readonly Dim[];

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

export type ValueKind = 'input' | 'constant' | 'node';

export class Value {
  constructor(
    readonly graph: Graph,
    /** Set once more by Graph.named, which gives a node output its readable name. */
    public name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly kind: ValueKind,
    /** The node that computes this value (kind 'node'), and which of its outputs it is. */
    readonly producer: { node: Node; index: number } | null = null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** The shape as numbers; throws if a dimension is symbolic. */
  staticShape(what = this.name): number[] {
    return this.shape.map((d) => {
      if (typeof d !== 'number') throw new GraphError(`${what}: needs a static shape, got ${fmtShape(this.shape)}`);
      return d;
    });
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${fmtShape(this.shape)}`;
  }
}

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: object;
}

export interface Constant {
  readonly value: Value;
  readonly data: TensorData;
}

export class GraphError extends Error {
  override name = 'GraphError';
}

export const fmtShape = (s: Shape): string => `[${s.join(', ')}]`;

export const isStatic = (s: Shape): s is readonly number[] => s.every((d) => typeof d === 'number');

export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

export class Graph {
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly nodes: Node[] = [];
  readonly constants: Constant[] = [];
  private readonly names = new Set<string>();
  private readonly scalarCache = new Map<string, Value>();
  private readonly renamed = new Set<Value>();
  private scopeStack: string[] = [];

  constructor(readonly name = 'graph') {}

  /** Runs `fn` with names of the values it creates prefixed by `scope` (e.g. 'stages.0.blocks.1'). */
  scope<T>(scope: string, fn: () => T): T {
    this.scopeStack.push(scope);
    try {
      return fn();
    } finally {
      this.scopeStack.pop();
    }
  }

  /** A name not used yet, inside the current scope. */
  uniqueName(base: string): string {
    const prefix = this.scopeStack.length ? `${this.scopeStack.join('.')}/` : '';
    let name = prefix + base;
    for (let k = 1; this.names.has(name); k++) name = `${prefix}${base}_${k}`;
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new GraphError(`name '${name}' is already used in graph '${this.name}'`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v = new Value(this, this.claim(name), dtype, shape, 'input');
    this.inputs.push(v);
    return v;
  }

  /** A constant tensor (an ONNX initializer); `base` is a readable name made unique in the current scope. */
  constant(data: TensorData, shape: readonly number[], dtype: DType, base = 'const'): Value {
    if (data.length !== numel(shape)) {
      throw new GraphError(`constant ${base}: ${data.length} elements do not fill shape ${fmtShape(shape)}`);
    }
    const v = new Value(this, this.uniqueName(base), dtype, shape, 'constant');
    this.constants.push({ value: v, data });
    return v;
  }

  /** A float32 or int64 scalar constant (shape []), shared by every use of the same value. */
  scalar(x: number, dtype: 'float32' | 'int64' = 'float32'): Value {
    const key = `${dtype}:${Object.is(x, -0) ? '-0' : x}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      const data = dtype === 'float32' ? Float32Array.of(x) : BigInt64Array.of(BigInt(x));
      v = this.constant(data, [], dtype, `scalar_${String(x).replace(/[^0-9a-zA-Z]/g, '_')}`);
      this.scalarCache.set(key, v);
    }
    return v;
  }

  /** Adds a node; `outputs` gives each output's dtype and shape (already inferred by the op's rule). */
  addNode(op: string, inputs: readonly Value[], attrs: object, outputs: readonly { dtype: DType; shape: Shape }[]): Value[] {
    for (const x of inputs) {
      if (x.graph !== this) throw new GraphError(`${op}: input ${x.name} belongs to another graph`);
    }
    const name = this.uniqueName(op);
    const outs: Value[] = [];
    const node: Node = { id: this.nodes.length, op, name, inputs: [...inputs], outputs: outs, attrs };
    outputs.forEach((o, index) => {
      const vname = outputs.length === 1 ? name : `${name}:${index}`;
      if (outputs.length !== 1) this.names.add(vname);
      outs.push(new Value(this, vname, o.dtype, o.shape, 'node', { node, index }));
    });
    this.nodes.push(node);
    return outs;
  }

  /** `v` under an exact readable name (an Identity node, which onnxruntime folds away). */
  named(v: Value, name: string): Value {
    this.claim(name);
    // A node output not yet named is simply renamed; inputs, constants and named values get an Identity.
    if (v.kind === 'node' && !this.renamed.has(v)) {
      this.renamed.add(v);
      v.name = name;
      return v;
    }
    const node: Node = { id: this.nodes.length, op: 'Identity', name: `${name}/Identity`, inputs: [v], outputs: [], attrs: {} };
    const out = new Value(this, name, v.dtype, v.shape, 'node', { node, index: 0 });
    (node.outputs as Value[]).push(out);
    this.nodes.push(node);
    return out;
  }

  /** Marks `v` as a graph output under `name` (an Identity node renames it when needed). */
  output(v: Value, name?: string): Value {
    // ONNX wants outputs produced by nodes, so inputs and constants go through an Identity.
    const rename = (name !== undefined && name !== v.name) || v.kind !== 'node';
    const out = rename ? this.named(v, name ?? `${v.name}.out`) : v;
    if (this.outputs.includes(out)) throw new GraphError(`${out.name} is already an output`);
    this.outputs.push(out);
    return out;
  }

  /** Nodes that the outputs depend on, in a valid order; unused nodes are left out. */
  liveNodes(): Node[] {
    const live = new Set<number>();
    const stack = this.outputs.map((o) => o.producer?.node).filter((n): n is Node => !!n);
    while (stack.length) {
      const n = stack.pop()!;
      if (live.has(n.id)) continue;
      live.add(n.id);
      for (const x of n.inputs) if (x.producer) stack.push(x.producer.node);
    }
    return this.nodes.filter((n) => live.has(n.id));
  }
}
