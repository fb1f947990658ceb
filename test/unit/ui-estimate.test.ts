// The training form's estimates: the parameter count (derived from common/layout.ts, see model-layout.test.ts);
// memory grows with the batch as activations do; time needs a throughput.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { estimateMemory, estimateSeconds, parameterCount } from '../../renderer/lib/estimate.ts';

test("parameter count of timm's convnextv2_atto", () => {
  assert.equal(parameterCount('convnextv2_atto', 1000), 3_708_400);
});

test('memory: optimizer state from the parameters, activations proportional to the batch; eval keeps little', () => {
  const base = { arch: 'convnextv2_tiny', kind: 'finetune' as const, numClasses: 1000, inputSize: 224, ema: false, halfPrecision: false };
  const b32 = estimateMemory({ ...base, batchSize: 32 });
  const b64 = estimateMemory({ ...base, batchSize: 64 });
  assert.equal(b32.stateBytes, b32.parameters * 4 * 4, 'weights, gradients, two moments');
  assert.equal(estimateMemory({ ...base, batchSize: 32, ema: true }).stateBytes, b32.parameters * 4 * 5);
  assert.equal(b64.activationBytes, 2 * b32.activationBytes);
  assert.equal(estimateMemory({ ...base, batchSize: 32, halfPrecision: true }).activationBytes, b32.activationBytes / 2);
  // Tiny at 224, batch 32, fp32: a few GiB of activations, the order training frameworks report for it.
  assert.ok(b32.totalBytes > 4 * 2 ** 30 && b32.totalBytes < 16 * 2 ** 30, `${b32.totalBytes / 2 ** 30} GiB`);
  assert.ok(estimateMemory({ ...base, kind: 'eval', batchSize: 32 }).totalBytes < b32.totalBytes / 5);
});

test('time is steps x batch / throughput, unknown without a throughput', () => {
  assert.equal(estimateSeconds(1000, 32, 64), 500);
  assert.equal(estimateSeconds(1000, 32, null), null);
  assert.equal(estimateSeconds(1000, 32, 0), null);
});
