// `cnx reconstruct-images`: dataset images through FCMAE checkpoints under one chosen mask, grids with an
// error heatmap. The per-patch errors are checked against the graph's own loss (without norm-pix-loss the
// FCMAE loss is exactly their mean over the removed patches).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { parseArch } from '../../common/variants.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { main } from '../../native-worker/cli.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { FCMAE_DEFAULTS, fcmaeParams } from '../../native-worker/nn/fcmae.ts';
import { type ParamSpec, initParams } from '../../native-worker/nn/params.ts';
import { textureDataset } from '../helpers/dataset.ts';

let dir = '';
let manifest = '';
const files: string[] = [];
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cnx-recon-'));
  manifest = await textureDataset(join(dir, 'data'), 64, 2, 3);
  const save = async (name: string, specs: ParamSpec[], seed: number) => {
    const values = initParams(specs, seed);
    const file = join(dir, name);
    await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
    return file;
  };
  const fcmae = fcmaeParams({ ...FCMAE_DEFAULTS, arch: parseArch('convnextv2_atto'), inputSize: 64 });
  files.push(await save('early.safetensors', fcmae, 1), await save('late.safetensors', fcmae, 2), await save('classifier.safetensors', convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 4 }), 3));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('two checkpoints reconstruct the same images under the same mask; errors match the loss; the grid has an error column', async () => {
  const out = join(dir, 'out');
  const code = await main(['reconstruct-images', '--checkpoint', files[0]!, '--checkpoint', files[1]!, '--name', 'step 10', '--name', 'step 20', '--manifest', manifest,
    '--images', '3', '--size', '64', '--mask-ratio', '0.5', '--mask-seed', '3', '--no-norm-pix-loss', '--provider', 'cpu', '--out', out]);
  assert.equal(code, 0);
  const r = JSON.parse(readFileSync(join(out, 'reconstructions.json'), 'utf8'));
  assert.equal(r.images.length, 3);
  assert.deepEqual(r.checkpoints.map((c: { name: string }) => c.name), ['step 10', 'step 20']);
  const removed = (c: { patchErrors: (number | null)[][] }) => c.patchErrors.map((row) => row.map((e) => e !== null));
  assert.deepEqual(removed(r.checkpoints[0]), removed(r.checkpoints[1]), 'one mask for both checkpoints');
  for (const c of r.checkpoints) {
    assert.equal(c.patchErrors.length, 3);
    for (const row of c.patchErrors) assert.equal(row.filter((e: number | null) => e !== null).length, 2, '4 patches at 64 px, half removed');
    const errs = c.patchErrors.flat().filter((e: number | null): e is number => e !== null);
    const mean = errs.reduce((a: number, b: number) => a + b, 0) / errs.length;
    assert.ok(Math.abs(mean - c.loss) / c.loss < 1e-4, `${c.name}: mean patch error ${mean} vs loss ${c.loss}`);
  }
  assert.notEqual(r.checkpoints[0].loss, r.checkpoints[1].loss);
  const meta = await sharp(join(out, 'reconstruction-2.png')).metadata();
  assert.deepEqual([meta.width, meta.height], [5 * 64, 3 * 64]);
  // Heatmap column: a visible patch is grey, the image's worst removed patch is the brightest.
  const { data } = await sharp(join(out, 'reconstruction-2.png')).raw().toBuffer({ resolveWithObject: true });
  const row0 = r.checkpoints[1].patchErrors[0] as (number | null)[];
  const px = (cell: number) => {
    const [gy, gx] = [Math.floor(cell / 2), cell % 2];
    const i = ((gy * 32 + 16) * 5 * 64 + 4 * 64 + gx * 32 + 16) * 3;
    return [data[i], data[i + 1], data[i + 2]];
  };
  assert.deepEqual(px(row0.indexOf(null)), [96, 96, 96]);
  const worst = row0.indexOf(Math.max(...row0.filter((e): e is number => e !== null)));
  assert.deepEqual(px(worst), [255, 220, 0]);
});

test('picked paths are used in order; a missing path or a classifier checkpoint is a clear error', async () => {
  const m = JSON.parse(readFileSync(manifest, 'utf8'));
  const paths = [m.items[5].path, m.items[0].path];
  const out = join(dir, 'paths');
  assert.equal(await main(['reconstruct-images', '--checkpoint', files[0]!, '--manifest', manifest, ...paths.flatMap((p: string) => ['--path', p]), '--size', '64', '--out', out]), 0);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'reconstructions.json'), 'utf8')).images.map((i: { path: string }) => i.path), paths);
  assert.equal(await main(['reconstruct-images', '--checkpoint', files[0]!, '--manifest', manifest, '--path', 'no/such.png', '--size', '64', '--out', out]), 2);
  assert.equal(await main(['reconstruct-images', '--checkpoint', files[2]!, '--manifest', manifest, '--size', '64', '--out', out]), 2);
  assert.equal(await main(['reconstruct-images', '--checkpoint', files[0]!, '--manifest', manifest, '--size', '32', '--out', out]), 2, 'one patch at 32 px');
});
