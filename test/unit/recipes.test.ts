// Both engines train with the same recipe: fine-tuning tables, official layer ids for layer-wise lr decay,
// weight-decay exclusions and the warmup + cosine schedule, compared with the PyTorch engine's recipes.py.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArch } from '../../common/variants.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { FCMAE_DEFAULTS, fcmaeParams } from '../../native-worker/nn/fcmae.ts';
import { finetuneRecipe, layerId, lrAt } from '../../native-worker/optim/recipes.ts';
import { needTorch, runPython } from '../helpers/python.ts';

test('recipes, layer ids, weight-decay exclusions and the lr schedule match the PyTorch engine', (t) => {
  const python = needTorch(t);
  if (!python) return;
  const ref = JSON.parse(runPython(python, 'test/python/recipes_ref.py'));
  for (const arch of Object.keys(ref).filter((k) => k.startsWith('convnext'))) {
    const r = finetuneRecipe(arch);
    const expected = ref[arch];
    assert.equal(r.layerDecayType, expected.layerDecayType, `${arch} layer-decay type`);
    const a = parseArch(arch);
    const specs = convnextParams({ arch: a, numClasses: 10 });
    for (const p of specs) assert.equal(layerId(p.name, a.depths, r.layerDecayType), expected.layerIds[p.name], `${arch} ${p.name}`);
    assert.deepEqual(specs.filter((p) => p.noDecay).map((p) => p.name).sort(), expected.noDecay, `${arch} no-decay set`);
  }
  const fcmae = fcmaeParams({ ...FCMAE_DEFAULTS, arch: parseArch('convnextv2_atto'), inputSize: 224 });
  assert.deepEqual(fcmae.filter((p) => p.noDecay).map((p) => p.name).sort(), ref.fcmaeNoDecay);
  ref.lr.forEach((lr: number, s: number) => assert.ok(Math.abs(lrAt(s, 1e-3, 5, 20, 1e-5) - lr) < 1e-12, `lr at step ${s}`));
});
