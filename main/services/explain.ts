// "Try it" (explain.upload, explain.run): the images and models a request names, checked, then top-5 and
// Grad-CAM computed in the explain worker thread, which keeps each model loaded between requests.
import { createHash } from 'node:crypto';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { ApiError, type ApiParsedRequest, type ApiResponse, type ExplainImage, type ModelRef } from '../../common/api.ts';
import { JobConfig } from '../../common/job.ts';
import type { DatasetService } from './datasets.ts';
import type { ExplainJob, ExplainReply, ExplainedModel } from './explain-worker.ts';
import type { Store } from './store.ts';

const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const EXPLAIN_MODULE = new URL('./explain-worker.ts', import.meta.url).href;
const UPLOAD_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff', 'bmp']);
/** Decoded uploads above this many pixels are refused (a decompression bomb). */
const MAX_UPLOAD_PIXELS = 40e6;

type Pending = Map<number, { resolve: (m: ExplainedModel[]) => void; reject: (e: Error) => void }>;

export class ExplainService {
  private worker: { worker: Worker; pending: Pending; next: number } | null = null;

  constructor(
    private readonly store: Store,
    private readonly datasets: DatasetService,
  ) {}

  private get uploads(): string {
    return join(this.store.workspace, 'cache', 'explain');
  }

  async upload(r: ApiParsedRequest<'explain.upload'>): Promise<ApiResponse<'explain.upload'>> {
    const bytes = Buffer.from(r.data, 'base64');
    const meta = await sharp(bytes, { limitInputPixels: MAX_UPLOAD_PIXELS }).metadata().catch(() => null);
    if (!meta?.format || !UPLOAD_FORMATS.has(meta.format) || !meta.width || !meta.height) {
      throw new ApiError('invalid', `${r.name}: not an image (PNG, JPEG, WebP, GIF, TIFF or BMP) or too large to decode`, 'data');
    }
    const id = createHash('sha256').update(bytes).digest('hex');
    await mkdir(this.uploads, { recursive: true });
    const file = join(this.uploads, id);
    if (!(await stat(file).catch(() => null))) {
      await writeFile(`${file}.tmp`, bytes);
      await rename(`${file}.tmp`, file);
    }
    return { upload: id, width: meta.width, height: meta.height };
  }

  async run(r: ApiParsedRequest<'explain.run'>): Promise<ApiResponse<'explain.run'>> {
    const t0 = performance.now();
    const image = await this.imageFile(r.image);
    const models = r.models.map((m, i) => ({ ...this.modelOf(m.model, `models.${i}.model`), ...(m.name ? { name: m.name } : {}) }));
    for (const [i, m] of models.entries()) {
      if (!(await stat(m.file).catch(() => null))) throw new ApiError('not-found', `${m.file}: no such checkpoint file (or model folder)`, `models.${i}.model`);
    }
    const size = r.size ?? models.find((m) => m.size)?.size ?? 224;
    let found: ExplainedModel[];
    try {
      found = await this.compute({ image, size, models: models.map((m) => ({ file: m.file, name: m.name })), ...(r.classIndex !== undefined ? { target: r.classIndex } : {}) });
    } catch (e) {
      throw new ApiError('invalid', (e as Error).message);
    }
    return {
      size,
      models: found.map((m) => ({ ...m, overlay: `data:image/png;base64,${Buffer.from(m.overlay).toString('base64')}` })),
      totalMs: performance.now() - t0,
    };
  }

  private async imageFile(img: ExplainImage): Promise<string> {
    if ('dataset' in img) return this.datasets.imageFile(img.dataset, img.path);
    const file = 'upload' in img ? join(this.uploads, img.upload) : img.file;
    if (!(await stat(file).catch(() => null))?.isFile()) throw new ApiError('not-found', 'upload' in img ? `no upload '${img.upload}' (send it with explain.upload)` : `${img.file}: no such image file`, 'image');
    return file;
  }

  /** A model reference's checkpoint file, default label and (for a run) input size. */
  private modelOf(ref: ModelRef, field: string): { file: string; name: string; size: number | null } {
    if ('file' in ref) return { file: ref.file, name: ref.file.split(/[\\/]/).pop()!.replace(/\.[^.]+$/, ''), size: null };
    const rec = this.store.run(ref.runId);
    if (!rec) throw new ApiError('not-found', `no run '${ref.runId}'`, field);
    const c = this.store.checkpoints(ref.runId).find((k) => k.step === ref.step);
    if (!c) throw new ApiError('not-found', `run '${rec.summary.name}' has no checkpoint at step ${ref.step}`, field);
    const config = JobConfig.safeParse(rec.config);
    if (config.success && config.data.kind === 'pretrain') throw new ApiError('invalid', `run '${rec.summary.name}' is FCMAE pretraining: its checkpoints have no classifier head to explain`, field);
    return { file: c.path, name: `${rec.summary.name} @${ref.step}`, size: config.success ? config.data.model.inputSize : null };
  }

  /** Runs one job in the worker thread, started on first use and again if it died. */
  private compute(job: Omit<ExplainJob, 'id'>): Promise<ExplainedModel[]> {
    if (!this.worker) {
      const worker = new Worker(WORKER_ENTRY, { workerData: { entry: EXPLAIN_MODULE } });
      worker.unref(); // an idle worker must not keep the process alive
      const pending: Pending = new Map();
      const state = { worker, pending, next: 1 };
      worker.on('message', (r: ExplainReply) => {
        const p = pending.get(r.id);
        pending.delete(r.id);
        if ('models' in r) p?.resolve(r.models);
        else p?.reject(new Error(r.error));
      });
      const fail = (e: Error) => {
        for (const p of pending.values()) p.reject(e);
        pending.clear();
        if (this.worker === state) this.worker = null;
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`the explain worker exited (${code})`)));
      this.worker = state;
    }
    const w = this.worker;
    const id = w.next++;
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject });
      w.worker.postMessage({ id, ...job } satisfies ExplainJob);
    });
  }

  async shutdown(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.worker.terminate();
  }
}
