// The augmentation-preview cache stays bounded: pruning keeps the newest files and nothing else there.
import assert from 'node:assert/strict';
import { readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { prunePreviews } from '../../main/services/datasets.ts';
import { tempDir } from '../helpers/services.ts';

test('pruning the preview cache keeps the newest PNGs and leaves other files alone', async () => {
  const dir = tempDir('previews');
  for (let i = 0; i < 6; i++) {
    const f = join(dir, `${i}.png`);
    writeFileSync(f, 'x');
    utimesSync(f, 1000 + i, 1000 + i);
  }
  writeFileSync(join(dir, 'notes.txt'), 'kept');
  await prunePreviews(dir, 3);
  assert.deepEqual(readdirSync(dir).sort(), ['3.png', '4.png', '5.png', 'notes.txt']);
  await prunePreviews(dir, 3);
  assert.equal(readdirSync(dir).length, 4, 'nothing to do under the limit');
});
