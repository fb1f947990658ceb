// Frame times of the UI's big components in Debian's Chromium: the virtualized thumbnail grid over
// 100k images (a steady fling and random jumps), the canvas line chart over a million points (hover
// read-out, live appends, and its raw draw cost), and the dataset map's 100k points panned and zoomed.
// Prints a table and writes test-results/ui-bench.json plus a screenshot. Run with `npm run bench:ui`.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import type {} from '../../renderer/bench/frames.ts';
import { RESULTS, ensureBuilt, findChromium, launchChromium, screenshot } from '../e2e/helpers.ts';

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

const chromium = findChromium();
if (!chromium) {
  console.error('bench:ui needs Chromium (apt-get install -y chromium, or set CNX_CHROMIUM)');
  process.exit(2);
}
const root = await ensureBuilt('bench');
// A static server: module scripts do not load from file:// URLs.
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
  try {
    const data = await readFile(join(root, path === '/' ? 'index.html' : path));
    res.writeHead(200, { 'Content-Type': TYPES[extname(path)] ?? (path === '/' ? 'text/html' : 'application/octet-stream') });
    res.end(data);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const browser = await launchChromium(chromium);
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on('console', (m) => console.error(`page: ${m.text()}`));
  await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => window.bench?.ready(), undefined, { timeout: 120_000 });
  const results = {
    chromium: browser.version(),
    gridItems: 100_000,
    chartPoints: await page.evaluate(() => window.bench.points()),
    renderedCells: await page.evaluate(() => window.bench.renderedCells()),
    gridFling: await page.evaluate(() => window.bench.scrollGrid(5000, 120)),
    gridJumps: await page.evaluate(() => window.bench.jumpGrid(5000)),
    chartHover: await page.evaluate(() => window.bench.hoverChart(5000)),
    chartLiveAppend: await page.evaluate(() => window.bench.appendChart(5000, 200)),
    chartDrawCost: await page.evaluate(() => window.bench.drawCost(100)),
    mapPanZoom: await page.evaluate(() => window.bench.panZoomMap(5000)),
    mapDrawCost: await page.evaluate(() => window.bench.mapDrawCost(100)),
  };
  results.chartPoints = await page.evaluate(() => window.bench.points());
  await screenshot(page, 'bench-grid-and-chart');
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'ui-bench.json'), `${JSON.stringify(results, null, 2)}\n`);
  const row = (name: string, s: { frames: number; meanMs: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number; over25Ms: number; meanWorkMs: number }) =>
    `${name.padEnd(34)} ${String(s.frames).padStart(6)} ${s.meanMs.toFixed(1).padStart(7)} ${s.p50Ms.toFixed(1).padStart(7)} ${s.p95Ms.toFixed(1).padStart(7)} ${s.p99Ms.toFixed(1).padStart(7)} ${s.maxMs.toFixed(1).padStart(7)} ${String(s.over25Ms).padStart(6)} ${s.meanWorkMs.toFixed(2).padStart(8)}`;
  console.log(`Chromium ${results.chromium}; grid ${results.gridItems} items (${results.renderedCells} cells in the DOM); chart ${results.chartPoints} points at the end`);
  console.log(`${'frame intervals (ms)'.padEnd(34)} ${'frames'.padStart(6)} ${'mean'.padStart(7)} ${'p50'.padStart(7)} ${'p95'.padStart(7)} ${'p99'.padStart(7)} ${'max'.padStart(7)} ${'>25ms'.padStart(6)} ${'work'.padStart(8)}`);
  console.log(row('grid: fling 120 px/frame', results.gridFling));
  console.log(row('grid: random jump every frame', results.gridJumps));
  console.log(row('chart 1M: hover read-out', results.chartHover));
  console.log(row('chart 1M+: +200 points/frame live', results.chartLiveAppend));
  console.log(row('map 100k: pan + zoom every frame', results.mapPanZoom));
  console.log(`chart draw over 1M points: mean ${results.chartDrawCost.meanMs.toFixed(2)} ms, max ${results.chartDrawCost.maxMs.toFixed(2)} ms`);
  console.log(`map draw over 100k points: mean ${results.mapDrawCost.meanMs.toFixed(2)} ms, max ${results.mapDrawCost.maxMs.toFixed(2)} ms`);
} finally {
  await browser.close();
  server.close();
}
