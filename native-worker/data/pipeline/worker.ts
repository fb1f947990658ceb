// A loader worker thread: turns batch requests (files + per-sample seeds) into normalized float32 batches
// and hands the buffers back without copying (transfer list).
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { forEachConcurrent } from '../import/pool.ts';
import type { TransformConfig } from './config.ts';
import { normalizeLuts, transformSample } from './transform.ts';

export interface WorkerInit {
  entry: string;
  config: TransformConfig;
  /** Samples in flight per worker: one decoding in libvips while JS augments another. */
  inFlight: number;
}

export interface BatchRequest {
  id: number;
  files: string[];
  seeds: number[];
}

export type BatchReply = { id: number; images: Float32Array } | { id: number; error: string };

const init = workerData as WorkerInit;
// One libvips thread per image: parallelism comes from the workers, not from threads inside each image.
sharp.concurrency(1);
// No operation cache: every file is read once per epoch, caching would only grow memory.
sharp.cache(false);
const luts = normalizeLuts(init.config);
const sampleSize = 3 * init.config.size * init.config.size;

parentPort!.on('message', (req: BatchRequest) => {
  const images = new Float32Array(req.files.length * sampleSize);
  forEachConcurrent(req.files.keys(), init.inFlight, (i) => transformSample(req.files[i]!, init.config, req.seeds[i]!, images, i * sampleSize, luts)).then(
    () => parentPort!.postMessage({ id: req.id, images } satisfies BatchReply, [images.buffer]),
    (e: unknown) => parentPort!.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e) } satisfies BatchReply),
  );
});
