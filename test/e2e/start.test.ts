// `npm start` where Electron cannot run: the start script itself serves the workbench in web mode, says why
// in one sentence, prints the tokened URL, hands it to the default browser ($BROWSER here, a script that
// records it), the page loads in Chromium (Settings show how the PyTorch engine's Python was chosen), and
// Ctrl-C stops it cleanly. The UI build is reused when dist/ is newer than its sources (bin/build.mjs).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, launchChromium, needChromium, screenshot } from './helpers.ts';

test('npm start without Electron serves the workbench, opens the browser and stops cleanly on Ctrl-C', async (t) => {
  const chromium = needChromium(t);
  if (!chromium) return;
  assert.equal(JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).scripts.start, 'node bin/start.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'cnx-start-'));
  const opened = join(dir, 'opened.txt');
  const browserScript = join(dir, 'browser.sh');
  writeFileSync(browserScript, `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`);
  chmodSync(browserScript, 0o755);
  // An Electron dist folder that does not exist: web mode even on a machine where Electron is installed.
  const env = { ...process.env, ELECTRON_OVERRIDE_DIST_PATH: join(dir, 'no-electron'), BROWSER: browserScript, OMP_NUM_THREADS: '1' };
  const child = spawn(process.execPath, [join(REPO, 'bin', 'start.mjs'), '--port', '0', '--workspace', join(dir, 'ws')], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let [out, err] = ['', ''];
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const browser = await launchChromium(chromium);
  try {
    const url = await new Promise<string>((resolve, reject) => {
      // A fresh clone builds the UI first (about a minute on two cores); later starts reuse dist/.
      const timer = setTimeout(() => reject(new Error(`no URL within 240 s:\n${out}\n${err}`)), 240_000);
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        const m = /^(http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)$/m.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`npm start exited (${code}) before printing a URL:\n${out}\n${err}`)));
      void exited.finally(() => clearTimeout(timer));
    });
    assert.match(out, /^npm start: web mode, because Electron's binary is not installed [^\n]*\.$/m);
    for (let i = 0; i < 100 && !existsSync(opened); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(readFileSync(opened, 'utf8'), url, 'the default browser was asked to open the tokened URL');

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.getByRole('heading', { name: 'No datasets yet' }).waitFor({ timeout: 30_000 });
    await page.getByRole('link', { name: /Settings/ }).click();
    await page.locator('.engines').waitFor({ timeout: 90_000 });
    assert.match(await page.locator('.engines').innerText(), /interpreter .+ \((found: the first of|set by CNX_PYTHON|none found)/);
    await screenshot(page, 'start-web-mode-settings');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, `exit code after Ctrl-C:\n${err}`);
    assert.match(err, /stopping: pausing running jobs/);
  }
});
