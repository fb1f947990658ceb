// Datasets as the API sees them: catalog queries (small, indexed, answered on the main thread), curation
// edits with undo, manifest export, and imports and duplicate searches run in a worker thread. Image files
// are handed out only for paths the catalog holds, resolved inside the dataset's root.
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  ApiError,
  type ApiParsedRequest,
  type DatasetDetail,
  DatasetDupes,
  type DatasetStats,
  type DatasetSummary,
  type EditRow,
  type ImageInfo,
  type ImagesPage,
  ImportSummary,
  type ImportTask,
  type ManifestExport,
  ImportProgress,
} from '../../common/api.ts';
import { CatalogError } from '../../native-worker/data/catalog/catalog.ts';
import { FLAG_CORRUPT, FLAG_EXCLUDED, type DatasetRow, type Split } from '../../native-worker/data/catalog/types.ts';
import { keepLabels, moveToSplit, relabel, setExcluded, stratifiedSplit, undoLastEdit } from '../../native-worker/data/curate/edits.ts';
import { datasetStats } from '../../native-worker/data/curate/stats.ts';
import { thumbnail } from '../../native-worker/data/curate/thumbs.ts';
import { exportManifest } from '../../native-worker/data/manifest.ts';
import { ManifestError } from '../../common/manifest.ts';
import type { CatalogTask, CatalogWorkerMessage } from './catalog-worker.ts';
import type { PreviewJob, PreviewReply } from './preview-worker.ts';
import type { EventHub } from './hub.ts';
import type { Store } from './store.ts';

/** The preview cache keeps the newest PREVIEW_CACHE_FILES PNGs, pruned every PREVIEW_PRUNE_EVERY writes. */
const PREVIEW_CACHE_FILES = 2000;
const PREVIEW_PRUNE_EVERY = 200;

/** Deletes all but the `keep` newest PNGs of a cache folder. */
export async function prunePreviews(dir: string, keep = PREVIEW_CACHE_FILES): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png'));
  if (names.length <= keep) return;
  const aged = await Promise.all(names.map(async (n) => ({ file: join(dir, n), at: (await stat(join(dir, n)).catch(() => null))?.mtimeMs ?? 0 })));
  aged.sort((a, b) => b.at - a.at);
  await Promise.all(aged.slice(keep).map((f) => rm(f.file, { force: true })));
}

const USABLE = `(i.flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0`;
const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const WORKER_MODULE = new URL('./catalog-worker.ts', import.meta.url).href;
const PREVIEW_MODULE = new URL('./preview-worker.ts', import.meta.url).href;

/** The catalog's user errors as API errors with the right code. */
function apiErrorOf(e: unknown): unknown {
  if (!(e instanceof CatalogError || e instanceof ManifestError)) return e;
  const m = e.message;
  if (/^no (dataset|image) /.test(m)) return new ApiError('not-found', m);
  if (/already exists/.test(m)) return new ApiError('conflict', m);
  return new ApiError('invalid', m);
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw apiErrorOf(e);
  }
}

interface RunningTask {
  task: ImportTask;
  worker: Worker | null;
}

export class DatasetService {
  private readonly tasks = new Map<string, RunningTask>();
  private previewWrites = 0;
  private previews: { worker: Worker; pending: Map<number, { resolve: (png: Uint8Array) => void; reject: (e: Error) => void }>; next: number } | null = null;

  constructor(
    private readonly store: Store,
    private readonly hub: EventHub,
  ) {}

  private get catalog() {
    return this.store.catalog;
  }

  private dataset(name: string): DatasetRow {
    return guard(() => this.catalog.requireDataset(name));
  }

  private count(sql: string, ...params: unknown[]): number {
    return this.catalog.db.prepare(sql).pluck().get(...params) as number;
  }

  list(): DatasetSummary[] {
    return this.catalog.datasets().map((d) => this.summary(d));
  }

  private summary(d: DatasetRow): DatasetSummary {
    return {
      name: d.name,
      kind: d.kind,
      source: d.source,
      root: d.root,
      createdAt: d.createdAt,
      scanState: d.scanState,
      scannedAt: d.scannedAt,
      images: this.count(`SELECT COUNT(*) FROM images i WHERE i.dataset_id = ? AND ${USABLE}`, d.id),
      classes: this.catalog.labels(d.id).length,
      versions: this.catalog.versions(d.id).length,
    };
  }

