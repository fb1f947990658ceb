import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Embedder, loadEncoder } from '../native-worker/curation/embedder.ts';
import { embedItems, sha256File } from '../native-worker/curation/embed.ts';
import { nearestNeighbours, outlierScores, unitRows } from '../native-worker/curation/neighbours.ts';
import { photo } from '../test/helpers/images.ts';
const dir = '/tmp/h15/data';
mkdirSync(join(dir, 'foreign'), { recursive: true });
const extra: string[] = [];
for (let k = 0; k < 8; k++) { await photo(50 + k, 40, 40).png().toFile(join(dir, `foreign/p${k}.png`)); extra.push(`foreign/p${k}.png`); }
for (let k = 0; k < 8; k++) { const b = Buffer.from(Array.from({ length: 784 }, () => Math.floor(Math.random() * 256))); await sharp(b, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(dir, `foreign/n${k}.png`)); extra.push(`foreign/n${k}.png`); }
const all = JSON.parse(readFileSync(join(dir, 'all.json'), 'utf8'));
const h = (p: string) => createHash('sha1').update(readFileSync(join(dir, p))).digest('hex');
const items = [...all.items.map((it: { path: string }, id: number) => ({ id, path: it.path, hash: h(it.path) })), ...extra.map((p, k) => ({ id: 10000 + k, path: p, hash: h(p) }))];
const w = '/tmp/h15/run/checkpoints/step-10.safetensors';
const enc0 = await loadEncoder(w); const enc = { ...enc0, hasHeadNorm: process.argv[3] !== 'raw' };
const emb = await Embedder.create(enc, 256, 32, { threads: 2 });
const meta = { version: 1 as const, dataset: 'x', datasetId: 1, weights: w, weightsSha256: await sha256File(w), arch: enc.arch.name, size: 32, dim: emb.dim, createdAt: new Date().toISOString() };
const r = await embedItems({ root: dir, items, dir: process.argv[3] === 'raw' ? '/tmp/h15/store-raw' : '/tmp/h15/store-s10', meta, embedder: emb });
console.log('computed', r.computed);
const x = r.embeddings.vectors; const n = x.length / 320;
const mean = new Float64Array(320); for (let i = 0; i < n; i++) for (let j = 0; j < 320; j++) mean[j] += x[i * 320 + j]! / n;
const sd = new Float64Array(320); for (let i = 0; i < n; i++) for (let j = 0; j < 320; j++) sd[j] += (x[i * 320 + j]! - mean[j]!) ** 2 / n;
const mode = process.argv[2];
const c = x.map((v, t) => mode === 'z' ? (v - mean[t % 320]!) / Math.sqrt(sd[t % 320]! + 1e-12) : v - mean[t % 320]!);
const u = unitRows(c, 320);
const nb = await nearestNeighbours(u, 320, 15);
for (const k of [1, 5, 10, 15]) {
  const s = outlierScores(nb, k);
  const order = Array.from(s.keys()).sort((a, b) => s[b]! - s[a]!);
  const ranks = order.flatMap((i, rank) => (i >= 10000 ? [[i - 10000, rank]] : []));
  console.log('k', k, JSON.stringify(ranks));
}
