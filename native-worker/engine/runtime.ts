// Runs engine graphs in onnxruntime-node: picks the execution provider, creates sessions, and for training
// steps feeds each step's outputs back as the next step's inputs (double-buffered on CPU, left on the
// device on GPU EPs).
import * as ort from 'onnxruntime-node';
import type { DType, Graph, TensorData } from './ir.ts';
import { toOnnx } from './onnx.ts';

export type Provider = 'cpu' | 'webgpu' | 'cuda';
export type ProviderChoice = Provider | 'auto';

export interface ProviderReport {
  readonly chosen: Provider;
  /** Why each better provider was not used. */
  readonly skipped: readonly { provider: Provider; reason: string }[];
}

// WebGPU is only used when asked for: measured on an H200, its 7x7 depthwise conv runs ~50x slower than
// cuDNN, and on machines without a GPU it may pick a software adapter or fail to start.
const PREFERENCE: readonly Provider[] = ['cuda', 'cpu'];
const WEBGPU_NOT_AUTO = 'not chosen automatically (slow depthwise convs); ask for it with provider "webgpu"';

/** The execution provider to use: the user's choice if available, else the best available one. */
export function chooseProvider(choice: ProviderChoice = 'auto'): ProviderReport {
  const backends = ort.listSupportedBackends();
  const available = (p: Provider): string | null => {
    const b = backends.find((x) => x.name === p);
    if (!b) return `onnxruntime-node ${ort.env.versions.common} was built without the ${p} execution provider`;
    if (!b.bundled && p === 'cuda') return 'the CUDA execution provider is not installed (onnxruntime-node downloads it at install time)';
    return null;
  };
  const skipped: { provider: Provider; reason: string }[] = choice === 'auto' ? [{ provider: 'webgpu', reason: WEBGPU_NOT_AUTO }] : [];
  const order = choice === 'auto' ? PREFERENCE : [choice];
  for (const p of order) {
    const why = available(p);
    if (!why) return { chosen: p, skipped };
    skipped.push({ provider: p, reason: why });
  }
  if (choice !== 'auto') throw new Error(`execution provider '${choice}' is not available: ${skipped[0]!.reason}`);
  return { chosen: 'cpu', skipped };
}

export interface SessionOptions {
  readonly provider?: ProviderChoice;
  /** Intra-op threads for the CPU EP (0 = onnxruntime's default: one per core). */
  readonly threads?: number;
  readonly profile?: string;
}

/** A compiled graph: an onnxruntime session plus the graph's input/output descriptions. */
export class CompiledGraph {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly provider: Provider,
    readonly inputs: readonly { name: string; dtype: DType; shape: readonly (number | string)[] }[],
    readonly outputs: readonly { name: string; dtype: DType; shape: readonly (number | string)[] }[],
  ) {}

  static async create(g: Graph, opts: SessionOptions = {}): Promise<CompiledGraph> {
    const report = chooseProvider(opts.provider);
    const bytes = toOnnx(g);
    let chosen = report.chosen;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions(chosen, opts));
    } catch (e) {
      // An automatically chosen GPU provider that fails to start falls back to the CPU.
      if ((opts.provider ?? 'auto') !== 'auto' || chosen === 'cpu') throw e;
      console.warn(`onnxruntime: the ${chosen} execution provider failed to start (${(e as Error).message}); using cpu`);
      chosen = 'cpu';
      session = await ort.InferenceSession.create(bytes, sessionOptions(chosen, opts));
    }
    const desc = (v: { name: string; dtype: DType; shape: readonly (number | string)[] }) => ({ name: v.name, dtype: v.dtype, shape: v.shape });
    return new CompiledGraph(session, chosen, g.inputs.map(desc), g.outputs.map(desc));
  }

  async run(feeds: Record<string, ort.Tensor>, fetches?: Record<string, ort.Tensor | null>): Promise<Record<string, ort.Tensor>> {
    const out = fetches ? await this.session.run(feeds, fetches as ort.InferenceSession.FetchesType) : await this.session.run(feeds);
    return out as Record<string, ort.Tensor>;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function sessionOptions(p: Provider, opts: SessionOptions): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: [p],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  if (opts.threads) o.intraOpNumThreads = opts.threads;
  if (opts.profile) {
    o.enableProfiling = true;
    o.profileFilePrefix = opts.profile;
  }
  if (p !== 'cpu') o.preferredOutputLocation = 'gpu-buffer';
  return o;
}

export const tensor = (dtype: DType, data: TensorData, shape: readonly number[]): ort.Tensor =>
  new ort.Tensor(dtype === 'float32' ? 'float32' : dtype === 'int64' ? 'int64' : dtype === 'bool' ? 'bool' : dtype, data as never, [...shape]);

/** Pairs of graph (input, output) names: each step's output becomes the next step's input. */
export interface Carry {
  readonly input: string;
  readonly output: string;
}

/**
 * Runs a training-step graph repeatedly. Carried state (parameters, optimizer moments) lives in two
 * preallocated buffer sets on CPU that swap each step, so nothing is allocated per step; on GPU EPs the
 * outputs stay on the device and are fed straight back.
 */
export class StepRunner {
  private state = new Map<string, ort.Tensor>();
  private spare = new Map<string, ort.Tensor>();
  lastStepMs = 0;

  constructor(
    readonly graph: CompiledGraph,
    readonly carry: readonly Carry[],
    initial: ReadonlyMap<string, ort.Tensor>,
  ) {
    for (const c of carry) {
      const t = initial.get(c.input);
      if (!t) throw new Error(`StepRunner: no initial value for carried input '${c.input}'`);
      this.state.set(c.input, t);
      if (graph.provider === 'cpu') {
        this.spare.set(c.input, new ort.Tensor(t.type, new (t.data.constructor as Float32ArrayConstructor)(t.size) as never, t.dims));
      }
    }
  }

  /** One step: `feeds` are the per-step inputs (batch, lr, step); returns the non-carried outputs. */
  async step(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const all: Record<string, ort.Tensor> = { ...feeds };
    for (const [k, v] of this.state) all[k] = v;
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const o of this.graph.outputs) fetches[o.name] = null;
    if (this.graph.provider === 'cpu') for (const c of this.carry) fetches[c.output] = this.spare.get(c.input)!;
    const t0 = performance.now();
    const out = await this.graph.run(all, fetches);
    this.lastStepMs = performance.now() - t0;
    const next = new Map<string, ort.Tensor>();
    for (const c of this.carry) {
      const produced = out[c.output];
      if (!produced) throw new Error(`StepRunner: graph did not produce '${c.output}'`);
      next.set(c.input, this.graph.provider === 'cpu' ? this.spare.get(c.input)! : produced);
    }
    if (this.graph.provider === 'cpu') this.spare = this.state;
    else for (const t of this.state.values()) t.dispose();
    this.state = next;
    const rest: Record<string, ort.Tensor> = {};
    const carried = new Set(this.carry.map((c) => c.output));
    for (const [k, v] of Object.entries(out)) if (!carried.has(k)) rest[k] = v;
    return rest;
  }

  /** The tensor now held for a carried input (to feed another session; valid until the next step). */
  current(input: string): ort.Tensor {
    const t = this.state.get(input);
    if (!t) throw new Error(`StepRunner: '${input}' is not carried`);
    return t;
  }

  /** Current value of a carried input, downloaded to the CPU when it lives on a device. */
  async read(input: string): Promise<Float32Array> {
    const t = this.state.get(input);
    if (!t) throw new Error(`StepRunner: '${input}' is not carried`);
    const data = t.location === 'cpu' ? t.data : await t.getData();
    return data as Float32Array;
  }

}
