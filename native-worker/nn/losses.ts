// Losses as graph builders.
import * as F from '../engine/functional.ts';
import type { Value } from '../engine/ir.ts';

/** Mean over the batch of -sum(target * log_softmax(logits)): hard, smoothed or mixed targets alike. */
export function softCrossEntropy(logits: Value, target: Value): Value {
  const n = logits.staticShape()[0]!;
  return F.mul(F.sumAll(F.mul(target, F.logSoftmax(logits, -1))), -1 / n);
}

/** Mean squared error over every element. */
export function mse(pred: Value, target: Value): Value {
  const d = F.sub(pred, target);
  return F.mean(d, d.shape.map((_, i) => i));
}
