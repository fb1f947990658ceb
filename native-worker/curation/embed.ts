// Embedding a dataset's usable images with one checkpoint: batched through the eval transform, resumable
// (only images without a current record are computed), stored as float16 (store.ts) with the middle
// stages' statistics beside each embedding.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { sealManifest } from '../../common/manifest.ts';
import { createLoader } from '../data/pipeline/loader.ts';
import { type Embedder } from './embedder.ts';
import { packHalf, unpackHalf } from './half.ts';
import { type StoreMeta, type StoredVector, appendRecords, compactStore, openStore, recordWidth } from './store.ts';

export interface EmbedItem {
  /** The catalog's image id. */
  id: number;
  /** Relative to the root. */
  path: string;
  /** sha1 of the file's bytes (the catalog's content hash). */
  hash: string;
}

/** Embeddings in item order: row r of `vectors` (dim wide) belongs to ids[r]. */
export interface Embeddings {
  ids: Int32Array;
  dim: number;
  vectors: Float32Array;
}

export interface EmbedResult {
  embeddings: Embeddings;
  /** (n, statsDim) middle-stage statistics in the same row order, for outlier scores. */
  stats: Float32Array;
  statsDim: number;
  computed: number;
  reused: number;
  seconds: number;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Embeds the items that lack a current record in `dir`, appending batch by batch; returns all of them. */
export async function embedItems(o: {
  root: string;
  items: readonly EmbedItem[];
  dir: string;
  meta: StoreMeta;
  embedder: Embedder;
  workers?: number;
  progress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}): Promise<EmbedResult> {
  const start = performance.now();
  const { embedder, meta } = o;
  const stored = openStore(o.dir, meta);
  const width = recordWidth(meta);
  const missing = o.items.filter((it) => stored.get(it.id)?.hash !== it.hash);
  const fresh = new Map<number, StoredVector>();
  if (missing.length) {
    const manifest = sealManifest({ version: 1, dataset: meta.dataset, createdAt: new Date().toISOString(), root: o.root, classes: [], items: missing.map((it) => ({ path: it.path, label: null, split: 'val' as const })) });
    const loader = createLoader({ manifest, split: 'val', batchSize: embedder.n, size: embedder.size, train: false, workers: o.workers ?? 1 });
    const per = 3 * embedder.size * embedder.size;
    const record = new Float32Array(width);
    const padded = new Float32Array(embedder.n * per);
    let done = 0;
    try {
      for await (const b of loader) {
        if (o.signal?.aborted) break;
        const rows = b.indices.length;
        padded.fill(0).set(b.images.subarray(0, rows * per));
        const { features, stats } = await embedder.run(padded);
        const records = Array.from(b.indices, (idx, r) => {
          record.set(features.subarray(r * meta.dim, (r + 1) * meta.dim));
          record.set(stats.subarray(r * meta.statsDim, (r + 1) * meta.statsDim), meta.dim);
          return { ...missing[idx]!, vector: packHalf(record) };
        });
        appendRecords(o.dir, width, records);
        for (const r of records) fresh.set(r.id, r);
        done += rows;
        o.progress?.(done, missing.length);
      }
    } finally {
      await loader.close();
    }
  }
  if (o.signal?.aborted) throw new Error(`embedding stopped after ${fresh.size} of ${missing.length} images (the rest continues on the next run)`);
  const current = o.items.map((it) => ({ id: it.id, hash: it.hash, vector: (fresh.get(it.id) ?? stored.get(it.id))!.vector }));
  // Stale records (changed or removed images) are dropped once the set is complete again.
  if (stored.size + fresh.size > current.length) compactStore(o.dir, width, current);
  const vectors = new Float32Array(current.length * meta.dim);
  const stats = new Float32Array(current.length * meta.statsDim);
  const record = new Float32Array(width);
  current.forEach((r, k) => {
    unpackHalf(r.vector, record);
    vectors.set(record.subarray(0, meta.dim), k * meta.dim);
    stats.set(record.subarray(meta.dim), k * meta.statsDim);
  });
  const embeddings = { ids: Int32Array.from(current, (r) => r.id), dim: meta.dim, vectors };
  return { embeddings, stats, statsDim: meta.statsDim, computed: missing.length, reused: o.items.length - missing.length, seconds: (performance.now() - start) / 1000 };
}
