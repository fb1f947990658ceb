// Builds ONE graph for a whole training step: forward + loss + backward + AdamW. Parameters and optimizer
// moments are graph inputs under their own names (`<p>`, `<p>.exp_avg`, `<p>.exp_avg_sq`) and come back as
// outputs with `.next` appended, so a StepRunner can feed them into the next step.
import * as F from '../engine/functional.ts';
import { gradients } from '../engine/grad.ts';
import { Graph, type Value } from '../engine/ir.ts';
import type { Carry } from '../engine/runtime.ts';
import type { ParamSpec } from '../nn/params.ts';
import { type AdamWOptions, adamw } from './adamw.ts';

export interface StepModel {
  /** The scalar loss to minimize. */
  readonly loss: Value;
  /** Other values to output each step (metrics, logits), by name. */
  readonly outputs?: Readonly<Record<string, Value>>;
}

export interface TrainStepOptions {
  readonly optim: AdamWOptions;
  readonly weightDecay: number;
  /** lr multiplier per parameter (layer-wise decay); default 1. */
  readonly lrScale?: (p: ParamSpec) => number;
  /** Keep an exponential moving average of the weights, carried as `<p>.ema`. */
  readonly emaDecay?: number | null;
}

export interface TrainStep {
  readonly graph: Graph;
  readonly carry: readonly Carry[];
  readonly params: readonly ParamSpec[];
}

/** Per-step scalar inputs of every training-step graph. */
export const STEP_INPUTS = { lr: 'lr', step: 'step' } as const;

/**
 * `build` declares the model on `g` given one Value per parameter (in `params` order) and returns the
 * loss; the parameters' gradients and AdamW update are appended here.
 */
export function buildTrainStep(
  name: string,
  params: readonly ParamSpec[],
  build: (g: Graph, p: ReadonlyMap<string, Value>) => StepModel,
  o: TrainStepOptions,
): TrainStep {
  const g = new Graph(name);
  const values = paramInputs(g, params);
  const model = g.scope('forward', () => build(g, values));
  const grads = gradients(model.loss, [...values.values()]);
  const carry = appendOptimizer(g, params, values, (p) => g.named(grads.get(values.get(p.name)!)!, `${p.name}_grad`), o);
  g.output(model.loss, 'loss');
  for (const [k, v] of Object.entries(model.outputs ?? {})) g.output(v, k);
  return { graph: g, carry, params };
}

/** For gradient accumulation: forward + backward only, outputs `loss`, the model's outputs and `<p>_grad`. */
export function buildGradStep(name: string, params: readonly ParamSpec[], build: (g: Graph, p: ReadonlyMap<string, Value>) => StepModel): Graph {
  const g = new Graph(name);
  const values = paramInputs(g, params);
  const model = g.scope('forward', () => build(g, values));
  const grads = gradients(model.loss, [...values.values()]);
  for (const p of params) g.output(grads.get(values.get(p.name)!)!, `${p.name}_grad`);
  g.output(model.loss, 'loss');
  for (const [k, v] of Object.entries(model.outputs ?? {})) g.output(v, k);
  return g;
}

/** For gradient accumulation: the AdamW update alone, with the (averaged) gradients as inputs `<p>.grad`. */
export function buildApplyStep(name: string, params: readonly ParamSpec[], o: TrainStepOptions): TrainStep {
  const g = new Graph(name);
  const values = paramInputs(g, params);
  const carry = appendOptimizer(g, params, values, (p) => g.input(`${p.name}.grad`, 'float32', p.shape), o);
  return { graph: g, carry, params };
}

const paramInputs = (g: Graph, params: readonly ParamSpec[]) => new Map(params.map((p) => [p.name, g.input(p.name, 'float32', p.shape)] as const));

/** AdamW (+ EMA) over `params`: declares moments and step inputs, outputs `<input>.next` and `grad_norm`. */
function appendOptimizer(g: Graph, params: readonly ParamSpec[], values: ReadonlyMap<string, Value>, gradOf: (p: ParamSpec) => Value, o: TrainStepOptions): Carry[] {
  const lr = g.input(STEP_INPUTS.lr, 'float32', []);
  const step = g.input(STEP_INPUTS.step, 'float32', []);
  const state = params.map((p) => ({
    spec: p,
    param: values.get(p.name)!,
    grad: gradOf(p),
    expAvg: g.input(`${p.name}.exp_avg`, 'float32', p.shape),
    expAvgSq: g.input(`${p.name}.exp_avg_sq`, 'float32', p.shape),
  }));
  const { updates, gradNorm } = g.scope('adamw', () =>
    adamw(
      state.map((s) => ({
        param: s.param,
        grad: s.grad,
        expAvg: s.expAvg,
        expAvgSq: s.expAvgSq,
        lrScale: o.lrScale?.(s.spec) ?? 1,
        weightDecay: s.spec.noDecay ? 0 : o.weightDecay,
      })),
      lr,
      step,
      o.optim,
    ),
  );
  const carry: Carry[] = [];
  const ema = o.emaDecay ?? null;
  state.forEach((s, i) => {
    const u = updates[i]!;
    const pairs: [Value, Value][] = [[s.param, u.param], [s.expAvg, u.expAvg], [s.expAvgSq, u.expAvgSq]];
    if (ema !== null) {
      // ema = d * ema + (1 - d) * updated weights, as timm's ModelEma.
      const e = g.input(`${s.spec.name}.ema`, 'float32', s.spec.shape);
      pairs.push([e, g.scope('ema', () => F.add(F.mul(e, ema), F.mul(u.param, 1 - ema)))]);
    }
    for (const [input, value] of pairs) {
      g.output(value, `${input.name}.next`);
      carry.push({ input: input.name, output: `${input.name}.next` });
    }
  });
  g.output(gradNorm, 'grad_norm');
  return carry;
}
