// Hugging Face / timm model folders (config.json + model.safetensors or pytorch_model.bin). timm is not
// installed here, so test/python/timm_folder.py writes folders as timm's save_config_for_hf lays them out and
// reads them as timm.create_model('local-dir:...') does (config.json -> architecture and num_classes, weights
// in timm's file order, strict load into our PyTorch reference model, which uses timm's names).
// Tolerance: logits 1e-4 relative L2 (fp32 on two engines).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { capture } from '../helpers/cli.ts';
import { readNpy } from '../../native-worker/data/npy.ts';
import { relErr } from '../helpers/numeric.ts';
import { needTorch, runPython } from '../helpers/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'cnx-hf-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const f32 = (p: string) => readNpy(p).data as Float32Array;
const script = 'test/python/timm_folder.py';


for (const [arch, weights] of [['convnextv2_atto', 'model.safetensors'], ['convnext_atto', 'pytorch_model.bin']] as const) {
  test(`a timm-style ${arch} folder (${weights}) imports with its labels and preprocessing, and gives timm's logits`, async (t) => {
    const python = needTorch(t);
    if (!python) return;
    const root = join(dir, arch);
    runPython(python, script, ['write', join(root, 'folder'), arch, weights]);
    const s = await capture(['inspect', join(root, 'folder'), '--json']);
    assert.equal(s.code, 0, s.err);
    const summary = JSON.parse(s.out) as Record<string, unknown>;
    assert.deepEqual([summary.model, summary.kind, summary.numClasses, summary.labels], [arch, 'classifier', 3, ['cat', 'dog', 'bird']]);
    assert.deepEqual(summary.preprocessing, { inputSize: 64, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], cropPct: 0.95, interpolation: 'bicubic' });
    const r = await capture(['infer', '--arch', arch, '--weights', join(root, 'folder'), '--input', join(root, 'x.npy'), '--output', join(root, 'ours.npy'), '--provider', 'cpu']);
    assert.equal(r.code, 0, r.err);
    const e = relErr(f32(join(root, 'ours.npy')), f32(join(root, 'logits.npy')));
    assert.ok(e < 1e-4, `logits relative error ${e}`);
  });
}

test('an exported folder loads in timm\'s way with equal logits, class names and preprocessing in config.json', async (t) => {
  const python = needTorch(t);
  if (!python) return;
  const root = join(dir, 'export');
  runPython(python, script, ['write', join(root, 'src'), 'convnextv2_atto', 'model.safetensors']);
  const src = join(root, 'src', 'model.safetensors'); // a bare safetensors file: labels and size come from the options
  const x = await capture(['export', '--weights', src, '--format', 'hf', '--output', join(root, 'out'), '--labels', 'ant,bee,cow', '--size', '96']);
  assert.equal(x.code, 0, x.err);
  const config = JSON.parse(readFileSync(join(root, 'out', 'config.json'), 'utf8'));
  assert.deepEqual([config.architecture, config.num_classes, config.label_names], ['convnextv2_atto', 3, ['ant', 'bee', 'cow']]);
  assert.deepEqual([config.pretrained_cfg.input_size, config.pretrained_cfg.mean, config.pretrained_cfg.std], [[3, 96, 96], [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]);
  const loaded = JSON.parse(runPython(python, script, ['load', join(root, 'out'), join(root, 'x.npy'), join(root, 'timm.npy')]));
  assert.deepEqual([loaded.weights, loaded.pretrained_cfg.num_classes, loaded.pretrained_cfg.label_names], ['model.safetensors', 3, ['ant', 'bee', 'cow']]);
  const r = await capture(['infer', '--arch', 'convnextv2_atto', '--weights', src, '--input', join(root, 'x.npy'), '--output', join(root, 'ours.npy'), '--provider', 'cpu']);
  assert.equal(r.code, 0, r.err);
  const e = relErr(f32(join(root, 'timm.npy')), f32(join(root, 'ours.npy')));
  assert.ok(e < 1e-4, `logits relative error ${e}`);

  // Exporting a folder keeps its labels and preprocessing.
  assert.equal((await capture(['export', '--weights', join(root, 'src'), '--format', 'hf', '--output', join(root, 'again')])).code, 0);
  const again = JSON.parse(readFileSync(join(root, 'again', 'config.json'), 'utf8'));
  assert.deepEqual([again.label_names, again.pretrained_cfg.input_size, again.pretrained_cfg.crop_pct], [['cat', 'dog', 'bird'], [3, 64, 64], 0.95]);
});

test('a folder without weights, or with a malformed config.json, says what is wrong', async () => {
  const bad = join(dir, 'bad');
  const r0 = await capture(['inspect', bad]);
  assert.equal(r0.code, 2);
  mkdirSync(bad, { recursive: true });
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ architecture: 'convnextv2_atto', num_classes: 3, pretrained_cfg: {} }));
  const r1 = await capture(['inspect', bad]);
  assert.match(r1.err, /bad: no weights file \(looked for model\.safetensors, pytorch_model\.bin/);
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ architecture: 'convnextv2_atto', num_classes: 'three' }));
  const r2 = await capture(['inspect', bad]);
  assert.match(r2.err, /config\.json: num_classes: /);
});
