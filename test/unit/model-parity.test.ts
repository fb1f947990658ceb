// `cnx infer`, `cnx grad` and `cnx reconstruct` on the ONNX engine against the PyTorch engine's reference
// (native-worker/torch/reference.py, float64), with weights saved by PyTorch in timm and official layouts.
// Tolerances (issue): logits 1e-4 and FCMAE loss/prediction 1e-4 relative L2; gradients 1e-3 per tensor.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { main } from '../../native-worker/cli.ts';
import { readNpy } from '../../native-worker/data/npy.ts';
import { relErr } from '../helpers/numeric.ts';
import { needTorch, runPython } from '../helpers/python.ts';

const f32 = (p: string) => readNpy(p).data as Float32Array;
const loss = (p: string) => (JSON.parse(readFileSync(p, 'utf8')) as { loss: number }).loss;

async function cnx(...args: string[]) {
  const code = await main(args);
  assert.equal(code, 0, `cnx ${args.join(' ')} exited ${code}`);
}

for (const { arch, size, official } of [
  { arch: 'convnextv2_atto', size: 64, official: true },
  { arch: 'convnextv2_nano', size: 64, official: false },
  { arch: 'convnext_atto', size: 64, official: true },
]) {
  test(`${arch}: infer, grad${arch.startsWith('convnextv2') ? ', reconstruct' : ''} match PyTorch`, async (t) => {
    const python = needTorch(t);
    if (!python) return;
    const d = mkdtempSync(join(tmpdir(), 'cnx-model-'));
    try {
      runPython(python, 'test/python/model_fixtures.py', [d, arch, String(size)]);
      const ref = (job: string, weights: string, out: string, ...extra: string[]) =>
        runPython(python, 'native-worker/torch/reference.py', [job, '--arch', arch, '--weights', weights, '--input', join(d, 'x.npy'), '--out', join(d, out), '--dtype', 'float64', ...extra]);
      ref('infer', join(d, 'timm.safetensors'), 'ref');
      for (const layout of official ? ['timm.safetensors', 'official.pt'] : ['timm.safetensors']) {
        await cnx('infer', '--arch', arch, '--weights', join(d, layout), '--input', join(d, 'x.npy'), '--output', join(d, `logits-${layout}.npy`), '--features', join(d, `features-${layout}.npy`), '--provider', 'cpu');
        const e = relErr(f32(join(d, `logits-${layout}.npy`)), f32(join(d, 'ref', 'logits.npy')));
        assert.ok(e < 1e-4, `${layout}: logits relative error ${e}`);
        const ef = relErr(f32(join(d, `features-${layout}.npy`)), f32(join(d, 'ref', 'features.npy')));
        assert.ok(ef < 1e-4, `${layout}: features relative error ${ef}`);
      }

      ref('grad', join(d, 'timm.safetensors'), 'refgrad', '--labels', join(d, 'y.npy'));
      await cnx('grad', '--arch', arch, '--weights', join(d, 'timm.safetensors'), '--input', join(d, 'x.npy'), '--labels', join(d, 'y.npy'), '--output', join(d, 'grads.safetensors'), '--loss-output', join(d, 'loss.json'), '--provider', 'cpu');
      assert.ok(Math.abs(loss(join(d, 'loss.json')) - loss(join(d, 'refgrad', 'loss.json'))) < 1e-4 * Math.abs(loss(join(d, 'refgrad', 'loss.json'))));
      const ours = await loadCheckpoint(join(d, 'grads.safetensors'));
      const theirs = await loadCheckpoint(join(d, 'refgrad', 'grads.safetensors'));
      assert.equal(ours.tensors.size, theirs.tensors.size);
      for (const [k, g] of theirs.tensors) {
        const e = relErr(ours.tensors.get(k)!.data as Float32Array, g.data as Float32Array);
        assert.ok(e < 1e-3, `gradient of ${k}: relative error ${e}`);
      }

      if (arch.startsWith('convnextv2')) {
        ref('fcmae', join(d, 'fcmae.safetensors'), 'reffcmae', '--mask', join(d, 'mask.npy'));
        await cnx('reconstruct', '--arch', arch, '--weights', join(d, 'fcmae.safetensors'), '--input', join(d, 'x.npy'), '--mask', join(d, 'mask.npy'), '--output', join(d, 'pred.npy'), '--loss-output', join(d, 'rloss.json'), '--provider', 'cpu');
        const e = relErr(f32(join(d, 'pred.npy')), f32(join(d, 'reffcmae', 'pred.npy')));
        assert.ok(e < 1e-4, `FCMAE prediction relative error ${e}`);
        const [lo, lr] = [loss(join(d, 'rloss.json')), loss(join(d, 'reffcmae', 'loss.json'))];
        assert.ok(Math.abs(lo - lr) < 1e-4 * lr, `FCMAE loss ${lo} vs ${lr}`);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
}

test('a checkpoint of another model is refused, naming the file and both models', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const d = mkdtempSync(join(tmpdir(), 'cnx-model-'));
  try {
    runPython(python, 'test/python/model_fixtures.py', [d, 'convnext_atto', '32']);
    const errors: string[] = [];
    const orig = console.error;
    console.error = (m: string) => errors.push(m);
    try {
      assert.equal(await main(['infer', '--arch', 'convnextv2_atto', '--weights', join(d, 'timm.safetensors'), '--input', join(d, 'x.npy'), '--output', join(d, 'o.npy')]), 1);
    } finally {
      console.error = orig;
    }
    assert.match(errors.join('\n'), /timm\.safetensors: holds a convnext_atto model, not convnextv2_atto/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('cnx infer and cnx grad give the same results with --engine torch and --engine onnx', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const d = mkdtempSync(join(tmpdir(), 'cnx-engines-'));
  try {
    runPython(python, 'test/python/model_fixtures.py', [d, 'convnextv2_atto', '32']);
    const common = ['--arch', 'convnextv2_atto', '--weights', join(d, 'official.pt'), '--input', join(d, 'x.npy')];
    for (const engine of ['onnx', 'torch']) {
      await cnx('infer', ...common, '--output', join(d, `logits-${engine}.npy`), '--engine', engine, '--python', python);
      await cnx('grad', ...common, '--labels', join(d, 'y.npy'), '--output', join(d, `grads-${engine}.safetensors`), '--loss-output', join(d, `loss-${engine}.json`), '--engine', engine, '--python', python);
    }
    assert.ok(relErr(f32(join(d, 'logits-onnx.npy')), f32(join(d, 'logits-torch.npy'))) < 1e-4);
    const [a, b] = [await loadCheckpoint(join(d, 'grads-onnx.safetensors')), await loadCheckpoint(join(d, 'grads-torch.safetensors'))];
    for (const [k, g] of b.tensors) assert.ok(relErr(a.tensors.get(k)!.data as Float32Array, g.data as Float32Array) < 1e-3, k);
    assert.ok(Math.abs(loss(join(d, 'loss-onnx.json')) - loss(join(d, 'loss-torch.json'))) < 1e-4);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
