// The model commands a user runs on checkpoints: export to ONNX (runs anywhere ONNX Runtime runs and gives
// the same logits as `cnx infer`), export to timm/official safetensors, inspect, doctor; and their errors.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { parseArch } from '../../common/variants.ts';
import { loadCheckpoint, saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { capture } from '../helpers/cli.ts';
import { readNpy, writeNpy } from '../../native-worker/data/npy.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { Rng } from '../../native-worker/nn/random.ts';

let dir = '';
const ck = () => join(dir, 'model.safetensors');


before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cnx-cli-'));
  const specs = convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 3 });
  const values = initParams(specs, 5);
  await saveCheckpoint(ck(), new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])), { note: 'test' });
  const rng = new Rng(6);
  writeNpy(join(dir, 'x.npy'), { dtype: 'float32', shape: [2, 3, 64, 64], data: Float32Array.from({ length: 2 * 3 * 64 * 64 }, () => rng.normal()) });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('export to ONNX: a standalone model with any batch size gives the logits of cnx infer', async () => {
  const onnx = join(dir, 'model.onnx');
  assert.equal((await capture(['export', '--arch', 'convnextv2_atto', '--weights', ck(), '--output', onnx, '--size', '64', '--labels', 'cat,dog,bird'])).code, 0);
  const meta = JSON.parse(readFileSync(`${onnx}.json`, 'utf8'));
  assert.deepEqual([meta.labels, meta.inputSize, meta.resize, meta.mean], [['cat', 'dog', 'bird'], 64, 73, [0.485, 0.456, 0.406]]);
  // cnx infer runs small maps' depthwise convs as matrices; the exported file keeps standard Conv nodes.
  assert.ok(!readFileSync(onnx).includes('depthwise_taps'), 'the exported graph has no depthwise tap matrices');
  assert.equal((await capture(['infer', '--arch', 'convnextv2_atto', '--weights', ck(), '--input', join(dir, 'x.npy'), '--output', join(dir, 'logits.npy')])).code, 0);
  const expected = readNpy(join(dir, 'logits.npy')).data as Float32Array;
  const session = await ort.InferenceSession.create(onnx);
  const x = readNpy(join(dir, 'x.npy')).data as Float32Array;
  for (const n of [1, 2]) {
    const out = await session.run({ image: new ort.Tensor('float32', x.subarray(0, n * 3 * 64 * 64), [n, 3, 64, 64]) });
    const got = out.logits!.data as Float32Array;
    assert.deepEqual(out.logits!.dims, [n, 3]);
    got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-4, `logit ${i}: ${v} vs ${expected[i]}`));
  }
});

test('export to official safetensors and back gives the same weights', async () => {
  const official = join(dir, 'official.safetensors');
  assert.equal((await capture(['export', '--arch', 'convnextv2_atto', '--weights', ck(), '--output', official, '--format', 'official'])).code, 0);
  const a = await loadCheckpoint(ck());
  const b = await loadCheckpoint(official);
  assert.equal(b.layout, 'official');
  for (const [k, t] of a.tensors) assert.deepEqual(b.tensors.get(k)!.data, t.data, k);
});

test('inspect reports the model, layout and parameter count', async () => {
  const r = await capture(['inspect', ck(), '--json']);
  assert.equal(r.code, 0);
  const info = JSON.parse(r.out);
  assert.deepEqual([info.model, info.kind, info.layout, info.numClasses, info.metadata.note], ['convnextv2_atto', 'classifier', 'timm', 3, 'test']);
  assert.equal(info.parameters, 3708400 - 320 * 997 - 997); // atto with 1000 classes (timm: 3,708,400) minus 997 head rows
});

