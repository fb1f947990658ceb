// One layout (common/layout.ts) behind the ONNX engine's model, checkpoint validation and the training
// form's estimate: a change to the variant table reaches all three at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shapeSize } from '../../common/layout.ts';
import { parseArch, variantByName } from '../../common/variants.ts';
import { expectedParams } from '../../native-worker/checkpoint/validate.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { FCMAE_DEFAULTS, fcmaeParams } from '../../native-worker/nn/fcmae.ts';
import { parameterCount } from '../../renderer/lib/estimate.ts';

const count = (specs: readonly { shape: readonly number[] }[]) => specs.reduce((n, p) => n + shapeSize(p.shape), 0);

function describeAtto() {
  const arch = parseArch('convnextv2_atto');
  return {
    model: convnextParams({ arch, numClasses: 10 }).map((p) => p.name),
    fcmae: fcmaeParams({ ...FCMAE_DEFAULTS, arch, inputSize: 64 }).map((p) => p.name),
    checkpoint: [...expectedParams({ variant: 'atto', version: 2, numClasses: 10 }).keys()],
    estimate: parameterCount('convnextv2_atto', 10),
    modelCount: count(convnextParams({ arch, numClasses: 10 })),
  };
}

test("a deeper stage in the variant table changes the model, the checkpoint validation and the form's estimate together", () => {
  const depths = variantByName('atto').depths as unknown as number[];
  const before = describeAtto();
  depths[2] = 7;
  let after: ReturnType<typeof describeAtto>;
  try {
    after = describeAtto();
  } finally {
    depths[2] = 6;
  }
  const block = 'stages.2.blocks.6.conv_dw.weight';
  for (const names of [before.model, before.checkpoint]) assert.equal(names.includes(block), false);
  assert.equal(after.model.includes(block), true, 'the model builder has the new block');
  assert.equal(after.fcmae.includes(`encoder.${block}`), true, 'the FCMAE encoder has the new block');
  assert.equal(after.checkpoint.includes(block), true, 'checkpoint validation expects it');
  assert.deepEqual(after.model, after.checkpoint);
  // One V2 block of 160 channels: dwconv 7x7 + bias, LayerNorm, fc1 and fc2 with biases, GRN.
  const c = 160;
  const oneBlock = 49 * c + c + 2 * c + 4 * c * c + 4 * c + 4 * c * c + c + 8 * c;
  assert.equal(after.estimate - before.estimate, oneBlock, "the form's parameter count grows by one block");
  assert.equal(after.modelCount, after.estimate);
});
