// Parameter declarations: name (timm's), shape, initializer, and the facts optimizers need.
import { numel } from '../engine/ir.ts';
import { Rng } from './random.ts';

export type Init = { readonly kind: 'truncNormal'; readonly std: number; readonly scale?: number } | { readonly kind: 'constant'; readonly value: number };

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: Init;
  /** No weight decay (biases, norms, GRN, layer scale, tokens). */
  readonly noDecay: boolean;
}

export type ParamValues = Map<string, Float32Array>;

/** Initial values for `specs`, drawn in declaration order from one seeded generator. */
export function initParams(specs: readonly ParamSpec[], seed: number): ParamValues {
  const rng = new Rng(seed);
  return new Map(
    specs.map((p) => {
      const n = numel(p.shape);
      const init = p.init;
      const data = init.kind === 'constant'
        ? new Float32Array(n).fill(init.value)
        : Float32Array.from({ length: n }, () => rng.truncNormal(init.std) * (init.scale ?? 1));
      return [p.name, data];
    }),
  );
}

export const countParams = (specs: readonly ParamSpec[]): number => specs.reduce((s, p) => s + numel(p.shape), 0);