test('bad inputs give a clear error naming the file and the problem, and write nothing', async () => {
  writeFileSync(join(dir, 'broken.safetensors'), 'not a checkpoint');
  const r1 = await capture(['infer', '--arch', 'convnextv2_atto', '--weights', join(dir, 'broken.safetensors'), '--input', join(dir, 'x.npy'), '--output', join(dir, 'o1.npy')]);
  assert.notEqual(r1.code, 0);
  assert.match(r1.err, /broken\.safetensors/);
  writeNpy(join(dir, 'gray.npy'), { dtype: 'float32', shape: [2, 1, 64, 64], data: new Float32Array(2 * 64 * 64) });
  const r2 = await capture(['infer', '--arch', 'convnextv2_atto', '--weights', ck(), '--input', join(dir, 'gray.npy'), '--output', join(dir, 'o2.npy')]);
  assert.equal(r2.code, 2);
  assert.match(r2.err, /gray\.npy: images must be shaped \(N, 3, H, W\), got \(2, 1, 64, 64\)/);
  const r3 = await capture(['reconstruct', '--arch', 'convnextv2_atto', '--weights', ck(), '--input', join(dir, 'x.npy'), '--mask', join(dir, 'x.npy'), '--output', join(dir, 'o3.npy')]);
  assert.equal(r3.code, 2);
  assert.match(r3.err, /x\.npy: mask must be shaped \(2, 2, 2\)/);
  assert.equal(['o1.npy', 'o2.npy', 'o3.npy'].some((f) => existsSync(join(dir, f))), false);
});

test('doctor reports the ONNX engine and its providers, and the JPEG decoder', async () => {
  const r = await capture(['doctor', '--json']);
  assert.equal(r.code, 0);
  const info = JSON.parse(r.out);
  assert.equal(info.onnx.chosen, 'cpu');
  assert.ok(info.onnx.backends.includes('cpu'));
  assert.ok(['libjpeg-turbo', 'sharp'].includes(info.jpeg.decoder) && info.jpeg.reason, JSON.stringify(info.jpeg));
});

test('ONNX export options (fixed batch, float16 weights, opsets 18-21) run in onnxruntime with the default\'s logits', async () => {
  const x = readNpy(join(dir, 'x.npy')).data as Float32Array;
  const logitsOf = async (file: string, n: number) => {
    const session = await ort.InferenceSession.create(file);
    const out = await session.run({ image: new ort.Tensor('float32', x.subarray(0, n * 3 * 64 * 64), [n, 3, 64, 64]) });
    return out.logits!.data as Float32Array;
  };
  const exported = async (name: string, ...options: string[]) => {
    const file = join(dir, `${name}.onnx`);
    const r = await capture(['export', '--arch', 'convnextv2_atto', '--weights', ck(), '--output', file, '--size', '64', ...options]);
    assert.equal(r.code, 0, r.err);
    return file;
  };
  const base = await logitsOf(await exported('default'), 2);
  const close = (got: Float32Array, tol: number, what: string) => got.forEach((v, i) => assert.ok(Math.abs(v - base[i]!) <= tol * (1 + Math.abs(base[i]!)), `${what}: logit ${i}: ${v} vs ${base[i]}`));
  for (const opset of ['18', '19', '21']) close(await logitsOf(await exported(`opset${opset}`, '--opset', opset), 2), 1e-5, `opset ${opset}`);
  // Float16 weights: each weight is rounded by at most 2^-11 relative; through a random atto that moved the
  // logits by 2.4e-4 (scaled as below, measured); 1e-2 leaves room and still catches a wrong cast or layout.
  const half = await exported('fp16', '--fp16-weights');
  close(await logitsOf(half, 2), 1e-2, 'float16 weights');
  assert.ok(statSync(half).size < 0.55 * statSync(join(dir, 'default.onnx')).size, 'float16 weights halve the file');
  const fixed = await exported('batch2', '--batch', '2');
  close(await logitsOf(fixed, 2), 1e-5, 'fixed batch');
  await assert.rejects(logitsOf(fixed, 1), /dimension|Got invalid dimensions/i, 'a fixed-batch model refuses another batch size');
  assert.deepEqual(JSON.parse(readFileSync(`${fixed}.json`, 'utf8')).batch, 2);
  const bad = await capture(['export', '--arch', 'convnextv2_atto', '--weights', ck(), '--output', join(dir, 'x.onnx'), '--opset', '13']);
  assert.match(bad.err, /--opset must be one of 18, 19, 20, 21, got '13'/);
});
