// timm's V1-only sizes, convnext_small (50M) and convnext_xlarge (350M): `cnx infer` on the ONNX engine reads
// a timm-layout checkpoint saved by PyTorch and gives the logits of the PyTorch engine's float64 reference
// (native-worker/torch/reference.py) within 1e-4 relative L2, like the other variants (model-parity.test.ts).
// At 32 px with two images, so the cost is the size of the weights (xlarge: 1.4 GB), not the compute.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { layoutSize } from '../../common/layout.ts';
import { parseArch } from '../../common/variants.ts';
import { main } from '../../native-worker/cli.ts';
import { readNpy } from '../../native-worker/data/npy.ts';
import { relErr } from '../helpers/numeric.ts';
import { needTorch, runPython } from '../helpers/python.ts';

const f32 = (p: string) => readNpy(p).data as Float32Array;

test("the V1-only sizes have timm's parameter counts (convnext_small 50.22M, convnext_xlarge 350.20M)", () => {
  const millions = (arch: string) => (layoutSize({ arch: parseArch(arch), head: true, numClasses: 1000 }) / 1e6).toFixed(2);
  assert.equal(millions('convnext_small'), '50.22');
  assert.equal(millions('convnext_xlarge'), '350.20');
  assert.throws(() => parseArch('convnextv2_small'), /unknown architecture 'convnextv2_small'/);
});

for (const arch of ['convnext_small', 'convnext_xlarge']) {
  test(`${arch}: cnx infer on a timm checkpoint matches PyTorch`, async (t) => {
    const python = needTorch(t);
    if (!python) return;
    const d = mkdtempSync(join(tmpdir(), 'cnx-v1-'));
    try {
      runPython(python, 'test/python/model_fixtures.py', [d, arch, '32', 'timm']);
      const weights = join(d, 'timm.safetensors');
      runPython(python, 'native-worker/torch/reference.py', ['infer', '--arch', arch, '--weights', weights, '--input', join(d, 'x.npy'), '--out', join(d, 'ref'), '--dtype', 'float64']);
      assert.equal(await main(['infer', '--arch', arch, '--weights', weights, '--input', join(d, 'x.npy'), '--output', join(d, 'logits.npy'), '--provider', 'cpu']), 0);
      const e = relErr(f32(join(d, 'logits.npy')), f32(join(d, 'ref', 'logits.npy')));
      assert.ok(e < 1e-4, `logits relative error ${e}`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
}
