// The official FCMAE checkpoints (facebookresearch/ConvNeXt-V2), in the layouts its code writes: the training
// checkpoint of main_pretrain.py (model with the MinkowskiEngine sparse encoder and the dense decoder,
// optimizer, epoch, scaler, args) and a sparse encoder-only file. Fixtures: test/python/model_fixtures.py
// `sparse`, which writes the same random weights as our dense FCMAE safetensors and checks its sparse
// tensors against a restatement of the official conversion (utils.remap_checkpoint_keys).
// Tolerances: names and values exact (the conversion only moves numbers); reconstruction 1e-4 relative L2
// against the PyTorch engine's dense FCMAE in float64, on one image (the official sparse GRN pools over the
// whole batch, ours per image: they agree for a single image).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, after, test } from 'node:test';
import type { JobEvent } from '../../common/protocol.ts';
import { parseEventLine } from '../../common/protocol.ts';
import { loadCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { capture } from '../helpers/cli.ts';
import { readNpy } from '../../native-worker/data/npy.ts';
import { EventSink } from '../../native-worker/jobs/events.ts';
import { runJob } from '../../native-worker/jobs/run-job.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { relErr } from '../helpers/numeric.ts';
import { needTorch, runPython } from '../helpers/python.ts';
import { assertSameTensors } from '../helpers/tensors.ts';

const dir = mkdtempSync(join(tmpdir(), 'cnx-fcmae-official-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const at = (f: string) => join(dir, f);

let python: string | null | undefined;
function fixtures(t: TestContext): string | null {
  if (python === undefined) {
    python = needTorch(t);
    if (python) runPython(python, 'test/python/model_fixtures.py', ['sparse', dir, 'convnextv2_atto']);
  } else if (!python) needTorch(t);
  return python;
}


test('training checkpoint: sparse encoder and decoder read as our dense FCMAE weights, exactly; epoch and args', async (t) => {
  if (!fixtures(t)) return;
  const c = await loadCheckpoint(at('sparse-train.pth'));
  assert.deepEqual([c.layout, c.arch], ['sparse', { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: true, decoderDim: 512, decoderDepth: 1 }]);
  assertSameTensors(c.tensors, (await loadCheckpoint(at('fcmae512.safetensors'))).tensors);
  assert.deepEqual(c.entries, ['model', 'optimizer', 'epoch', 'scaler', 'args']);
  assert.equal(c.metadata.epoch, '799');
  assert.equal((JSON.parse(c.metadata.args!) as { mask_ratio: number }).mask_ratio, 0.6);
});

test('encoder-only sparse file: the encoder, no decoder', async (t) => {
  if (!fixtures(t)) return;
  const c = await loadCheckpoint(at('sparse-encoder.pth'));
  assert.deepEqual([c.layout, c.arch], ['sparse', { variant: 'atto', version: 2, head: false, numClasses: 0, decoder: false }]);
  const full = (await loadCheckpoint(at('fcmae512.safetensors'))).tensors;
  const encoder = new Map([...full].filter(([k]) => k.startsWith('encoder.')).map(([k, v]) => [k.slice('encoder.'.length), v]));
  assertSameTensors(c.tensors, encoder);
});

test('cnx inspect says what each file is: source, decoder, epoch, args', async (t) => {
  if (!fixtures(t)) return;
  const train = await capture(['inspect', at('sparse-train.pth'), '--json']);
  assert.equal(train.code, 0, train.err);
  const s = JSON.parse(train.out) as Record<string, unknown>;
  assert.equal(s.source, 'official FCMAE training checkpoint (main_pretrain.py: model, optimizer, epoch, scaler, args), sparse encoder and decoder');
  assert.deepEqual([s.model, s.kind, s.layout, s.decoder, s.decoderDim, s.epoch], ['convnextv2_atto', 'fcmae', 'sparse', true, 512, 799]);
  assert.equal((s.args as { decoder_embed_dim: number }).decoder_embed_dim, 512);
  const enc = await capture(['inspect', at('sparse-encoder.pth')]);
  assert.equal(enc.code, 0, enc.err);
  assert.match(enc.out, /encoder convnextv2_atto/);
  assert.match(enc.out, /official FCMAE encoder only \(sparse MinkowskiEngine layout\)/);
  assert.match(enc.out, /decoder: absent: the file holds no FCMAE decoder, so it cannot reconstruct/);
});

test('cnx reconstruct with the official checkpoint matches the dense PyTorch FCMAE (one image, 1e-4); no decoder is said clearly', async (t) => {
  const py = fixtures(t);
  if (!py) return;
  runPython(py, 'native-worker/torch/reference.py', ['fcmae', '--arch', 'convnextv2_atto', '--weights', at('fcmae512.safetensors'), '--input', at('x1.npy'), '--mask', at('mask1.npy'), '--out', at('ref'), '--dtype', 'float64']);
  const r = await capture(['reconstruct', '--arch', 'convnextv2_atto', '--weights', at('sparse-train.pth'), '--input', at('x1.npy'), '--mask', at('mask1.npy'), '--output', at('pred.npy'), '--loss-output', at('loss.json'), '--provider', 'cpu']);
  assert.equal(r.code, 0, r.err);
  const e = relErr(readNpy(at('pred.npy')).data as Float32Array, readNpy(join(dir, 'ref', 'pred.npy')).data as Float32Array);
  assert.ok(e < 1e-4, `prediction relative error ${e}`);
  const loss = (f: string) => (JSON.parse(readFileSync(f, 'utf8')) as { loss: number }).loss;
  const [ours, ref] = [loss(at('loss.json')), loss(join(dir, 'ref', 'loss.json'))];
  assert.ok(Math.abs(ours - ref) < 1e-4 * ref, `loss ${ours} vs ${ref}`);

  const none = await capture(['reconstruct', '--arch', 'convnextv2_atto', '--weights', at('sparse-encoder.pth'), '--input', at('x1.npy'), '--mask', at('mask1.npy'), '--output', at('none.npy')]);
  assert.equal(none.code, 2);
  assert.match(none.err, /sparse-encoder\.pth: has no FCMAE decoder \(proj, mask_token, decoder\.\*, pred\), so it cannot reconstruct images/);
});

test('fine-tuning starts from the official training checkpoint (--init): the encoder is taken, the head is new', async (t) => {
  if (!fixtures(t)) return;
  const manifest = await textureDataset(at('data'), 32, 4, 3);
  const events: JobEvent[] = [];
  const sink = new EventSink({ write: (s: string) => (s.split('\n').filter(Boolean).forEach((l) => events.push(parseEventLine(l)!)), true) });
  await runJob({
    version: 1, kind: 'finetune', runDir: at('ft'),
    model: { arch: 'convnextv2_atto', numClasses: 4, inputSize: 32 },
    data: { manifest, batchSize: 8, workers: 0, seed: 3 },
    optim: { lr: 1e-3, totalSteps: 1, warmupSteps: 0 }, checkpointEverySteps: 1, init: { weights: at('sparse-train.pth') },
  }, { sink, signal: new AbortController().signal, threads: 2 });
  const logs = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message).join('\n');
  assert.deepEqual(events.filter((e) => e.type === 'error'), []);
  // 136 encoder tensors; head.norm and head.fc (4 tensors) stay freshly initialized.
  assert.match(logs, /initialized 136 of 140 tensors from .*sparse-train\.pth/);
  assert.deepEqual(events.at(-1), { v: 1, type: 'done', status: 'completed' });
});
