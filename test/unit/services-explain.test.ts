// The "Try it" API through the Workbench's handlers (what both transports call): an upload checked and kept
// by its hash, explain.run on an upload and on a catalogued dataset's image with one and two models (the
// `cnx explain --serve` child keeps them loaded: the second call skips the load), the overlay as a PNG data URL, and the errors a
// user can act on (not an image, unknown upload, a missing checkpoint, an encoder without a head).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { ApiError, apiMethods } from '../../common/api.ts';
import { parseArch } from '../../common/variants.ts';
import { Workbench } from '../../main/services/workbench.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { type ParamSpec, initParams } from '../../native-worker/nn/params.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { photo } from '../helpers/images.ts';
import { tempDir, waitFor } from '../helpers/services.ts';

let dir: string;
let wb: Workbench;
const models: Record<string, string> = {};

async function writeModel(file: string, specs: ParamSpec[], seed: number): Promise<string> {
  const values = initParams(specs, seed);
  await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
  return file;
}

before(async () => {
  dir = tempDir('explain');
  wb = await Workbench.open({ workspace: join(dir, 'ws') });
  models.v2 = await writeModel(join(dir, 'v2.safetensors'), convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 7, headInitScale: 20 }), 1);
  models.v1 = await writeModel(join(dir, 'v1.safetensors'), convnextParams({ arch: parseArch('convnext_atto'), numClasses: 7 }), 2);
  models.encoder = await writeModel(join(dir, 'encoder.safetensors'), convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 0 }), 3);
});
after(async () => wb.close());

/** A request as a transport delivers it: parsed by the method's schema. */
const call = async <M extends 'explain.upload' | 'explain.run'>(m: M, r: unknown) => {
  const parsed = apiMethods[m].request.parse(r);
  return apiMethods[m].response.parse(await wb.handlers[m](parsed as never)) as Awaited<ReturnType<Workbench['handlers'][M]>>;
};

test('an upload is checked, kept by its hash and explained by one and then two models', async () => {
  const png = await photo(5, 300, 200).png().toBuffer();
  const up = await call('explain.upload', { name: 'photo.png', data: png.toString('base64') });
  assert.deepEqual([up.width, up.height], [300, 200]);
  assert.ok(existsSync(join(dir, 'ws', 'cache', 'explain', up.upload)));

  const one = await call('explain.run', { models: [{ model: { file: models.v2! } }], image: { upload: up.upload } });
  assert.equal(one.size, 224);
  const m = one.models[0]!;
  assert.equal(m.name, 'v2');
  assert.equal(m.arch, 'convnextv2_atto');
  assert.equal(m.top.length, 5);
  assert.equal(m.target.index, m.top[0]!.index);
  assert.deepEqual([m.cam.length, m.cam[0]!.length], [7, 7]);
  const overlay = await sharp(Buffer.from(m.overlay.slice('data:image/png;base64,'.length), 'base64')).metadata();
  assert.deepEqual([overlay.format, overlay.width, overlay.height], ['png', 224, 224]);

  const two = await call('explain.run', { models: [{ model: { file: models.v2! }, name: 'V2' }, { model: { file: models.v1! }, name: 'V1' }], image: { upload: up.upload } });
  assert.deepEqual(two.models.map((x) => [x.name, x.arch]), [['V2', 'convnextv2_atto'], ['V1', 'convnext_atto']]);
  assert.deepEqual(two.models[0]!.cam, m.cam, 'the same model and image give the same map');
  // The V2 model was loaded by the first call: this one only compiled V1; a third call loads nothing.
  const again = await call('explain.run', { models: [{ model: { file: models.v2! } }, { model: { file: models.v1! } }], image: { upload: up.upload } });
  console.log(`explain.run: first ${one.totalMs.toFixed(0)} ms (load V2), two models ${two.totalMs.toFixed(0)} ms (load V1), again ${again.totalMs.toFixed(0)} ms`);
  assert.ok(again.totalMs < one.totalMs, `a cached call (${again.totalMs} ms) is faster than the first, which started the worker and loaded (${one.totalMs} ms)`);
});

test('a catalogued dataset image, with a chosen class', async () => {
  await textureDataset(join(dir, 'textures'), 48, 1, 1);
  const imp = await wb.handlers['datasets.import']({ source: join(dir, 'textures'), name: 'textures', kind: 'folder' });
  await waitFor('the import', () => wb.datasets.importTasks().find((t) => t.taskId === imp.taskId && t.state !== 'running'));
  const page = await wb.handlers['datasets.images']({ name: 'textures', offset: 0, limit: 1, status: 'usable' });
  const r = await call('explain.run', { models: [{ model: { file: models.v1! } }], image: { dataset: 'textures', path: page.items[0]!.path }, size: 64, classIndex: 3 });
  assert.equal(r.size, 64);
  assert.equal(r.models[0]!.target.index, 3);
  assert.deepEqual([r.models[0]!.cam.length, r.models[0]!.cam[0]!.length], [2, 2]);
});

test('a crashed explain process fails nothing later: the next request starts a new one', async () => {
  const up = await call('explain.upload', { name: 'p.png', data: (await photo(7, 64, 64).png().toBuffer()).toString('base64') });
  await call('explain.run', { models: [{ model: { file: models.v2! } }], image: { upload: up.upload }, size: 64 });
  const pid = wb.explain.pid;
  assert.ok(pid);
  process.kill(pid, 'SIGKILL');
  await waitFor('the process to be gone', () => wb.explain.pid === null, 10_000);
  const r = await call('explain.run', { models: [{ model: { file: models.v2! } }], image: { upload: up.upload }, size: 64 });
  assert.equal(r.models[0]!.top.length, 5);
  assert.notEqual(wb.explain.pid, pid);
});

test('errors name the problem', async () => {
  const rejects = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: Error) => e instanceof ApiError && re.test(e.message));
  await rejects(call('explain.upload', { name: 'notes.txt', data: Buffer.from('hello, not an image').toString('base64') }), /notes\.txt: not an image/);
  await rejects(call('explain.run', { models: [{ model: { file: models.v2! } }], image: { upload: 'a'.repeat(64) } }), /no upload 'a{64}'/);
  const up = await call('explain.upload', { name: 'p.png', data: (await photo(6, 64, 64).png().toBuffer()).toString('base64') });
  await rejects(call('explain.run', { models: [{ model: { file: join(dir, 'gone.safetensors') } }], image: { upload: up.upload } }), /gone\.safetensors: no such checkpoint file/);
  await rejects(call('explain.run', { models: [{ model: { file: models.encoder! } }], image: { upload: up.upload } }), /no classifier head/);
  await rejects(call('explain.run', { models: [{ model: { file: models.v2! } }], image: { upload: up.upload }, classIndex: 7 }), /class 7: v2 has 7 classes/);
  assert.throws(() => apiMethods['explain.run'].request.parse({ models: [], image: { upload: up.upload } }));
});
