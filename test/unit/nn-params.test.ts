// The engine's ConvNeXt: parameter counts against the paper, and the architecture names it accepts. (Its
// names and shapes come from common/layout.ts: test/unit/model-layout.test.ts.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArch } from '../../common/variants.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';

test('parameter counts match the paper (V2 atto 3.7M, tiny 28.6M, base 89M)', () => {
  const count = (n: string) => convnextParams({ arch: parseArch(n), numClasses: 1000 }).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  assert.equal((count('convnextv2_atto') / 1e6).toFixed(1), '3.7');
  assert.equal((count('convnextv2_tiny') / 1e6).toFixed(1), '28.6');
  assert.equal(Math.round(count('convnextv2_base') / 1e6), 89);
});

test('an unknown architecture names the ones that exist', () => {
  assert.throws(() => parseArch('convnext_huge'), /unknown architecture 'convnext_huge'; expected one of convnext_atto, convnextv2_atto/);
});