  get(name: string): DatasetDetail {
    const d = this.dataset(name);
    const counts = new Map(
      (this.catalog.db.prepare(`SELECT label_id AS id, COUNT(*) AS n FROM images i WHERE i.dataset_id = ? AND ${USABLE} GROUP BY label_id`).all(d.id) as { id: number | null; n: number }[]).map((r) => [r.id, r.n]),
    );
    return {
      ...this.summary(d),
      labels: this.catalog.labels(d.id).map((l) => ({ name: l.name, index: l.index, images: counts.get(l.id) ?? 0 })),
      versionList: this.catalog.versions(d.id),
      edits: this.catalog.edits(d.id).slice(0, 50),
      corrupt: this.count(`SELECT COUNT(*) FROM images WHERE dataset_id = ? AND (flags & ${FLAG_CORRUPT}) <> 0`, d.id),
      excluded: this.count(`SELECT COUNT(*) FROM images WHERE dataset_id = ? AND (flags & ${FLAG_CORRUPT}) = 0 AND (flags & ${FLAG_EXCLUDED}) <> 0`, d.id),
      skipped: this.count('SELECT COUNT(*) FROM scan_issues WHERE dataset_id = ?', d.id),
    };
  }

  stats(name: string): DatasetStats {
    return guard(() => datasetStats(this.catalog, name));
  }

  images(q: ApiParsedRequest<'datasets.images'>): ImagesPage {
    const d = this.dataset(q.name);
    const where = ['i.dataset_id = ?'];
    const params: unknown[] = [d.id];
    if (q.status === 'usable') where.push(USABLE);
    else if (q.status === 'corrupt') where.push(`(i.flags & ${FLAG_CORRUPT}) <> 0`);
    else if (q.status === 'excluded') where.push(`(i.flags & ${FLAG_EXCLUDED}) <> 0`);
    const filter = (sql: string, value?: unknown) => {
      where.push(sql);
      if (value !== undefined) params.push(value);
    };
    if (q.split) filter('i.split = ?', q.split);
    if (q.label === null) filter('i.label_id IS NULL');
    else if (q.label !== undefined) filter('l.name = ?', q.label);
    if (q.search) filter('instr(lower(i.path), lower(?)) > 0', q.search);
    const from = `FROM images i LEFT JOIN labels l ON l.id = i.label_id WHERE ${where.join(' AND ')}`;
    const total = this.count(`SELECT COUNT(*) ${from}`, ...params);
    const rows = this.catalog.db
      .prepare(
        `SELECT i.id, i.path, i.bytes, i.width, i.height, i.channels, i.format, l.name AS label, i.split, i.flags,
                i.problem, i.problem_detail AS problemDetail, i.content_hash AS contentHash
         ${from} ORDER BY i.path LIMIT ? OFFSET ?`,
      )
      .all(...params, q.limit, q.offset) as (Omit<ImageInfo, 'corrupt' | 'excluded'> & { flags: number })[];
    const items = rows.map(({ flags, ...r }) => ({ ...r, corrupt: (flags & FLAG_CORRUPT) !== 0, excluded: (flags & FLAG_EXCLUDED) !== 0 }));
    return { total, offset: q.offset, items };
  }

  private edited(name: string, edit: EditRow | null, reason: 'edited' | 'undone' = 'edited'): { edit: EditRow | null } {
    if (edit) this.hub.publish('datasetChanged', { dataset: name, reason });
    return { edit };
  }

  relabel(name: string, paths: readonly string[], label: string | null) {
    return this.edited(name, guard(() => relabel(this.catalog, name, paths, label)));
  }

  move(name: string, paths: readonly string[], split: Split) {
    return this.edited(name, guard(() => moveToSplit(this.catalog, name, paths, split)));
  }

  keepLabels(name: string, paths: readonly string[]) {
    return this.edited(name, guard(() => keepLabels(this.catalog, name, paths)));
  }

  exclude(name: string, paths: readonly string[], excluded: boolean) {
    return this.edited(name, guard(() => setExcluded(this.catalog, name, paths, excluded)));
  }

  split(name: string, val: number, test: number, seed: number) {
    const r = guard(() => stratifiedSplit(this.catalog, name, { val, test, seed }));
    return { ...this.edited(name, r.edit), counts: r.counts };
  }

  undo(name: string): { undone: EditRow | null } {
    const undone = guard(() => undoLastEdit(this.catalog, name));
    if (undone) this.hub.publish('datasetChanged', { dataset: name, reason: 'undone' });
    return { undone };
  }

