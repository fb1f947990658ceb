// Shared by the browser tests: Debian's Chromium through playwright-core (never a downloaded browser), the
// renderer built when its sources are newer than dist/renderer (bin/build.mjs, as `npm start` does), `cnx serve` on a free port with a temporary
// workspace, and screenshots under test-results/ for people to look at.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';

export const REPO = join(import.meta.dirname, '..', '..');
export const RESULTS = join(REPO, 'test-results');
const CHROMIUM = process.env.CNX_CHROMIUM ?? '/usr/bin/chromium';

/** Chromium's path when it is installed. */
export function findChromium(): string | null {
  return existsSync(CHROMIUM) ? CHROMIUM : null;
}

/**
 * Chromium's path, or null after marking the test skipped with the reason. Under CI=true a missing browser
 * fails the test instead: CI installs it, so its absence is a broken setup, not a reason to pass.
 */
export function needChromium(t: TestContext): string | null {
  if (findChromium()) return CHROMIUM;
  const reason = `Chromium not found at ${CHROMIUM} (install Debian's: apt-get install -y chromium, or set CNX_CHROMIUM)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run the browser tests`);
  t.skip(reason);
  return null;
}

export async function launchChromium(executablePath: string): Promise<Browser> {
  // Root (containers, CI) cannot use Chromium's sandbox; elsewhere it stays on.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath, headless: true, args: [...args, '--disable-gpu-sandbox', '--force-color-profile=srgb'] });
}

export { ensureBuilt } from '../../bin/build.mjs';

export interface Served {
  /** The URL with the token, as cnx serve printed it. */
  url: string;
  origin: string;
  token: string;
  workspace: string;
  output: () => string;
  stop(): Promise<void>;
}

/** Starts `cnx serve --port 0` on a fresh workspace and waits for the URL line on its stdout. */
export async function startServe(o: { workspace?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Served> {
  const workspace = o.workspace ?? mkdtempSync(join(tmpdir(), 'cnx-e2e-ws-'));
  const child: ChildProcess = spawn(process.execPath, [join(REPO, 'bin', 'cnx.mjs'), 'serve', '--port', '0', '--workspace', workspace], {
    cwd: REPO,
    env: { ...process.env, OMP_NUM_THREADS: '1', ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (log += s));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`cnx serve printed no URL within 60 s:\n${log}`)), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^(http:\/\/\S+\?token=\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cnx serve exited (${code}) before printing its URL:\n${log}`));
    });
  });
  const u = new URL(url);
  return {
    url,
    origin: u.origin,
    token: u.searchParams.get('token')!,
    workspace,
    output: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }
      if (!o.workspace) rmSync(workspace, { recursive: true, force: true });
    },
  };
}

/** Saves a full-page screenshot as test-results/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string, fullPage = false): Promise<string> {
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** Calls the API with the token, for test set-up and checks outside the page. */
export async function callApi<T>(s: Served, method: string, request: unknown = {}): Promise<T> {
  const res = await fetch(`${s.origin}/api/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s.token}` },
    body: JSON.stringify(request),
  });
  const body = (await res.json()) as { ok: boolean; value?: T; error?: { message: string } };
  if (!body.ok) throw new Error(`${method}: ${body.error?.message}`);
  return body.value as T;
}

/** Imports a folder as a catalog dataset and waits until its scan is complete (or fails the test). */
export async function importDataset(s: Served, source: string, name: string, timeoutMs = 120_000): Promise<void> {
  await callApi(s, 'datasets.import', { source, name });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await callApi<{ name: string; scanState: string }[]>(s, 'datasets.list', {});
    if (list.find((d) => d.name === name)?.scanState === 'complete') return;
    if (Date.now() > deadline) throw new Error(`the import of '${name}' from ${source} did not complete within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A page with the browser tests' settings; page errors are collected into `errors`. */
export async function openPage(browser: Browser, viewport: { width: number; height: number }, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => errors.push(e.message));
  return page;
}

/**
 * A test step of a browser session: skipped (with the reason) where `need` says a tool is missing, and failing
 * clearly when the session's set-up did not give a page.
 */
export function browserStep(getPage: () => Page | undefined, need: (t: TestContext) => unknown = needChromium) {
  return (name: string, fn: () => Promise<void>) =>
    test(name, async (t) => {
      if (!need(t)) return;
      if (!getPage()) throw new Error('the browser session did not start (see the first failure)');
      await fn();
    });
}
