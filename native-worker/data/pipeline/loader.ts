// The training input pipeline: a manifest split -> float32 NCHW batches, produced by a worker_threads pool
// with a bounded prefetch queue. Batch contents depend only on (seed, epoch, position): the epoch order is
// a seeded shuffle and each sample's augmentation has its own seed, so any worker count or timing gives
// the same batches, and a saved state() resumes exactly where training stopped.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Manifest, Split } from '../../../common/manifest.ts';
import { forEachConcurrent } from '../import/pool.ts';
import { Rng } from '../../nn/random.ts';
import { mixSeed } from '../rng.ts';
import { type TrainMode, type TransformConfig, type TransformOptions, resolveTransform } from './config.ts';
import { normalizeLuts, sampleSeed, transformSample } from './transform.ts';
import type { BatchReply, BatchRequest, WorkerInit } from './worker.ts';
import { UserError } from '../../../common/errors.ts';

export interface LoaderOptions {
  manifest: Manifest;
  split: Split;
  batchSize: number;
  /** Output side in pixels. */
  size: number;
  /** Random crops and augmentation (train) or resize + centre crop (eval). */
  train: boolean;
  mode?: TrainMode;
  seed?: number;
  /** Worker threads; 0 transforms on the calling thread. Default: cores - 1. */
  workers?: number;
  /** Batches requested ahead of the consumer (bounds memory). Default: one per worker plus one, at least 2. */
  prefetch?: number;
  /** Epochs to run from the start (or the resume point). Default 1. */
  epochs?: number;
  /** Default: train. */
  shuffle?: boolean;
  /** Drop the last partial batch. Default: train. */
  dropLast?: boolean;
  /** Overrides of the mode's recipe (scale, ratio, hflip, randAugment, reprob, cropPct, mean, std). */
  transform?: Omit<TransformOptions, 'size' | 'train' | 'mode'>;
  /** Continue from a state() saved earlier (same manifest, split, seed and batch size). */
  resume?: LoaderState;
}

/** The next batch to produce. */
export interface LoaderState {
  epoch: number;
  batch: number;
}

export interface Batch {
  /** (N, 3, size, size) normalized float32. */
  images: Float32Array;
  /** Class index per sample; -1 for unlabeled items. */
  labels: BigInt64Array;
  /** Index of each sample in manifest.items. */
  indices: Int32Array;
  epoch: number;
  /** Position of this batch within its epoch. */
  batch: number;
}

export interface Loader extends AsyncIterable<Batch> {
  readonly config: TransformConfig;
  /** Items in the split. */
  readonly samples: number;
  readonly batchesPerEpoch: number;
  /** Where iteration stands: the next batch it will yield. */
  state(): LoaderState;
  /** Stops the workers; iteration ending or breaking out of it closes too. */
  close(): Promise<void>;
}

export class LoaderError extends UserError {
  override name = 'LoaderError';
}

const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const WORKER_MODULE = new URL('./worker.ts', import.meta.url).href;
/** Samples in flight per worker thread (and on the calling thread when workers = 0). */
const IN_FLIGHT = 2;

export function createLoader(opts: LoaderOptions): Loader {
  return new PoolLoader(opts);
}

