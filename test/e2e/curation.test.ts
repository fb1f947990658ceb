// Curation with a model in Chromium against `cnx serve`: import a Fashion-MNIST slice, run "Find issues"
// with a checkpoint file (a freshly initialized convnextv2_atto: any weights give a map and probes), then
// walk the map (hover thumbnail, box select opening the images with the grid's edits and undo), the review
// of suspected labels (keyboard keep and accept, both in the edit history), the outliers, and the semantic
// groups in the duplicate review. Screenshots go to test-results/.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { DatasetDetail } from '../../common/api.ts';
import { parseArch } from '../../common/variants.ts';
import { saveCheckpoint } from '../../native-worker/checkpoint/load.ts';
import { makeTensor } from '../../native-worker/checkpoint/tensor.ts';
import { convnextParams } from '../../native-worker/nn/convnext.ts';
import { initParams } from '../../native-worker/nn/params.ts';
import { fashionSlice } from './data.ts';
import { type Served, browserStep, callApi, ensureBuilt, findChromium, importDataset, launchChromium, openPage, screenshot, startServe } from './helpers.ts';

describe('curation in Chromium', () => {
  const chromiumPath = findChromium();
  let dir = '';
  let served: Served;
  let browser: Browser;
  let page: Page;
  let weights = '';
  const pageErrors: string[] = [];

  before(async () => {
    if (!chromiumPath) return;
    dir = mkdtempSync(join(tmpdir(), 'cnx-e2e-curation-'));
    const [data] = await Promise.all([fashionSlice(join(dir, 'fashion'), 12, 4, 3), ensureBuilt()]);
    const specs = convnextParams({ arch: parseArch('convnextv2_atto'), numClasses: 10 });
    const values = initParams(specs, 3);
    weights = join(dir, 'atto.safetensors');
    await saveCheckpoint(weights, new Map(specs.map((p) => [p.name, makeTensor([...p.shape], values.get(p.name)!)])));
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

  const step = browserStep(() => page);

  const edits = async () => (await callApi<DatasetDetail>(served, 'datasets.get', { name: 'fashion' })).edits;

  step('Find issues runs embedding and curation as a task and shows the map', async () => {
    await page.goto(served.url); // sets the token cookie
    await page.goto(`${served.origin}/#/datasets/fashion?tab=curation`);
    await page.getByRole('button', { name: 'File', exact: true }).click();
    await page.getByLabel('Checkpoint file').fill(weights);
    await page.getByLabel('Input size').fill('32');
    await page.getByRole('button', { name: 'Find issues' }).click();
    await page.locator('canvas[aria-label="Map of the dataset\'s embeddings"]').waitFor({ timeout: 180_000 });
    const facts = await page.locator('.curation .facts-line').innerText();
    assert.match(facts, /163 images · convnextv2_atto at 32 px/);
    assert.match(facts, /embed [\d.]+ s, probes [\d.]+ s/);
    await screenshot(page, 'c1-curation-map');
  });

  step('hovering a point shows its thumbnail; a box selection opens the images with the edits, undoable', async () => {
    const canvas = page.locator('canvas[aria-label="Map of the dataset\'s embeddings"]');
    const box = (await canvas.boundingBox())!;
    // Sweep until the pointer is over a point.
    let found = false;
    for (let y = 0.3; y <= 0.7 && !found; y += 0.02) {
      for (let x = 0.3; x <= 0.7 && !found; x += 0.02) {
        await page.mouse.move(box.x + box.width * x, box.y + box.height * y);
        found = await page.getByRole('tooltip').isVisible();
      }
    }
    assert.ok(found, 'a tooltip over some point');
    await page.waitForFunction(() => { const i = document.querySelector<HTMLImageElement>('[role=tooltip] img'); return !!i && i.complete && i.naturalWidth > 0; });
    await screenshot(page, 'c2-curation-hover');
    await page.getByRole('button', { name: 'Box' }).click();
    await page.mouse.move(box.x + 5, box.y + 5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    const selected = page.getByRole('grid', { name: 'Selected images' });
    await selected.waitFor();
    const n = await selected.locator('img').count();
    assert.ok(n > 0, 'the box caught some points');
    await screenshot(page, 'c3-curation-box-selection');
    await page.getByRole('toolbar', { name: 'Selection' }).getByRole('button', { name: 'val' }).click();
    const undo = page.locator('button.undo', { hasText: 'to val' });
    await undo.waitFor();
    assert.equal((await edits())[0]!.summary, `move ${n} image(s) to val`);
    await screenshot(page, 'c3b-curation-moved');
    await undo.click();
    await undo.waitFor({ state: 'detached' });
    assert.ok((await edits())[0]!.undoneAt, 'the move is undone');
  });

  step('the review panel: keep (K) and accept (A) are edits in the history', async () => {
    await page.getByRole('tab', { name: /Review suspected labels \(\d+\)/ }).click();
    const review = page.getByRole('region', { name: 'Review suspected labels' });
    await review.locator('.given').waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.review img')].every((i) => i.complete && i.naturalWidth > 0));
    await screenshot(page, 'c4-review');
    const firstPath = await review.locator('figcaption').innerText();
    await page.keyboard.press('k');
    await page.waitForFunction((p) => document.querySelector('.review figcaption')?.textContent !== p, firstPath);
    const suggested = await review.locator('.suggested').innerText();
    const second = await review.locator('figcaption').innerText();
    await page.keyboard.press('a');
    await page.waitForFunction((p) => document.querySelector('.review figcaption')?.textContent !== p, second);
    const log = await edits();
    assert.match(log[1]!.summary, new RegExp(`reviewed: kept the label of ${firstPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.equal(log[0]!.summary, `relabel 1 image(s) as ${suggested}`);
    await screenshot(page, 'c5-review-after-accept');
  });

  step('outliers list and the semantic groups in the duplicate review', async () => {
    await page.getByRole('tab', { name: 'Outliers' }).click();
    const outliers = page.getByRole('list', { name: 'Outliers' });
    await outliers.waitFor();
    assert.ok((await outliers.locator('img').count()) >= 20);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.outliers img')].slice(0, 20).every((i) => i.complete && i.naturalWidth > 0));
    await screenshot(page, 'c6-outliers');
    await page.goto(`${served.origin}/#/datasets/fashion?tab=duplicates`);
    await page.getByText(/\d+ exact · \d+ near · \d+ semantic groups/).waitFor();
    await screenshot(page, 'c7-duplicates-with-semantic');
    assert.deepEqual(pageErrors, []);
  });
});
