// The engine's ConvNeXt and FCMAE declare exactly the parameters (names and shapes) that checkpoints hold:
// checked against the checkpoint module's independent table for every variant, V1 and V2.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VARIANTS, parseArch, timmModelName } from '../../common/variants.ts';
import { expectedParams } from '../../native-worker/checkpoint/validate.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { FCMAE_DEFAULTS, fcmaeParams } from '../../native-worker/nn/fcmae.ts';

const asObject = (entries: Iterable<readonly [string, readonly number[]]>) =>
  Object.fromEntries([...entries].map(([k, s]) => [k, s.join('x')]).sort(([a], [b]) => (a! < b! ? -1 : 1)));

for (const v of VARIANTS) {
  for (const version of v.versions) {
    const name = timmModelName(v.name, version);
    test(`${name}: parameters match the checkpoint layout`, () => {
      const arch = parseArch(name);
      const ours = convnextParams({ arch, numClasses: 1000 });
      assert.deepEqual(asObject(ours.map((p) => [p.name, p.shape])), asObject(expectedParams({ variant: v.name, version, numClasses: 1000 })));
      if (version === 2 && v.name === 'atto') {
        const fcmae = fcmaeParams({ ...FCMAE_DEFAULTS, arch, inputSize: 224 });
        assert.deepEqual(asObject(fcmae.map((p) => [p.name, p.shape])), asObject(expectedParams({ variant: v.name, version, decoder: true })));
      }
    });
  }
}

test('parameter counts match the paper (V2 atto 3.7M, tiny 28.6M, base 89M)', () => {
  const count = (n: string) => convnextParams({ arch: parseArch(n), numClasses: 1000 }).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  assert.equal((count('convnextv2_atto') / 1e6).toFixed(1), '3.7');
  assert.equal((count('convnextv2_tiny') / 1e6).toFixed(1), '28.6');
  assert.equal(Math.round(count('convnextv2_base') / 1e6), 89);
});

test('an unknown architecture names the ones that exist', () => {
  assert.throws(() => parseArch('convnext_huge'), /unknown architecture 'convnext_huge'; expected one of convnext_atto, convnextv2_atto/);
});