  edits(name: string): EditRow[] {
    return this.catalog.edits(this.dataset(name).id);
  }

  /** Freezes the current manifest as a version and writes it (by default to manifests/<name>.json). */
  async exportManifest(name: string, file?: string): Promise<ManifestExport> {
    this.dataset(name);
    const target = file ?? join(this.store.workspace, 'manifests', `${name}.json`);
    await mkdir(join(target, '..'), { recursive: true });
    const r = await exportManifest(this.catalog, name, target).catch((e: unknown) => {
      throw apiErrorOf(e);
    });
    const splits = { train: 0, val: 0, test: 0 };
    for (const i of r.manifest.items) splits[i.split]++;
    this.hub.publish('datasetChanged', { dataset: name, reason: 'exported' });
    return { dataset: name, file: r.file, version: r.version, hash: r.manifest.hash, items: r.manifest.items.length, classes: r.manifest.classes.length, splits };
  }

  delete(name: string): void {
    if ([...this.tasks.values()].some((t) => t.task.state === 'running' && t.task.name === name)) {
      throw new ApiError('conflict', `dataset '${name}' is being imported; cancel the import first`);
    }
    guard(() => this.catalog.deleteDataset(name));
    this.hub.publish('datasetChanged', { dataset: name, reason: 'deleted' });
  }

  // ---- background work

