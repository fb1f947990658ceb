// AdamW (+ EMA) on the CPU in one fused pass per tensor, for the CPU execution provider. The same update as
// the graph form (adamw.ts, torch.optim.AdamW): as graph nodes it costs about 14 elementwise passes over
// every parameter, each through onnxruntime's allocator and thread pool, which at 32 px was 40% of an atto
// step (250 of 600 ms); this loop reads and writes each value once.
import type { ParamSpec, ParamValues } from '../nn/params.ts';
import type { AdamWOptions } from './adamw.ts';

export interface HostAdamWOptions {
  readonly optim: AdamWOptions;
  readonly weightDecay: number;
  readonly lrScale?: (p: ParamSpec) => number;
  readonly emaDecay?: number | null;
}

interface Slot {
  readonly spec: ParamSpec;
  readonly param: Float32Array;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  readonly ema: Float32Array | null;
  readonly lrScale: number;
  readonly weightDecay: number;
}

export class HostAdamW {
  private readonly slots: Slot[];

  /** `state` holds `<p>.exp_avg`, `<p>.exp_avg_sq` (and `<p>.ema`) to resume; absent ones start fresh. */
  constructor(specs: readonly ParamSpec[], values: ParamValues, state: ParamValues | null, private readonly o: HostAdamWOptions) {
    const ema = o.emaDecay ?? null;
    this.slots = specs.map((spec) => {
      const v = values.get(spec.name);
      if (!v) throw new Error(`initial weights lack ${spec.name}`);
      const saved = (k: string, fresh: () => Float32Array) => {
        const s = state?.get(`${spec.name}.${k}`);
        if (state && !s) throw new Error(`resume state lacks ${spec.name}.${k}`);
        return s ? Float32Array.from(s) : fresh();
      };
      return {
        spec,
        param: Float32Array.from(v),
        expAvg: saved('exp_avg', () => new Float32Array(v.length)),
        expAvgSq: saved('exp_avg_sq', () => new Float32Array(v.length)),
        ema: ema === null ? null : saved('ema', () => Float32Array.from(v)),
        lrScale: o.lrScale?.(spec) ?? 1,
        weightDecay: spec.noDecay ? 0 : o.weightDecay,
      };
    });
  }

  /** The live parameter array (fed to the gradient graph; changes on every update). */
  param(name: string): Float32Array {
    const s = this.slots.find((x) => x.spec.name === name);
    if (!s) throw new Error(`no parameter ${name}`);
    return s.param;
  }

  /** Global L2 norm of the gradients, after undoing the loss scale. */
  private gradNorm(grads: ReadonlyMap<string, Float32Array>): number {
    let sq = 0;
    for (const s of this.slots) {
      const g = grads.get(s.spec.name)!;
      for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
    }
    return Math.sqrt(sq) / this.o.optim.lossScale;
  }

  /** One step (`step` 1-based) with gradients by parameter name; returns the norm before clipping. */
  update(grads: ReadonlyMap<string, Float32Array>, lr: number, step: number): number {
    const { beta1, beta2, eps, clipGrad, lossScale } = this.o.optim;
    const norm = this.gradNorm(grads);
    const clip = clipGrad === null ? 1 : Math.min(1, clipGrad / (norm + 1e-6));
    const gScale = clip / lossScale;
    const invSqrtBc2 = 1 / Math.sqrt(1 - beta2 ** step);
    const stepSize = lr / (1 - beta1 ** step);
    const ema = this.o.emaDecay ?? null;
    for (const s of this.slots) {
      const g = grads.get(s.spec.name);
      if (!g || g.length !== s.param.length) throw new Error(`gradient of ${s.spec.name}: ${g ? `${g.length} values, expected ${s.param.length}` : 'missing'}`);
      const { param: p, expAvg: m, expAvgSq: v } = s;
      const decay = 1 - lr * s.lrScale * s.weightDecay;
      const stepP = stepSize * s.lrScale;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]! * gScale;
        const mi = beta1 * m[i]! + (1 - beta1) * gi;
        const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i]! * decay - (stepP * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
      }
      if (s.ema && ema !== null) for (let i = 0; i < p.length; i++) s.ema[i] = s.ema[i]! * ema + p[i]! * (1 - ema);
    }
    return norm;
  }

  /** Copies of the parameters. */
  weights(): ParamValues {
    return new Map(this.slots.map((s) => [s.spec.name, Float32Array.from(s.param)]));
  }

  /** Copies of the moments and EMA, keyed `<p>.exp_avg`, `<p>.exp_avg_sq`, `<p>.ema`. */
  state(): ParamValues {
    const out: ParamValues = new Map();
    for (const s of this.slots) {
      out.set(`${s.spec.name}.exp_avg`, Float32Array.from(s.expAvg));
      out.set(`${s.spec.name}.exp_avg_sq`, Float32Array.from(s.expAvgSq));
      if (s.ema) out.set(`${s.spec.name}.ema`, Float32Array.from(s.ema));
    }
    return out;
  }
}
