// The first flow (import a folder of images, open the dataset) in the desktop app, driven by Playwright's
// Electron support. It needs Electron's binary, which installs with ELECTRON_SKIP_BINARY_DOWNLOAD=1 do not
// fetch, and the main process entry: without either it reports itself skipped and says which is missing.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { _electron } from 'playwright-core';
import { electronBinary } from '../../bin/electron.mjs';
import { ELECTRON_MAIN } from '../../electron.config.ts';
import { fashionSlice } from './data.ts';
import { REPO, ensureBuilt, screenshot } from './helpers.ts';

test('desktop app: importing a folder of Fashion-MNIST PNGs opens the dataset with its images', async (t) => {
  const exe = electronBinary();
  if (!exe) return t.skip("no Electron binary (installed with ELECTRON_SKIP_BINARY_DOWNLOAD=1, or its download failed); flows.test.ts runs the same UI in Chromium");
  const main = join(REPO, ELECTRON_MAIN);
  if (!existsSync(main)) return t.skip(`no Electron main process entry (${ELECTRON_MAIN}) in this checkout yet`);

  const dir = mkdtempSync(join(tmpdir(), 'cnx-electron-'));
  const [data] = await Promise.all([fashionSlice(join(dir, 'fashion'), 4, 2, 1), ensureBuilt(), ensureBuilt('preload')]);
  const app = await _electron.launch({ executablePath: exe, args: [main], cwd: REPO, env: { ...process.env, CNX_WORKSPACE: join(dir, 'ws'), OMP_NUM_THREADS: '1' } });
  try {
    const page = await app.firstWindow();
    page.setDefaultTimeout(60_000);
    await page.getByRole('heading', { name: 'Datasets', exact: true }).waitFor();
    await page.locator('#import-source').fill(data.root);
    await page.locator('#import-name').fill('fashion');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const done = page.locator('.task[data-state="completed"]');
    await done.waitFor({ timeout: 120_000 });
    assert.match(await done.innerText(), new RegExp(`${data.train + data.val} images in 10 classes`));
    await done.getByRole('button', { name: 'Open' }).click();
    await page.getByRole('grid', { name: 'Images of fashion' }).waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('[role=grid] img')].some((i) => i.complete && i.naturalWidth > 0));
    await screenshot(page, 'electron-01-dataset');
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
