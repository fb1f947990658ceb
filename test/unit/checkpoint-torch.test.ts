// Loading files written by PyTorch (test/fixtures/checkpoint_fixtures.py): official V2/V1, timm and FCMAE
// layouts come out with exactly the names and values Python wrote; dtypes, strided views, shared storages,
// deflated, zip64 and big-endian archives decode exactly; malicious, legacy and damaged files are refused.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, after, describe, test } from 'node:test';
import { toOfficial } from '../../native-worker/checkpoint/layout.ts';
import { loadCheckpoint, saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { readSafetensors } from '../../native-worker/checkpoint/safetensors.ts';
import type { LazyTensor, TensorMap } from '../../native-worker/checkpoint/tensor.ts';
import { parseTorchZip } from '../../native-worker/checkpoint/torchzip.ts';
import { needTorch, runPython } from '../helpers/python.ts';
import { assertSameTensors } from '../helpers/tensors.ts';

const script = 'test/fixtures/checkpoint_fixtures.py';
const dir = mkdtempSync(join(tmpdir(), 'cnx-checkpoint-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let generated: { python: string } | undefined;
/** The fixture folder, generated on first use; null when the test was skipped for lack of torch. */
function fixtures(t: TestContext): string | null {
  const python = needTorch(t);
  if (!python) return null;
  if (!generated) {
    runPython(python, script, ['generate', dir]);
    generated = { python };
  }
  return dir;
}

const readAll = (m: ReadonlyMap<string, LazyTensor>): TensorMap => new Map([...m].map(([k, t]) => [k, t.read()]));
const expected = async (name: string) => readAll((await readSafetensors(join(dir, name))).tensors);

describe('official and timm checkpoints written by PyTorch', () => {
  test('official ConvNeXt V2 atto training checkpoint: model weights, variant, metadata', async (t) => {
    if (!fixtures(t)) return;
    const path = join(dir, 'v2_atto_official.pt');
    const c = await loadCheckpoint(path);
    assert.deepEqual([c.format, c.layout, c.variant], ['torch', 'official', 'atto']);
    assert.deepEqual(c.arch, { variant: 'atto', version: 2, head: true, numClasses: 1000, decoder: false });
    assertSameTensors(c.tensors, await expected('v2_atto_official.expected.safetensors'));
    assert.deepEqual(c.notes, [
      "the file holds several models ('model.', 'model_ema.'); read 'model.'",
      "ignored 142 tensors outside the model weights (e.g. 'model_ema.downsample_layers.0.0.weight')",
    ]);
    assert.equal(c.metadata.epoch, '7');
    assert.deepEqual(JSON.parse(c.metadata.args!), {
      model: 'convnextv2_atto',
      lr: 2e-4,
      input_size: 224,
      layer_decay: 0.9,
      drop_path: 0.1,
      finetune: '',
      seed: String(2n ** 70n),
      eval: false,
      crop_pct: null,
      betas: [0.9, 0.999],
    });
  });

  test('the EMA weights of the same file, on request', async (t) => {
    if (!fixtures(t)) return;
    const c = await loadCheckpoint(join(dir, 'v2_atto_official.pt'), { entry: 'model_ema' });
    assertSameTensors(c.tensors, await expected('v2_atto_official.expected_ema.safetensors'));
  });

  test('official ConvNeXt V1 atto (.pth, pickle protocol 4): layer scale kept', async (t) => {
    if (!fixtures(t)) return;
    const c = await loadCheckpoint(join(dir, 'v1_atto_official.pth'));
    assert.deepEqual(c.arch, { variant: 'atto', version: 1, head: true, numClasses: 1000, decoder: false });
    assertSameTensors(c.tensors, await expected('v1_atto_official.expected.safetensors'));
    assert.deepEqual(c.tensors.get('stages.2.blocks.4.gamma')!.shape, [160]);
  });

  test('timm-layout state dict in float16 with a 10-class head', async (t) => {
    if (!fixtures(t)) return;
    const c = await loadCheckpoint(join(dir, 'v2_atto_timm_fp16.pt'));
    assert.deepEqual([c.layout, c.arch.numClasses, c.notes], ['timm', 10, []]);
    assertSameTensors(c.tensors, await expected('v2_atto_timm_fp16.expected.safetensors'));
  });

  test('FCMAE encoder-only pretrain file with GRN (1, 4C): canonical encoder, no head, reported', async (t) => {
    if (!fixtures(t)) return;
    const c = await loadCheckpoint(join(dir, 'v2_atto_fcmae_encoder.pt'));
    assert.deepEqual(c.arch, { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: false });
    assert.ok(c.notes.includes('no classifier head: encoder weights only (head.* is missing)'));
    assertSameTensors(c.tensors, await expected('v2_atto_fcmae_encoder.expected.safetensors'));
  });

  test('FCMAE model with decoder: encoder. + timm names, decoder kept', async (t) => {
    if (!fixtures(t)) return;
    const c = await loadCheckpoint(join(dir, 'v2_atto_fcmae_full.pt'));
    assert.deepEqual(c.arch, { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: true, decoderDim: 512, decoderDepth: 1 });
    assertSameTensors(c.tensors, await expected('v2_atto_fcmae_full.expected.safetensors'));
  });

  test('saved canonical weights read back identically here and in Python; exported official names match the file', async (t) => {
    if (!fixtures(t)) return;
    const c = await loadCheckpoint(join(dir, 'v2_atto_official.pt'));
    const out = join(dir, 'resaved.safetensors');
    await saveCheckpoint(out, c.tensors, { source: 'v2_atto_official.pt' });
    const again = await loadCheckpoint(out);
    assert.deepEqual([again.format, again.layout, again.metadata], ['safetensors', 'timm', { source: 'v2_atto_official.pt' }]);
    assertSameTensors(again.tensors, c.tensors);
    const printed = runPython(generated!.python, script, ['check', out, join(dir, 'v2_atto_official.expected.safetensors')]);
    assert.equal(printed.trim(), '140 {"source": "v2_atto_official.pt"}');

    // Back to the official layout: the same names, shapes and values as the 'model' entry of the .pt file.
    const file = parseTorchZip(readFileSync(join(dir, 'v2_atto_official.pt')), 'v2_atto_official.pt');
    const model = new Map([...file.tensors].filter(([k]) => k.startsWith('model.')).map(([k, v]) => [k.slice('model.'.length), v.read()]));
    assertSameTensors(toOfficial(c.tensors, c.arch), model);
  });
});

describe('tensor storage details', () => {
  const cases = ['dtypes.pt', 'dtypes_deflate.pt', 'dtypes_zip64.pt', 'dtypes_big.pt'];
  for (const name of cases) {
    test(`${name}: f16/bf16/f64 -> float32, integers -> int64, strides, offsets, shared storage`, async (t) => {
      if (!fixtures(t)) return;
      const file = parseTorchZip(readFileSync(join(dir, name)), name);
      assert.deepEqual(
        [...file.tensors].map(([k, v]) => `${k}:${v.storedAs}`),
        ['f16:F16', 'bf16:BF16', 'f64:F64', 'i32:I32', 'i64:I64', 'u8:U8', 'bool:BOOL', 'f32_t:F32', 'f32_step:F32', 'f32_view:F32', 'f32_expand:F32', 'f32_shared:F32', 'f16_t:F16', 'scalar:F32', 'empty:F32'],
      );
      assertSameTensors(readAll(file.tensors), await expected('dtypes.expected.safetensors'));
    });
  }

  test('safetensors written by Python with F16, BF16, F64, I32 and I64', async (t) => {
    if (!fixtures(t)) return;
    const file = await readSafetensors(join(dir, 'dtypes.safetensors'));
    assert.deepEqual(file.metadata, { source: 'checkpoint_fixtures.py' });
    assertSameTensors(readAll(file.tensors), await expected('dtypes.safetensors.expected.safetensors'));
  });
});

describe('files that must be refused', () => {
  test('a pickle whose REDUCE calls os.system: refused, command never run', async (t) => {
    if (!fixtures(t)) return;
    const path = join(dir, 'evil_reduce.pt');
    await assert.rejects(loadCheckpoint(path), {
      name: 'CheckpointError',
      message: `${path} (archive/data.pkl): refusing to load: the pickle asks for the global 'os.system', which is not an allowed data type (nothing was executed)`,
    });
    assert.equal(existsSync(join(dir, 'pwned_reduce')), false);
  });

  test('a protocol-4 pickle calling builtins.eval through STACK_GLOBAL: refused, never run', async (t) => {
    if (!fixtures(t)) return;
    const path = join(dir, 'evil_eval.pt');
    await assert.rejects(loadCheckpoint(path), {
      message: `${path} (archive/data.pkl): refusing to load: the pickle asks for the global 'builtins.eval', which is not an allowed data type (nothing was executed)`,
    });
    assert.equal(existsSync(join(dir, 'pwned_eval')), false);
  });

  test('legacy torch.save files and bare pickles', async (t) => {
    if (!fixtures(t)) return;
    const legacy = join(dir, 'legacy.pt');
    await assert.rejects(loadCheckpoint(legacy), {
      message: `${legacy} is in the legacy (pre-1.6) torch.save format, which is not supported; re-save it with a current PyTorch: torch.save(torch.load(f), f)`,
    });
    const bare = join(dir, 'bare.pkl');
    await assert.rejects(loadCheckpoint(bare), { message: `${bare} is a bare pickle, not a torch.save zip archive; refusing to read it` });
  });

  test('a parameter with the wrong shape names the file, both names and both shapes', async (t) => {
    if (!fixtures(t)) return;
    const path = join(dir, 'v2_atto_bad_shape.pt');
    await assert.rejects(loadCheckpoint(path), {
      name: 'CheckpointError',
      message: `${path}: parameter 'stages.2.blocks.3.mlp.fc1.weight' (read from 'model.stages.2.3.pwconv1.weight') has shape [640, 161, 1, 1], expected [640, 160, 1, 1]`,
    });
  });

  test('truncated and corrupted torch archives', async (t) => {
    if (!fixtures(t)) return;
    const whole = readFileSync(join(dir, 'dtypes.pt'));
    const cut = join(dir, 'cut.pt');
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    await assert.rejects(loadCheckpoint(cut), { message: `${cut}: end of the zip central directory not found: the file is truncated or not a zip archive` });

    // Flip one byte inside the storage of 'f64' (key 2): the CRC check catches it when the tensor is read.
    const file = parseTorchZip(whole, 'x');
    assert.equal(file.tensors.get('f64')!.read().data.length, 6);
    const flipped = Buffer.from(whole);
    const at = flipped.indexOf(Buffer.from('dtypes/data/2'));
    const dataStart = at + 'dtypes/data/2'.length + flipped.readUInt16LE(at - 2);
    flipped[dataStart + 3]! ^= 0x40;
    const damaged = parseTorchZip(flipped, 'damaged.pt');
    assert.throws(() => damaged.tensors.get('f64')!.read(), { message: "damaged.pt: entry 'dtypes/data/2' is corrupt (CRC-32 mismatch)" });
  });
});