class PoolLoader implements Loader {
  readonly config: TransformConfig;
  readonly samples: number;
  readonly batchesPerEpoch: number;
  private readonly files: string[];
  private readonly labels: BigInt64Array;
  private readonly itemIndex: Int32Array;
  private readonly seed: number;
  private readonly workerCount: number;
  private readonly prefetch: number;
  private readonly lastEpoch: number;
  private readonly shuffle: boolean;
  private position: LoaderState;
  private workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (images: Float32Array) => void; reject: (e: Error) => void }>();
  private nextRequest = 0;
  private closed = false;

  constructor(private readonly opts: LoaderOptions) {
    this.config = resolveTransform({ ...opts.transform, size: opts.size, train: opts.train, ...(opts.mode ? { mode: opts.mode } : {}) });
    const { manifest, split } = opts;
    const picked = manifest.items.flatMap((item, i) => (item.split === split ? [i] : []));
    if (!picked.length) throw new LoaderError(`manifest of '${manifest.dataset}' has no ${split} items`);
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new LoaderError(`batch size ${opts.batchSize} must be a positive integer`);
    this.itemIndex = Int32Array.from(picked);
    this.files = picked.map((i) => join(manifest.root, manifest.items[i]!.path));
    this.labels = BigInt64Array.from(picked, (i) => BigInt(manifest.items[i]!.label ?? -1));
    this.samples = picked.length;
    const dropLast = opts.dropLast ?? opts.train;
    this.batchesPerEpoch = dropLast ? Math.floor(this.samples / opts.batchSize) : Math.ceil(this.samples / opts.batchSize);
    if (this.batchesPerEpoch === 0) throw new LoaderError(`${split} has ${this.samples} items, fewer than one batch of ${opts.batchSize} (dropLast)`);
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? opts.train;
    this.workerCount = Math.max(0, opts.workers ?? Math.max(1, availableParallelism() - 1));
    // Batches go to workers round-robin, so workers + 1 in flight keeps every worker busy while the
    // consumer holds one; more would only hold memory (a 64 x 224^2 batch is 38 MB).
    this.prefetch = Math.max(1, opts.prefetch ?? Math.max(2, this.workerCount + 1));
    this.position = { ...(opts.resume ?? { epoch: 0, batch: 0 }) };
    if (this.position.batch >= this.batchesPerEpoch || this.position.batch < 0) throw new LoaderError(`resume batch ${this.position.batch} is outside 0..${this.batchesPerEpoch - 1}`);
    this.lastEpoch = this.position.epoch + (opts.epochs ?? 1);
  }

  state(): LoaderState {
    return { ...this.position };
  }

  /** Sample positions (into this split) in epoch order: a seeded shuffle, or as listed. */
  private order(epoch: number): Int32Array {
    const order = Array.from({ length: this.samples }, (_, i) => i);
    if (this.shuffle) new Rng(mixSeed(this.seed, epoch)).shuffle(order);
    return Int32Array.from(order);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    const jobs = this.jobs();
    const queue: Promise<Batch>[] = [];
    const fill = () => {
      while (queue.length < this.prefetch) {
        const j = jobs.next();
        if (j.done) break;
        const p = this.run(j.value.epoch, j.value.batch, j.value.positions);
        // Handled when awaited in turn; this only stops a later batch's failure counting as unhandled.
        p.catch(() => undefined);
        queue.push(p);
      }
    };
    try {
      fill();
      while (queue.length) {
        const batch = await queue.shift()!;
        const next = batch.batch + 1;
        this.position = next < this.batchesPerEpoch ? { epoch: batch.epoch, batch: next } : { epoch: batch.epoch + 1, batch: 0 };
        fill();
        yield batch;
      }
    } finally {
      await this.close();
    }
  }

  private *jobs(): Generator<{ epoch: number; batch: number; positions: Int32Array }> {
    const bs = this.opts.batchSize;
    const start = { ...this.position };
    for (let epoch = start.epoch; epoch < this.lastEpoch; epoch++) {
      const order = this.order(epoch);
      for (let b = epoch === start.epoch ? start.batch : 0; b < this.batchesPerEpoch; b++) {
        yield { epoch, batch: b, positions: order.subarray(b * bs, Math.min(this.samples, (b + 1) * bs)) };
      }
    }
  }

  private async run(epoch: number, batch: number, positions: Int32Array): Promise<Batch> {
    const files = Array.from(positions, (p) => this.files[p]!);
    const indices = Int32Array.from(positions, (p) => this.itemIndex[p]!);
    const seeds = Array.from(indices, (i) => sampleSeed(this.seed, epoch, i));
    const images = this.workerCount === 0 ? await this.transformHere(files, seeds) : await this.transformInWorker(files, seeds);
    return { images, labels: BigInt64Array.from(positions, (p) => this.labels[p]!), indices, epoch, batch };
  }

  private async transformHere(files: string[], seeds: number[]): Promise<Float32Array> {
    const sampleSize = 3 * this.config.size * this.config.size;
    const images = new Float32Array(files.length * sampleSize);
    const luts = normalizeLuts(this.config);
    await forEachConcurrent(files.keys(), IN_FLIGHT, (i) => transformSample(files[i]!, this.config, seeds[i]!, images, i * sampleSize, luts));
    return images;
  }

  private transformInWorker(files: string[], seeds: number[]): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new LoaderError('loader is closed'));
    if (!this.workers.length) this.startWorkers();
    const id = this.nextRequest++;
    const worker = this.workers[id % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, files, seeds } satisfies BatchRequest);
    });
  }

  private startWorkers(): void {
    const workerData: WorkerInit = { entry: WORKER_MODULE, config: this.config, inFlight: IN_FLIGHT };
    for (let w = 0; w < this.workerCount; w++) {
      const worker = new Worker(WORKER_ENTRY, { workerData });
      worker.on('message', (reply: BatchReply) => {
        const p = this.pending.get(reply.id);
        if (!p) return;
        this.pending.delete(reply.id);
        if ('error' in reply) p.reject(new LoaderError(reply.error));
        else p.resolve(reply.images);
      });
      worker.on('error', (e) => this.failAll(new LoaderError(`loader worker ${w} crashed: ${e.message}`)));
      worker.on('exit', (code) => {
        if (!this.closed) this.failAll(new LoaderError(`loader worker ${w} exited (code ${code})`));
      });
      this.workers.push(worker);
    }
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new LoaderError('loader is closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}
