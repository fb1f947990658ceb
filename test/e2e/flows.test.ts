// The workbench's main flows in Debian's Chromium against `cnx serve`, on real images: import a slice of
// Fashion-MNIST, browse and edit it with undo, review its duplicates, pretrain with FCMAE on the ONNX engine
// (64 px: at 32 px an image is a single patch, which the job config refuses) and watch the loss chart
// update, look at the reconstructions, fine-tune from the pretrained checkpoint at 32 px and open the
// confusion matrix, compare the V2 FCMAE encoder with a V1 one (the paper's feature analysis) and export the
// fine-tuned model to ONNX. Screenshots go to test-results/ to be looked at.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { RunDetail, RunSummary, Task } from '../../common/api.ts';
import { type SliceInfo, fashionSlice } from './data.ts';
import { type Served, browserStep, callApi, ensureBuilt, findChromium, launchChromium, openPage, screenshot, startServe } from './helpers.ts';

describe('workbench flows in Chromium', () => {
  const chromiumPath = findChromium();
  let dir = '';
  let data: SliceInfo;
  let served: Served;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  let pretrainId = '';
  let finetuneId = '';
  let v1PretrainId = '';

  before(async () => {
    if (!chromiumPath) return;
    dir = mkdtempSync(join(tmpdir(), 'cnx-e2e-'));
    [data] = await Promise.all([fashionSlice(join(dir, 'fashion'), 12, 4, 3), ensureBuilt()]);
    served = await startServe({ workspace: join(dir, 'ws') });
    browser = await launchChromium(chromiumPath);
    page = await openPage(browser, { width: 1440, height: 920 }, pageErrors);
    page.on('console', (m) => m.type() === 'warning' && /contract/.test(m.text()) && pageErrors.push(m.text()));
  });

  after(async () => {
    await browser?.close();
    await served?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Waits (through the API) until a run has finished. */
  async function waitForRun(runId: string, timeoutMs = 240_000): Promise<RunSummary> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = (await callApi<RunSummary[]>(served, 'runs.list', {})).find((r) => r.id === runId)!;
      if (['completed', 'failed', 'cancelled'].includes(run.state)) return run;
      if (Date.now() > deadline) throw new Error(`run ${runId} is still ${run.state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  // Every step needs the browser: each checks it first, so a missing Chromium skips them all with the reason.
  const step = browserStep(() => page);

  step('the empty workbench says what to do first', async () => {
    await page.goto(served.url);
    await page.getByRole('heading', { name: 'No datasets yet' }).waitFor();
    await screenshot(page, '01-datasets-empty');
  });

  step('an import that cannot work shows the reason where it was started', async () => {
    await page.locator('#import-source').fill(join(dir, 'no-such-folder'));
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const failed = page.locator('.task[data-state="failed"]');
    await failed.waitFor();
    assert.match(await failed.innerText(), /no-such-folder/);
    await failed.getByRole('button', { name: 'Dismiss' }).click();
  });

  step('importing a folder of Fashion-MNIST PNGs shows progress, then the dataset with its duplicates counted', async () => {
    await page.locator('#import-source').fill(data.root);
    await page.locator('#import-name').fill('fashion');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const done = page.locator('.task[data-state="completed"]');
    await done.waitFor({ timeout: 120_000 });
    const text = await done.innerText();
    assert.match(text, new RegExp(`${data.train + data.val} images in 10 classes`));
    assert.match(text, /3 exact/);
    await screenshot(page, '02-import-done');
    await done.getByRole('button', { name: 'Open' }).click();
    await page.getByRole('heading', { name: 'fashion' }).waitFor();
  });

  step('the grid shows thumbnails; an image opens, its split is edited and Ctrl+Z undoes it', async () => {
    const grid = page.getByRole('grid', { name: 'Images of fashion' });
    await grid.waitFor();
    // Thumbnails are rendered on first request: wait until every one on screen has arrived.
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll<HTMLImageElement>('[role=grid] img')].filter((i) => i.getBoundingClientRect().bottom < innerHeight);
      return imgs.length >= 20 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    }, undefined, { timeout: 60_000 });
    assert.match(await page.locator('.count-line').innerText(), new RegExp(`^${data.train + data.val} images`));
    await screenshot(page, '03-dataset-grid');

    await grid.locator('[role=gridcell]').first().dblclick();
    const detail = page.getByRole('complementary', { name: 'Image detail' });
    await detail.waitFor();
    await page.waitForFunction(() => (document.querySelector<HTMLImageElement>('.detail .picture img')?.naturalWidth ?? 0) > 0);
    await detail.getByRole('group', { name: 'Split' }).getByRole('button', { name: 'test' }).click();
    await page.locator('.undo').waitFor();
    assert.match(await page.locator('.undo').innerText(), /test/);
    await screenshot(page, '04-image-detail');
    // The augmentation preview: eight fine-tuning draws from the loader's own transform, then the FCMAE crops.
    await detail.getByText('Augmentation preview').click();
    const previews = detail.getByLabel('Augmented versions').locator('img');
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.previews img')].filter((i) => i.complete && i.naturalWidth === 224).length === 8, undefined, { timeout: 60_000 });
    const first = await previews.first().getAttribute('src');
    await detail.getByLabel('Preview transform').selectOption('pretrain');
    await page.waitForFunction((before) => { const imgs = [...document.querySelectorAll<HTMLImageElement>('.previews img')]; return imgs[0]?.getAttribute('src') !== before && imgs.every((i) => i.complete && i.naturalWidth === 224); }, first, { timeout: 60_000 });
    assert.match((await previews.first().getAttribute('src'))!, /mode=pretrain/);
    await screenshot(page, '04b-augmentation-preview');
    await page.keyboard.press('Escape');
    await grid.focus();
    await page.keyboard.press('Control+z');
    await page.waitForFunction(() => !document.querySelector('.undo'));
    const stats = await callApi<{ splits: { test: number } }>(served, 'datasets.stats', { name: 'fashion' });
    assert.equal(stats.splits.test, 0, 'the undo put the image back');
  });

  step('filters narrow the grid (label and split come from the URL)', async () => {
    await page.locator('#f-label').selectOption('Bag');
    await page.waitForFunction(() => /^\d+ images/.test(document.querySelector('.count-line')?.textContent ?? '') && location.hash.includes('label=Bag'));
    await page.waitForFunction(() => document.querySelector('.count-line')?.textContent?.startsWith('16 images'));
    await page.locator('#f-split').selectOption('val');
    await page.waitForFunction(() => document.querySelector('.count-line')?.textContent?.startsWith('4 images'));
  });

  step('duplicate groups flag copies whose labels disagree; keeping one excludes the others', async () => {
    await page.getByRole('tab', { name: 'Duplicates' }).click();
    const groups = page.locator('.group[data-kind="exact"]');
    await groups.first().waitFor();
    assert.equal(await groups.count(), 3);
    assert.equal(await page.locator('.group[data-kind="exact"] .chip', { hasText: 'labels disagree' }).count(), 3);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.group:first-child img')].every((i) => i.complete && i.naturalWidth > 0));
    await screenshot(page, '05-duplicates');
    await groups.first().getByRole('button', { name: 'Keep this one' }).last().click();
    await page.waitForFunction(() => /1 excluded/.test(document.querySelector('.facts-line')?.textContent ?? ''));
  });

  step('class balance shows every class by split', async () => {
    await page.getByRole('tab', { name: 'Balance & splits' }).click();
    await page.locator('.bars li').first().waitFor();
    assert.equal(await page.locator('.bars li').count(), 10);
    await screenshot(page, '06-balance');
  });

  step('the training form explains what is wrong, then starts a short FCMAE run on the ONNX engine', async () => {
    await page.getByRole('link', { name: /Train/ }).click();
    await page.locator('#train-dataset').selectOption('fashion');
    await page.locator('#train-size').fill('100');
    await page.getByText('must be a multiple of 32').waitFor();
    await page.locator('#train-size').fill('32');
    await page.getByText(/FCMAE at 32 px has 1 patches/).waitFor();
    await page.locator('#train-size').fill('64');
    await page.locator('#train-batch').fill('8');
    await page.locator('#train-unit').selectOption('steps');
    await page.locator('#train-length').fill('6');
    await page.locator('#train-ckpt').fill('2');
    await page.locator('#train-engine').selectOption('onnx');
    await page.locator('#train-device').selectOption('cpu');
    await page.locator('#train-workers').fill('0');
    await page.locator('#train-name').fill('fcmae atto 64px');
    const summary = page.getByRole('complementary', { name: 'Summary' });
    assert.match(await summary.innerText(), /memory\s+≈ [\d.]+ MiB \(estimate\)/);
    assert.match(await summary.innerText(), /time\s+unknown until a convnextv2_atto pretrain run at 64 px has run here/);
    await screenshot(page, '07-train-pretrain-form');
    await page.getByRole('button', { name: 'Start pretraining' }).click();
    await page.waitForURL(/#\/runs\/[\w-]+/);
    pretrainId = /#\/runs\/([\w-]+)/.exec(page.url())![1]!;
  });

  step('the run page follows the run live: the loss chart redraws as steps arrive', async () => {
    const loss = page.locator('figure.chart', { hasText: 'Loss' }).locator('canvas');
    const stepText = () => document.querySelector('.status .steps')?.textContent ?? '';
    await page.waitForFunction(() => /^[1-9]/.test(document.querySelector('.status .steps')?.textContent ?? ''), undefined, { timeout: 180_000 });
    const first = await loss.evaluate((c: HTMLCanvasElement) => c.toDataURL());
    const s0 = Number(/^(\d+)/.exec(await page.evaluate(stepText))![1]);
    await page.waitForFunction((s) => Number(/^(\d+)/.exec(document.querySelector('.status .steps')?.textContent ?? '')?.[1]) > s, s0, { timeout: 120_000 });
    await page.waitForTimeout(300);
    assert.notEqual(await loss.evaluate((c: HTMLCanvasElement) => c.toDataURL()), first, 'the chart redrew with the new step');
    await screenshot(page, '08-run-live');
    await page.locator('section.detail[data-state="completed"]').waitFor({ timeout: 180_000 });
    const run = (await callApi<RunSummary[]>(served, 'runs.list', {})).find((r) => r.id === pretrainId)!;
    assert.equal(run.step, 6);
    assert.equal(run.engine, 'onnx');
    await screenshot(page, '09-run-done');
  });

  step('reconstructions show the masked images at each checkpoint', async () => {
    await page.getByRole('button', { name: 'Reconstructions' }).click();
    await page.waitForURL(/#\/reconstructions\//);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.grid-figure img')].some((i) => i.complete && i.naturalWidth > 0));
    assert.equal(await page.locator('.strip [role=option]').count(), 3);
    await page.getByLabel('next to the first').check();
    await page.waitForFunction(() => document.querySelectorAll('.grid-figure img').length === 2 && [...document.querySelectorAll<HTMLImageElement>('.grid-figure img')].every((i) => i.naturalWidth > 0));
    await screenshot(page, '10-reconstructions');
    // The explorer: the first and last checkpoints on new images under a new mask, with error heatmaps.
    await page.getByLabel('Mask ratio').fill('0.5');
    await page.getByRole('button', { name: 'New mask' }).click();
    await page.getByRole('button', { name: 'Other images' }).click();
    await page.getByRole('button', { name: 'Reconstruct', exact: true }).click();
    const explored = page.getByTestId('explorer-result');
    await explored.waitFor({ timeout: 120_000 });
    assert.deepEqual(await explored.locator('figcaption b').allInnerTexts(), ['step 2', 'step 6']);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('[data-testid=explorer-result] img')].every((i) => i.complete && i.naturalWidth === 5 * 64));
    assert.match(await explored.innerText(), /mask ratio 0\.5 · seed 1 · 4 images/);
    await explored.scrollIntoViewIfNeeded();
    await screenshot(page, '10b-reconstruction-explorer');
  });

  step('a V1 FCMAE run with the same settings is queued through the API (for the comparison)', async () => {
    const v2 = await callApi<RunDetail>(served, 'runs.get', { runId: pretrainId });
    const { runDir: _r, resume: _s, ...config } = v2.config;
    const v1 = await callApi<RunSummary>(served, 'runs.create', { config: { ...config, model: { ...config.model, arch: 'convnext_atto' } }, dataset: 'fashion', engine: 'onnx', name: 'fcmae atto V1 64px' });
    v1PretrainId = v1.id;
  });

  step('fine-tuning starts from the pretrained checkpoint and evaluates into a confusion matrix', async () => {
    await page.goto(`${served.origin}/#/runs/${pretrainId}`);
    await page.getByRole('button', { name: 'Fine-tune from it' }).click();
    await page.waitForURL(/#\/train/);
    await page.locator('#train-init-run').waitFor();
    assert.equal(await page.locator('#train-init-run').inputValue(), pretrainId);
    await page.locator('#train-size').fill('32');
    await page.locator('#train-batch').fill('8');
    await page.locator('#train-unit').selectOption('steps');
    await page.locator('#train-length').fill('4');
    await page.locator('#train-eval-every').fill('2');
    await page.locator('#train-engine').selectOption('onnx');
    await page.locator('#train-device').selectOption('cpu');
    await page.locator('#train-workers').fill('0');
    await page.locator('#train-name').fill('finetune atto 32px');
    await screenshot(page, '11-train-finetune-form');
    await page.getByRole('button', { name: 'Start fine-tuning' }).click();
    await page.waitForURL(/#\/runs\/[\w-]+/);
    finetuneId = /#\/runs\/([\w-]+)/.exec(page.url())![1]!;
    assert.notEqual(finetuneId, pretrainId);
    await page.locator('section.detail[data-state="completed"]').waitFor({ timeout: 240_000 });
    await page.getByRole('tab', { name: 'Evaluation' }).click();
    const matrix = page.getByRole('img', { name: /Confusion matrix of 10 classes/ });
    await matrix.waitFor();
    assert.ok((await page.locator('.evals tbody tr').count()) >= 2);
    await screenshot(page, '12-confusion');
  });

  step('a mistake cell shows its misclassified images; a diagonal cell opens its class in the evaluated split', async () => {
    const commonest = page.locator('.detail li', { has: page.locator('button.link') }).first();
    const count = Number(/\s(\d+)\s\(/.exec(await commonest.innerText())![1]);
    await commonest.locator('button.link').click();
    const gallery = page.getByRole('figure', { name: 'Misclassified images' });
    await gallery.waitFor();
    assert.equal(await gallery.locator('img').count(), Math.min(count, 200), 'one thumbnail per image in the cell');
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.gallery img')].every((i) => i.complete && i.naturalWidth > 0));
    await screenshot(page, '13-confusion-mistakes');

    const matrix = page.getByRole('img', { name: /Confusion matrix of 10 classes/ });
    await matrix.focus();
    for (const key of ['ArrowDown', 'ArrowDown', 'ArrowRight', 'ArrowRight']) await page.keyboard.press(key);
    const truth = await page.locator('.readout b').first().innerText();
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/datasets\/fashion\?/);
    const query = new URLSearchParams(page.url().split('?')[1]);
    assert.equal(query.get('label'), truth);
    assert.equal(query.get('split'), 'val');
    await page.waitForFunction(() => document.querySelector('.count-line')?.textContent?.startsWith('4 images'));
    await screenshot(page, '13b-confusion-cell-images');
  });

  step('the V1-vs-V2 comparison runs the feature analysis and shows its plot, grids and tables', async () => {
    const v1 = await waitForRun(v1PretrainId);
    assert.equal(v1.state, 'completed');
    await page.goto(`${served.origin}/#/compare`);
    await page.getByRole('heading', { name: 'Compare V1 and V2' }).waitFor();
    // The suggestion pairs the newest V1 and V2 runs of one kind: the two FCMAE runs.
    await page.waitForFunction(([a, b]) => (document.querySelector('select[aria-label="Run A"]') as HTMLSelectElement | null)?.value === a && (document.querySelector('select[aria-label="Run B"]') as HTMLSelectElement | null)?.value === b, [v1PretrainId, pretrainId]);
    await page.waitForFunction(() => /^step 6/.test((document.querySelector('select[aria-label="Model A checkpoint"]') as HTMLSelectElement | null)?.selectedOptions[0]?.textContent ?? ''));
    await page.getByLabel('Analysis images').fill('8');
    assert.equal(await page.getByLabel('Analysis size').inputValue(), '64', 'the size of the runs');
    await page.getByRole('button', { name: 'Run analysis' }).click();
    const result = page.getByTestId('analysis-result');
    await result.waitFor({ timeout: 180_000 });
    const plot = page.getByRole('img', { name: /Feature cosine distance per layer of .*V1.* and V2 / });
    await plot.waitFor();
    assert.equal(await plot.locator('path').count(), 2, 'one line per model');
    assert.equal(await plot.locator('circle').count(), 24, 'a point per block of each atto');
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.grid-figure img')].filter((i) => i.complete && i.naturalWidth > 0).length === 2);
    assert.match(await result.locator('table.summary tbody tr').nth(0).innerText(), /FCMAE encoder/);
    assert.match(await result.locator('table.summary tbody tr').nth(0).innerText(), /no GRN \(V1\)/);
    const tasks = await callApi<Task[]>(served, 'tasks.list', { kind: 'analysis' });
    assert.equal(tasks[0]?.state, 'completed');
    const csv = await page.evaluate(async (url) => (await fetch(url)).text(), `/files/task/${tasks[0]!.id}/cosine-distance.csv`);
    assert.equal(csv.split('\n').filter(Boolean).length, 13, 'a header and 12 blocks');
    await result.scrollIntoViewIfNeeded();
    await screenshot(page, '15-compare-analysis');
    await result.locator('.grids').scrollIntoViewIfNeeded();
    await screenshot(page, '15b-compare-grids');
  });

  step('models export the fine-tuned checkpoint to ONNX and offer the files', async () => {
    await page.goto(`${served.origin}/#/models/${finetuneId}`);
    await page.locator('.ckpts tbody tr').first().waitFor();
    await page.getByRole('button', { name: 'Export ONNX' }).click();
    const files = page.locator('.exports .files a');
    await files.first().waitFor({ timeout: 120_000 });
    const names = await files.allInnerTexts();
    assert.equal(names.length, 2);
    assert.match(names[0]!, /^finetune-atto-32px-step\d+\.onnx$/);
    assert.equal(names[1], `${names[0]}.json`);
    const meta = await page.evaluate(async (href) => (await fetch(href)).json(), (await files.nth(1).getAttribute('href'))!);
    assert.equal(meta.labels.length, 10);
    assert.ok(meta.labels.includes('Bag'));
    await screenshot(page, '14-models-export');
    await page.goto(`${served.origin}/#/models/${pretrainId}`);
    await page.getByRole('button', { name: 'Export ONNX' }).waitFor();
    assert.ok(await page.getByRole('button', { name: 'Export ONNX' }).isDisabled(), 'an FCMAE checkpoint has no head to export as ONNX');
  });

  step('a checkpoint file is imported, described, and starts a fine-tuning', async () => {
    const [ckpt] = await callApi<{ path: string; last: boolean }[]>(served, 'checkpoints.list', { runId: finetuneId }).then((l) => l.filter((c) => c.last));
    await page.goto(`${served.origin}/#/models`);
    await page.getByLabel('Checkpoint file to import').fill(join(dir, 'nothing-here.pt'));
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: /nothing-here\.pt: no such checkpoint file/ }).waitFor();
    await page.getByLabel('Checkpoint file to import').fill(ckpt!.path);
    await page.getByLabel('Name of the imported checkpoint').fill('fashion atto (imported)');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const item = page.getByRole('list', { name: 'Imported checkpoints' }).getByRole('button', { name: /fashion atto \(imported\)/ });
    await item.waitFor({ timeout: 60_000 });
    await item.click();
    await page.getByText('convnextv2_atto · classifier · 10 classes').waitFor();
    await page.locator('#imported-title').scrollIntoViewIfNeeded();
    await screenshot(page, '14b-imported-checkpoint');
    await page.getByRole('button', { name: 'Fine-tune from it' }).click();
    await page.waitForURL(/#\/train/);
    await page.locator('#train-init-file').waitFor();
    assert.equal(await page.locator('#train-init-file').inputValue(), ckpt!.path);
  });

  step('settings and the dark theme', async () => {
    await page.keyboard.press('t');
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
    await page.getByRole('link', { name: /Settings/ }).click();
    await page.getByRole('heading', { name: 'This machine' }).waitFor();
    await page.locator('.engines').waitFor({ timeout: 60_000 });
    await screenshot(page, '16-settings-dark');
    await page.keyboard.press('3');
    await page.waitForURL(/#\/runs/);
    await page.goto(`${served.origin}/#/runs/${finetuneId}`);
    await page.locator('figure.chart').first().waitFor();
    await page.waitForTimeout(500);
    await screenshot(page, '17-runs-dark');
    assert.deepEqual(pageErrors, []);
  });
});
