// An official FCMAE training checkpoint (main_pretrain.py's layout: sparse encoder, decoder, optimizer,
// epoch, scaler, args; written by test/python/model_fixtures.py) and a sparse encoder-only file in Debian's
// Chromium against `cnx serve`: imported and described (source, epoch, decoder), the decoder reconstructs
// images of a catalogued Fashion-MNIST slice, the encoder-only file says it cannot, and a fine-tuning
// started from the training checkpoint in the UI takes its encoder; a Hugging Face / timm model folder
// (test/python/timm_folder.py) imports and exports as a timm folder with its class names. Screenshots go to
// test-results/.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { needTorch, runPython, torchPython } from '../helpers/python.ts';
import { fashionSlice } from './data.ts';
import { type Served, browserStep, callApi, ensureBuilt, findChromium, importDataset, launchChromium, needChromium, openPage, screenshot, startServe } from './helpers.ts';

describe('official FCMAE checkpoints in Chromium', () => {
  const chromiumPath = findChromium();
  const python = torchPython();
  let dir = '';
  let served: Served;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    if (!chromiumPath || !('python' in python)) return;
    dir = mkdtempSync(join(tmpdir(), 'cnx-e2e-fcmae-'));
    runPython(python.python, 'test/python/model_fixtures.py', ['sparse', dir, 'convnextv2_atto']);
    runPython(python.python, 'test/python/timm_folder.py', ['write', join(dir, 'timm-folder'), 'convnextv2_atto', 'model.safetensors']);
    const [data] = await Promise.all([fashionSlice(join(dir, 'fashion'), 4, 2, 0), ensureBuilt()]);
    served = await startServe({ workspace: join(dir, 'ws') });
    await importDataset(served, data.root, 'fashion');
    browser = await launchChromium(chromiumPath);
    page = await openPage(browser, { width: 1440, height: 1000 }, pageErrors);
  });

  after(async () => {
    await browser?.close();
    await served?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const step = browserStep(() => page, (t) => needChromium(t) && needTorch(t));

  async function importFile(file: string, name: string): Promise<void> {
    await page.getByLabel('Checkpoint file to import').fill(join(dir, file));
    await page.getByLabel('Name of the imported checkpoint').fill(name);
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const item = page.getByRole('list', { name: 'Imported checkpoints' }).getByRole('button', { name: new RegExp(name) });
    await item.waitFor({ timeout: 60_000 });
    await item.click();
  }

  step('the training checkpoint is described and its decoder reconstructs dataset images', async () => {
    await page.goto(served.url); // sets the token cookie
    await page.goto(`${served.origin}/#/models`);
    await importFile('sparse-train.pth', 'official fcmae');
    await page.getByText(/official FCMAE training checkpoint \(main_pretrain\.py: model, optimizer, epoch, scaler, args\).* · epoch 799/).waitFor();
    assert.match(await page.getByTestId('decoder-note').innerText(), /present \(512 wide, 1 block\)/);
    await page.getByLabel('Reconstruction image size').fill('64');
    await page.getByRole('button', { name: 'Reconstruct images' }).click();
    const grid = page.getByTestId('file-reconstruction');
    await grid.waitFor({ timeout: 120_000 });
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('[data-testid=file-reconstruction] img')].every((i) => i.complete && i.naturalWidth === 5 * 64));
    assert.match(await grid.innerText(), /loss \d/);
    await grid.scrollIntoViewIfNeeded();
    await screenshot(page, 'fcmae-01-official-training-checkpoint');
  });

  step('the encoder-only file says it has no decoder and offers no reconstruction', async () => {
    await importFile('sparse-encoder.pth', 'official encoder');
    await page.getByText('official FCMAE encoder only (sparse MinkowskiEngine layout)').waitFor();
    assert.match(await page.getByTestId('decoder-note').innerText(), /absent: the file holds no FCMAE decoder, so it cannot reconstruct/);
    assert.equal(await page.getByRole('button', { name: 'Reconstruct images' }).count(), 0);
    await screenshot(page, 'fcmae-02-official-encoder-only');
  });

  step('a fine-tuning started from the training checkpoint in the UI takes its encoder', async () => {
    await page.getByRole('list', { name: 'Imported checkpoints' }).getByRole('button', { name: /official fcmae/ }).click();
    await page.getByRole('button', { name: 'Fine-tune from it' }).click();
    await page.waitForURL(/#\/train/);
    assert.equal(await page.locator('#train-init-file').inputValue(), join(dir, 'sparse-train.pth'));
    await page.locator('#train-dataset').selectOption('fashion');
    await page.locator('#train-size').fill('32');
    await page.locator('#train-batch').fill('8');
    await page.locator('#train-unit').selectOption('steps');
    await page.locator('#train-length').fill('1');
    await page.locator('#train-engine').selectOption('onnx');
    await page.locator('#train-device').selectOption('cpu');
    await page.locator('#train-workers').fill('0');
    await page.getByRole('button', { name: 'Start fine-tuning' }).click();
    await page.waitForURL(/#\/runs\/[\w-]+/);
    const runId = /#\/runs\/([\w-]+)/.exec(page.url())![1]!;
    await page.locator('section.detail[data-state="completed"]').waitFor({ timeout: 240_000 });
    const logs = await callApi<{ items: unknown[] }>(served, 'runs.events', { runId, types: ['log'] });
    assert.match(JSON.stringify(logs.items), /initialized 136 of 140 tensors from .*sparse-train\.pth/);
    await screenshot(page, 'fcmae-03-finetune-from-official');
  });

  step('a timm model folder imports as a classifier and exports as a timm folder with its class names', async () => {
    await page.goto(`${served.origin}/#/models`);
    await importFile('timm-folder', 'timm folder');
    await page.getByText('convnextv2_atto · classifier · 3 classes').waitFor();
    await page.getByText('Hugging Face / timm model folder (convnextv2_atto)').waitFor();
    const panel = page.locator('section.imported');
    await panel.getByRole('button', { name: 'Export timm folder' }).click();
    const link = panel.locator('.files a', { hasText: 'config.json' });
    await link.waitFor({ timeout: 60_000 });
    const config = await page.evaluate(async (href) => (await fetch(href)).json(), (await link.getAttribute('href'))!);
    assert.deepEqual([config.architecture, config.num_classes, config.label_names], ['convnextv2_atto', 3, ['cat', 'dog', 'bird']]);
    await panel.locator('.files a', { hasText: 'model.safetensors' }).waitFor();
    await screenshot(page, 'fcmae-04-timm-folder');
    // ONNX with options: a fixed batch of 2, float16 weights, opset 18; its metadata says so.
    await panel.getByLabel('Fixed ONNX batch size').check();
    await panel.getByLabel('ONNX batch size', { exact: true }).fill('2');
    await panel.getByLabel('Float16 ONNX weights').check();
    await panel.getByLabel('ONNX opset').selectOption('18');
    await panel.getByLabel('ONNX input size', { exact: true }).fill('64');
    await panel.getByRole('button', { name: 'Export ONNX' }).click();
    const meta = panel.locator('.files a', { hasText: 'timm-folder.onnx.json' });
    await meta.waitFor({ timeout: 60_000 });
    const m = await page.evaluate(async (href) => (await fetch(href)).json(), (await meta.getAttribute('href'))!);
    assert.deepEqual([m.batch, m.weights, m.opset, m.inputSize, m.labels], [2, 'float16', 18, 64, ['cat', 'dog', 'bird']]);
    await screenshot(page, 'fcmae-05-onnx-options');
    assert.deepEqual(pageErrors, []);
  });
});
