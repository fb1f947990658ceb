// `cnx finetune` refuses a run whose evaluations would silently vanish (no images in the eval split), with
// both fixes in the message, before any training starts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../../native-worker/cli.ts';
import { textureDataset } from '../helpers/dataset.ts';

let dir = '';
let manifest = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cnx-cli-train-'));
  manifest = await textureDataset(join(dir, 'data'), 32, 4, 0);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function capture(args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const [error, write] = [console.error, process.stderr.write.bind(process.stderr)];
  console.error = (m: string) => err.push(m);
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), err: err.join('\n') };
  } finally {
    console.error = error;
    process.stderr.write = write;
  }
}

test('--eval-every without a val split fails and says how to fix it', async () => {
  const r = await capture(['finetune', '--manifest', manifest, '--run-dir', join(dir, 'run'), '--size', '32', '--batch', '4', '--steps', '2', '--eval-every', '1', '--engine', 'onnx']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--eval-every 1: the dataset has no val images to evaluate on\. Split some off with `cnx dataset split NAME --val 0\.1`/);
});

test('--recipe and --eval-split take only their values', async () => {
  const bad = await capture(['finetune', '--manifest', manifest, '--run-dir', join(dir, 'run2'), '--steps', '2', '--recipe', 'long', '--engine', 'onnx']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /--recipe must be auto, paper or short, got 'long'/);
  const split = await capture(['finetune', '--manifest', manifest, '--run-dir', join(dir, 'run3'), '--steps', '2', '--eval-split', 'train', '--engine', 'onnx']);
  assert.match(split.err, /--eval-split must be val or test, got 'train'/);
});
