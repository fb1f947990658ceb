// The Try-it store over a scripted API: images are added once each, explain.run is called per image with the
// chosen models and size, results and errors land on their image, and busy covers the whole pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../common/api.ts';
import { useExplainStore } from '../../renderer/stores/explain.ts';
import { scriptedApi, settle } from '../helpers/ui.ts';

const overlay = 'data:image/png;base64,iVBORw0KGgo=';
const result = (name: string) => ({
  size: 64,
  models: [{ name, arch: 'convnextv2_atto', top: [{ index: 2, name: 'Bag', p: 0.9 }, { index: 0, name: 'Coat', p: 0.1 }], target: { index: 2, name: 'Bag' }, cam: [[0, 1], [0.5, 0.25]], camMax: 3, overlay, ms: 12 }],
  totalMs: 20,
});

test('explain store: one request per image, results and errors on their image', async () => {
  const api = scriptedApi({
    'explain.run': (r) => {
      if ('dataset' in r.image && r.image.path === 'bad.png') throw new ApiError('invalid', 'cannot read the image (bad.png)');
      return result('path' in r.image ? r.image.path : 'upload');
    },
  });
  const s = useExplainStore();
  s.add({ key: 'a', label: 'a.png', preview: null, image: { dataset: 'd', path: 'a.png' } });
  s.add({ key: 'a', label: 'a.png', preview: null, image: { dataset: 'd', path: 'a.png' } });
  s.add({ key: 'b', label: 'bad.png', preview: null, image: { dataset: 'd', path: 'bad.png' } });
  assert.equal(s.images.length, 2, 'the same image is listed once');
  api.hold = true;
  const done = s.run([{ model: { file: '/m/v2.safetensors' } }, { model: { runId: 'r1', step: 5 } }], 64);
  await settle();
  assert.equal(s.busy, true);
  api.hold = false;
  api.release();
  await done;
  assert.equal(s.busy, false);
  assert.deepEqual(api.calls.map((c) => c.request), [
    { models: [{ model: { file: '/m/v2.safetensors' } }, { model: { runId: 'r1', step: 5 } }], image: { dataset: 'd', path: 'a.png' }, size: 64 },
    { models: [{ model: { file: '/m/v2.safetensors' } }, { model: { runId: 'r1', step: 5 } }], image: { dataset: 'd', path: 'bad.png' }, size: 64 },
  ]);
  assert.equal(s.results.get('a')?.models[0]?.name, 'a.png');
  assert.equal(s.results.get('b'), undefined);
  assert.match(s.errors.get('b')?.message ?? '', /cannot read the image \(bad\.png\)/);
  s.remove('b');
  assert.deepEqual(s.images.map((i) => i.key), ['a']);
});
