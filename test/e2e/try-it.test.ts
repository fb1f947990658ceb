// "Try it" in Chromium against `cnx serve`: images uploaded through the page's file input (web mode has no
// paths), one model (a checkpoint inside a run-folder layout, so its classes have names) and then two side by
// side (plus a V1 file): top-5 lists and Grad-CAM overlays appear for every image and model; the second call
// reuses the loaded model (`cnx explain --serve` keeps it). Screenshots go to test-results/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { parseArch } from '../../common/variants.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { textureDataset } from '../helpers/dataset.ts';
import { photo } from '../helpers/images.ts';
import { type Served, browserStep, ensureBuilt, findChromium, launchChromium, importDataset, openPage, screenshot, startServe } from './helpers.ts';

const CLASSES = ['T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Boot'];

async function writeModel(file: string, arch: string, seed: number): Promise<string> {
  const specs = convnextParams({ arch: parseArch(arch), numClasses: CLASSES.length, headInitScale: 20 });
  const values = initParams(specs, seed);
  await saveCheckpoint(file, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
  return file;
}

describe('Try it in Chromium', () => {
  const chromiumPath = findChromium();
  let dir = '';
  let served: Served;
  let browser: Browser;
  let page: Page;
  const files = { v2: '', v1: '', images: [] as string[] };
  const pageErrors: string[] = [];

  before(async () => {
    if (!chromiumPath) return;
    dir = mkdtempSync(join(tmpdir(), 'cnx-e2e-try-'));
    const run = join(dir, 'runs', 'r1');
    mkdirSync(join(run, 'checkpoints'), { recursive: true });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ classes: CLASSES }));
    writeFileSync(join(run, 'config.json'), JSON.stringify({ data: { manifest: join(dir, 'manifest.json') } }));
    files.images = [join(dir, 'first.png'), join(dir, 'second.jpg')];
    [files.v2, files.v1] = await Promise.all([
      writeModel(join(run, 'checkpoints', 'step-5.safetensors'), 'convnextv2_atto', 1),
      writeModel(join(dir, 'v1-atto.safetensors'), 'convnext_atto', 2),
      photo(11, 320, 240).png().toFile(files.images[0]!),
      photo(12, 200, 260).jpeg().toFile(files.images[1]!),
      textureDataset(join(dir, 'textures'), 64, 1, 2),
      ensureBuilt(),
    ]);
    served = await startServe({ workspace: join(dir, 'ws') });
    await importDataset(served, join(dir, 'textures'), 'textures');
    browser = await launchChromium(chromiumPath);
    page = await openPage(browser, { width: 1280, height: 1000 }, pageErrors);
  });

  after(async () => {
    await browser?.close();
    await served?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const step = browserStep(() => page);

  step('one model: uploaded images get a named top-5 and a Grad-CAM overlay', async () => {
    await page.goto(served.url); // sets the token cookie
    await page.goto(`${served.origin}/#/try`);
    await page.getByRole('heading', { name: 'Try it' }).waitFor();
    await page.getByLabel('Model A source').selectOption('file');
    await page.getByLabel('Model A file').fill(files.v2);
    await page.getByLabel('Image files').setInputFiles(files.images);
    await page.getByRole('list', { name: 'Chosen images' }).getByText('second.jpg').waitFor();
    const t0 = Date.now();
    await page.getByRole('button', { name: 'Explain' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('[data-testid=overlay]')].filter((i) => i.complete && i.naturalWidth === 224).length === 2);
    const first = Date.now() - t0;
    const top = page.locator('[data-testid=top5]').first().locator('li');
    assert.equal(await top.count(), 5);
    const names = await top.locator('.name').allInnerTexts();
    assert.ok(names.every((n) => CLASSES.includes(n)), `class names from the run's manifest: ${names.join(', ')}`);
    const ps = (await top.locator('.p').allInnerTexts()).map((s) => Number.parseFloat(s));
    assert.ok(ps.every((p, i) => i === 0 || p <= ps[i - 1]!), `sorted: ${ps.join(', ')}`);
    await screenshot(page, 't1-try-one-model', true);

    // The same request again: the model is loaded already.
    const t1 = Date.now();
    await page.getByRole('button', { name: 'Explain' }).click();
    await page.getByRole('button', { name: 'Explaining…' }).waitFor({ state: 'detached' });
    await page.locator('[data-testid=overlay]').nth(1).waitFor();
    console.log(`first call (load + 2 images) ${first} ms, again ${Date.now() - t1} ms`);
  });

  step('two models side by side: a V2 run checkpoint and a V1 file', async () => {
    await page.getByLabel('Model B source').selectOption('file');
    await page.getByLabel('Model B file').fill(files.v1);
    await page.getByRole('button', { name: 'Explain' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('[data-testid=overlay]')].filter((i) => i.complete && i.naturalWidth === 224).length === 4);
    const cards = page.locator('[data-testid=explained-model]');
    assert.equal(await cards.count(), 4);
    assert.match(await cards.nth(1).locator('h3').innerText(), /v1-atto · convnext_atto/);
    assert.equal(await cards.nth(1).locator('[data-testid=top5] li').count(), 5);
    assert.match(await cards.nth(1).locator('[data-testid=top5] li .name').first().innerText(), /^class \d$/, 'a bare file has numbered classes');
    await screenshot(page, 't2-try-two-models', true);
  });

  step("a dataset's image, picked from its thumbnails", async () => {
    for (const name of ['first.png', 'second.jpg']) await page.getByRole('button', { name: `Remove ${name}` }).click();
    await page.locator('summary', { hasText: 'From a dataset' }).click();
    await page.getByLabel('Dataset to pick from').selectOption('textures');
    const thumb = page.locator('.thumbs button').first();
    await thumb.waitFor();
    await thumb.click();
    await page.getByRole('list', { name: 'Chosen images' }).getByText(/^textures\/val\//).waitFor();
    await page.getByRole('button', { name: 'Explain' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('[data-testid=overlay]')].filter((i) => i.complete && i.naturalWidth === 224).length === 2);
    assert.equal(await page.locator('section.result').count(), 1);
    await screenshot(page, 't3-try-dataset-image', true);
    assert.deepEqual(pageErrors, []);
  });
});
