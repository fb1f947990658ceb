// Measures importing a large class-folder tree: generates N small JPEGs (default 100,000 in 100 classes)
// under /tmp, imports them in a child process (so its peak RSS is the importer's alone), rescans once
// unchanged, and deletes everything. Not a test: run it by hand.
//   node --import tsx test/bench/import-100k.ts [N]
// Last line: {"files":..,"import_s":..,"import_peak_rss_mb":..,"import_scan_rss_mb":..,"rescan_s":..,
// "rescan_peak_rss_mb":..}; the scan figure is the largest RSS seen while files were being analysed, before
// the end-of-import summary (duplicate groups over the whole catalog).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { forEachConcurrent } from '../../native-worker/data/import/pool.ts';
import { Rng } from '../../native-worker/nn/random.ts';

const N = Number(process.argv[2] ?? 100_000);
const CLASSES = 100;
const SIDE = 40;

/** A distinct small picture per seed: a colour gradient plus noise, so every file has its own hashes. */
function pixels(seed: number): Buffer {
  const rng = new Rng(seed);
  const base = [rng.int(0, 256), rng.int(0, 256), rng.int(0, 256)];
  const grad = [rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-3, 3)];
  const px = Buffer.alloc(SIDE * SIDE * 3);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      for (let c = 0; c < 3; c++) px[(y * SIDE + x) * 3 + c] = Math.max(0, Math.min(255, base[c]! + grad[c]! * (c === 1 ? x : y) + rng.uniform(-20, 20)));
    }
  }
  return px;
}

/** Runs the importer in a fresh process and reports its time and peak RSS. */
function importOnce(src: string, ws: string): { seconds: number; peakRssMb: number; scanRssMb: number; summary: { images: number; added: number; unchanged: number } } {
  const script = `
    import { Catalog } from ${JSON.stringify(new URL('../../native-worker/data/catalog/catalog.ts', import.meta.url).href)};
    import { importDataset } from ${JSON.stringify(new URL('../../native-worker/data/import/importer.ts', import.meta.url).href)};
    const catalog = Catalog.open(${JSON.stringify(ws)});
    const start = performance.now();
    let scanRss = 0;
    const s = await importDataset(catalog, {
      source: ${JSON.stringify(src)},
      name: 'big',
      onProgress: (p) => { if (p.phase === 'scan') scanRss = Math.max(scanRss, process.memoryUsage().rss); },
    });
    const seconds = (performance.now() - start) / 1000;
    catalog.close();
    console.log(JSON.stringify({ seconds, peakRssMb: process.resourceUsage().maxRSS / 1024, scanRssMb: scanRss / 2 ** 20, summary: { images: s.images, added: s.added, unchanged: s.unchanged } }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`import failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

sharp.cache(false);
const dir = mkdtempSync(join(tmpdir(), 'cnx-import-100k-'));
try {
  const src = join(dir, 'src');
  for (let c = 0; c < CLASSES; c++) mkdirSync(join(src, `class${c}`), { recursive: true });
  const genStart = performance.now();
  let made = 0;
  await forEachConcurrent(Array.from({ length: N }, (_, i) => i), 4, async (i) => {
    await sharp(pixels(i), { raw: { width: SIDE, height: SIDE, channels: 3 } }).jpeg({ quality: 85 }).toFile(join(src, `class${i % CLASSES}`, `${i}.jpg`));
    if (++made % 10_000 === 0) console.error(`generated ${made}/${N}`);
  });
  console.error(`generated ${N} ${SIDE}x${SIDE} JPEGs in ${((performance.now() - genStart) / 1000).toFixed(1)} s`);

  const ws = join(dir, 'ws');
  const first = importOnce(src, ws);
  console.error(`import: ${first.seconds.toFixed(1)} s (${(N / first.seconds).toFixed(0)} files/s), peak RSS ${first.peakRssMb.toFixed(0)} MB (${first.scanRssMb.toFixed(0)} MB while scanning), ${first.summary.images} images`);
  if (first.summary.images !== N) throw new Error(`expected ${N} images, catalog has ${first.summary.images}`);
  const again = importOnce(src, ws);
  console.error(`unchanged rescan: ${again.seconds.toFixed(1)} s, peak RSS ${again.peakRssMb.toFixed(0)} MB (${again.scanRssMb.toFixed(0)} MB while scanning), ${again.summary.unchanged} unchanged`);
  const r1 = (x: number) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify({
      files: N,
      import_s: r1(first.seconds),
      import_peak_rss_mb: r1(first.peakRssMb),
      import_scan_rss_mb: r1(first.scanRssMb),
      rescan_s: r1(again.seconds),
      rescan_peak_rss_mb: r1(again.peakRssMb),
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