  /** Runs a catalog task in a worker thread; progress messages go to `onProgress`. */
  private runInWorker(task: CatalogTask, onProgress?: (p: unknown) => void, onWorker?: (w: Worker) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_ENTRY, { workerData: { entry: WORKER_MODULE, task } });
      onWorker?.(worker);
      let settled = false;
      worker.on('message', (m: CatalogWorkerMessage) => {
        if (m.type === 'progress') onProgress?.(m.progress);
        else if (m.type === 'result') {
          settled = true;
          resolve(m.value);
        } else {
          settled = true;
          reject(m.aborted ? new ApiError('conflict', 'cancelled') : m.userError ? new ApiError('invalid', m.message) : new Error(m.message));
        }
      });
      worker.on('error', (e) => {
        settled = true;
        reject(e);
      });
      worker.on('exit', (code) => {
        if (!settled) reject(new Error(`the dataset worker exited (${code}) without an answer`));
      });
    });
  }

  async dupes(name: string, threshold: number) {
    this.dataset(name);
    return DatasetDupes.parse(await this.runInWorker({ task: 'dupes', workspace: this.store.workspace, name, threshold }));
  }

  startImport(req: ApiParsedRequest<'datasets.import'>): ImportTask {
    const name = req.name ?? null;
    if (name && [...this.tasks.values()].some((t) => t.task.state === 'running' && t.task.name === name)) {
      throw new ApiError('conflict', `dataset '${name}' is already being imported`);
    }
    const taskId = randomBytes(8).toString('hex');
    const running: RunningTask = {
      task: { taskId, source: req.source, name, state: 'running', progress: null, summary: null, error: null, startedAt: new Date().toISOString(), finishedAt: null },
      worker: null,
    };
    this.tasks.set(taskId, running);
    const update = (patch: Partial<ImportTask>) => {
      running.task = { ...running.task, ...patch };
      this.hub.publish('datasetProgress', running.task);
    };
    const task: CatalogTask = {
      task: 'import',
      workspace: this.store.workspace,
      source: req.source,
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...(req.kind !== undefined ? { kind: req.kind } : {}),
      ...(req.idxClasses !== undefined ? { idxClasses: req.idxClasses } : {}),
    };
    this.runInWorker(
      task,
      (p) => {
        const progress = ImportProgress.safeParse(p);
        if (progress.success) update({ progress: progress.data });
      },
      (w) => (running.worker = w),
    ).then(
      (value) => {
        const summary = ImportSummary.parse(value);
        update({ state: 'completed', name: summary.dataset, summary, finishedAt: new Date().toISOString() });
        this.hub.publish('datasetChanged', { dataset: summary.dataset, reason: 'imported' });
      },
      (e: Error) => {
        const cancelled = e instanceof ApiError && e.message === 'cancelled';
        update({ state: cancelled ? 'cancelled' : 'failed', error: cancelled ? null : e.message, finishedAt: new Date().toISOString() });
      },
    );
    this.hub.publish('datasetProgress', running.task);
    return running.task;
  }

  importTasks(): ImportTask[] {
    return [...this.tasks.values()].map((t) => t.task);
  }

  cancelImport(taskId: string): ImportTask {
    const t = this.tasks.get(taskId);
    if (!t) throw new ApiError('not-found', `no import task '${taskId}'`);
    if (t.task.state === 'running') t.worker?.postMessage({ type: 'cancel' });
    return t.task;
  }

  /** Waits for running imports to stop (cancelling them): what they scanned is kept, a rerun continues. */
  async shutdown(): Promise<void> {
    const previews = this.previews;
    this.previews = null;
    await previews?.worker.terminate();
    await Promise.all(
      [...this.tasks.values()].map((t) => {
        const w = t.worker;
        if (t.task.state !== 'running' || !w) return undefined;
        return new Promise<void>((resolve) => {
          w.once('exit', () => resolve());
          w.postMessage({ type: 'cancel' });
          setTimeout(() => void w.terminate(), 10_000).unref();
        });
      }),
    );
  }

  // ---- files

  /**
   * The absolute path of a cataloged image. The path must be one the catalog holds, and the file must
   * resolve (symlinks followed) inside the dataset's root: anything else is not-found, never read.
   */
  async imageFile(name: string, path: string): Promise<string> {
    const d = this.dataset(name);
    const img = this.catalog.imageByPath(d.id, path);
    if (!img) throw new ApiError('not-found', `no image '${path}' in dataset '${name}'`);
    const [root, file] = await Promise.all([realpath(d.root), realpath(join(d.root, path))]).catch(() => {
      throw new ApiError('not-found', `image '${path}' of dataset '${name}' is missing on disk`);
    });
    if (!file.startsWith(root + sep)) throw new ApiError('not-found', `image '${path}' resolves outside dataset '${name}'`);
    return file;
  }

  /** A cached thumbnail of a cataloged image (null for corrupt images). */
  async thumbnail(name: string, path: string, size: number): Promise<string | null> {
    await this.imageFile(name, path);
    const d = this.dataset(name);
    return thumbnail(this.catalog, d, this.catalog.imageByPath(d.id, path)!, size);
  }

  /** Renders one preview in the preview worker thread, started on first use and again if it died. */
  private renderPreview(job: Omit<PreviewJob, 'id'>): Promise<Uint8Array> {
    if (!this.previews) {
      const worker = new Worker(WORKER_ENTRY, { workerData: { entry: PREVIEW_MODULE } });
      worker.unref(); // an idle preview worker must not keep the process alive
      const pending = new Map<number, { resolve: (png: Uint8Array) => void; reject: (e: Error) => void }>();
      const state = { worker, pending, next: 1 };
      worker.on('message', (r: PreviewReply) => {
        const p = pending.get(r.id);
        pending.delete(r.id);
        if ('png' in r) p?.resolve(r.png);
        else p?.reject(new Error(r.error));
      });
      const fail = (e: Error) => {
        for (const p of pending.values()) p.reject(e);
        pending.clear();
        if (this.previews === state) this.previews = null;
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`the preview worker exited (${code})`)));
      this.previews = state;
    }
    const p = this.previews;
    const id = p.next++;
    return new Promise((resolve, reject) => {
      p.pending.set(id, { resolve, reject });
      p.worker.postMessage({ id, ...job } satisfies PreviewJob);
    });
  }

  /**
   * The k-th augmented version of a cataloged image under a recipe's training transform (or the eval
   * transform), as a PNG cached under the workspace: the loader's own code, so what is shown is what trains.
   */
  async preview(name: string, path: string, o: { mode: 'pretrain' | 'finetune' | 'eval'; size: number; seed: number; k: number }): Promise<string> {
    const file = await this.imageFile(name, path);
    const { mtimeMs, size: bytes } = await stat(file);
    const key = createHash('sha256').update(JSON.stringify([file, mtimeMs, bytes, o])).digest('hex').slice(0, 32);
    const dir = join(this.store.workspace, 'cache', 'previews');
    const out = join(dir, `${key}.png`);
    if (await access(out).then(() => true, () => false)) return out;
    let png: Uint8Array;
    try {
      png = await this.renderPreview({ file, ...o });
    } catch (e) {
      throw new ApiError('invalid', `cannot preview '${path}': ${(e as Error).message}`);
    }
    await mkdir(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    await writeFile(tmp, png);
    await rename(tmp, out);
    if (++this.previewWrites % PREVIEW_PRUNE_EVERY === 0) await prunePreviews(dir);
    return out;
  }
}
