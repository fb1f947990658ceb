// Imports (or rescans) a dataset into the catalog. Files stream from the source, at most `concurrency` are
// analysed at a time, and results are written in batches, each one transaction: a crash loses at most the
// batch in flight, and a rerun skips every file already cataloged unchanged and completes the scan.
import { availableParallelism } from 'node:os';
import { rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { type Catalog, CatalogError } from '../catalog/catalog.ts';
import { FLAG_CORRUPT, type DatasetKind, type DatasetRow, type Issue, type ScanRecord } from '../catalog/types.ts';
import { DEFAULT_NEAR_THRESHOLD, exactDuplicateGroups, nearDuplicateGroups } from '../curate/dupes.ts';
import { analyzeImage } from './analyze.ts';
import { FASHION_MNIST_CLASSES, MNIST_CLASSES, type IdxClasses, classFolder, findIdxPairs, materializeIdx } from './idx.ts';
import { forEachConcurrent } from './pool.ts';
import { type Candidate, csvSource, folderSource } from './sources.ts';
import { UserError } from '../../../common/errors.ts';

export class ImportError extends UserError {
  override name = 'ImportError';
}

export interface ImportProgress {
  phase: 'materialize' | 'scan' | 'finish';
  /** Files (or idx images) handled so far in this phase. */
  done: number;
  /** Known only while materialising idx files; a folder walk does not know its size in advance. */
  total: number | null;
  added: number;
  changed: number;
  unchanged: number;
  issues: number;
}

export interface ImportOptions {
  /** A folder (class folders or unlabeled), a CSV/TSV file, or a folder with idx files. */
  source: string;
  /** Dataset name; defaults to the source's base name. */
  name?: string;
  /** Defaults: .csv/.tsv file -> csv, folder with idx files -> idx, other folder -> folder. */
  kind?: DatasetKind;
  /** Class names for idx data; defaults to Fashion-MNIST when the path mentions 'fashion', else digits. */
  idxClasses?: IdxClasses;
  /** Files analysed at once (default: the number of cores + 1). */
  concurrency?: number;
  /** Scan results per transaction. */
  batchSize?: number;
  maxPixels?: number;
  nearThreshold?: number;
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
  /** Minimum time between progress calls (default 100 ms); phase ends are always reported. */
  progressEveryMs?: number;
}

export interface ImportSummary {
  dataset: string;
  kind: DatasetKind;
  root: string;
  /** Usable (not corrupt) images in the catalog after the scan. */
  images: number;
  classes: number;
  added: number;
  changed: number;
  removed: number;
  unchanged: number;
  exactDuplicateGroups: number;
  nearDuplicateGroups: number;
  /** Image files that cannot be used, kept in the catalog flagged corrupt. */
  corrupt: Issue[];
  /** Paths the scan found but did not catalog. */
  skipped: Issue[];
}

async function detectKind(source: string, isDir: boolean): Promise<DatasetKind> {
  if (!isDir) {
    if (['.csv', '.tsv', '.tab', '.txt'].includes(extname(source).toLowerCase())) return 'csv';
    throw new ImportError(`${source}: a file can only be imported as a CSV/TSV list (path,label); give a folder for images`);
  }
  const hasIdx = await findIdxPairs(source).then(() => true, () => false);
  return hasIdx ? 'idx' : 'folder';
}

/** The dataset row for this source: created on first import, checked against the source on rescans. */
async function datasetFor(catalog: Catalog, opts: ImportOptions): Promise<{ ds: DatasetRow; created: boolean }> {
  const source = resolve(opts.source);
  const st = await stat(source).catch((e: NodeJS.ErrnoException) => {
    throw new ImportError(`${source}: ${e.code === 'ENOENT' ? 'no such file or folder' : `cannot read (${e.code})`}`);
  });
  const kind = opts.kind ?? (await detectKind(source, st.isDirectory()));
  if (kind === 'csv' && !st.isFile()) throw new ImportError(`${source}: --kind csv needs a CSV/TSV file, this is a folder`);
  if (kind !== 'csv' && !st.isDirectory()) throw new ImportError(`${source}: --kind ${kind} needs a folder, this is a file`);
  const name = opts.name ?? basename(source, kind === 'csv' ? extname(source) : '');
  if (!/^[^/\\\0]{1,200}$/.test(name) || name === '.' || name === '..') throw new ImportError(`'${name}' is not a usable dataset name`);
  const existing = catalog.dataset(name);
  if (existing) {
    if (existing.source !== source || existing.kind !== kind) {
      throw new CatalogError(`dataset '${name}' already exists for ${existing.kind} ${existing.source}; choose another --name`);
    }
    return { ds: existing, created: false };
  }
  const root = kind === 'csv' ? dirname(source) : kind === 'idx' ? join(catalog.workspace, 'datasets', name, 'files') : source;
  return { ds: catalog.createDataset({ name, kind, source, root }), created: true };
}

function candidates(ds: DatasetRow, opts: ImportOptions, classes: readonly string[]): AsyncGenerator<Candidate> {
  const signal = opts.signal;
  if (ds.kind === 'csv') return csvSource(ds.source, signal);
  if (ds.kind === 'idx') {
    // Folder names are file-system safe; the label keeps the real class name and its fixed index.
    const byFolder = new Map(classes.map((c, i) => [classFolder(c), { name: c, ordinal: i }]));
    return folderSource(ds.root, {
      labeled: true,
      classOf: (f) => byFolder.get(f) ?? { name: f, ordinal: null },
      ...(signal ? { signal } : {}),
    });
  }
  return folderSource(ds.root, { labeled: ds.kind === 'folder', ...(signal ? { signal } : {}) });
}

/** Imports `opts.source`, or rescans it when a dataset with that name and source exists. */
export async function importDataset(catalog: Catalog, opts: ImportOptions): Promise<ImportSummary> {
  const { ds, created } = await datasetFor(catalog, opts);
  try {
    return await scan(catalog, ds, opts);
  } catch (e) {
    // A first import that failed before cataloging anything (bad idx files, say) leaves no empty dataset
    // behind to block the name; one with images keeps them so a rerun continues.
    if (created && !catalog.db.prepare('SELECT 1 FROM images WHERE dataset_id = ? LIMIT 1').get(ds.id)) {
      catalog.deleteDataset(ds.name);
      if (ds.kind === 'idx') await rm(join(catalog.workspace, 'datasets', ds.name), { recursive: true, force: true });
    }
    throw e;
  }
}

async function scan(catalog: Catalog, ds: DatasetRow, opts: ImportOptions): Promise<ImportSummary> {
  const progress: ImportProgress = { phase: 'scan', done: 0, total: null, added: 0, changed: 0, unchanged: 0, issues: 0 };
  let lastReport = 0;
  const report = (force = false) => {
    const now = Date.now();
    if (!opts.onProgress || (!force && now - lastReport < (opts.progressEveryMs ?? 100))) return;
    lastReport = now;
    opts.onProgress({ ...progress });
  };

  let classes: readonly string[] = [];
  if (ds.kind === 'idx') {
    classes = (opts.idxClasses ?? (/fashion/i.test(ds.source) ? 'fashion-mnist' : 'mnist')) === 'fashion-mnist' ? FASHION_MNIST_CLASSES : MNIST_CLASSES;
    progress.phase = 'materialize';
    await materializeIdx(ds.source, ds.root, join(catalog.workspace, 'datasets', ds.name, 'tmp'), {
      classes,
      sourceFile: join(catalog.workspace, 'datasets', ds.name, 'source.json'),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onProgress: (done, total) => {
        progress.done = done;
        progress.total = total;
        report(done === total);
      },
    });
    progress.phase = 'scan';
    progress.done = 0;
    progress.total = null;
  }

  const generation = catalog.beginScan(ds.id);
  const known = catalog.knownFiles(ds.id);
  const batchSize = opts.batchSize ?? 256;
  let batch: ScanRecord[] = [];
  const push = (r: ScanRecord) => {
    batch.push(r);
    if (batch.length >= batchSize) flush();
  };
  const flush = () => {
    if (!batch.length) return;
    catalog.writeScanBatch(ds.id, generation, batch);
    batch = [];
  };
  const maxPixels = opts.maxPixels;

  try {
    await forEachConcurrent(
      candidates(ds, opts, classes),
      opts.concurrency ?? availableParallelism() + 1,
      async (c) => {
        if (c.kind === 'issue') {
          progress.issues++;
          push({ type: 'issue', path: c.rel, reason: c.reason, detail: c.detail });
        } else {
          const k = known(c.rel);
          // Size and mtime unchanged means unchanged, except that an unreadable file is always retried.
          if (k && k.bytes === c.bytes && k.mtimeMs === c.mtimeMs && k.problem !== 'unreadable') {
            progress.unchanged++;
            push({ type: 'seen', path: c.rel });
          } else {
            const { analysis } = await analyzeImage(c.abs, maxPixels === undefined ? {} : { maxPixels });
            if (k) progress.changed++;
            else progress.added++;
            push({ type: 'image', path: c.rel, bytes: c.bytes, mtimeMs: c.mtimeMs, analysis, label: c.label, split: c.split });
          }
        }
        progress.done++;
        report();
      },
      opts.signal,
    );
  } finally {
    // Whatever was analysed is valid: keep it even when cancelled or failing, so a rerun starts further on.
    flush();
  }

  // Cancelled after the last file: still stop here, a scan is only finished when the user let it finish.
  opts.signal?.throwIfAborted();
  progress.phase = 'finish';
  report(true);
  const { removed } = catalog.finishScan(ds.id, generation);
  return summarize(catalog, ds, { added: progress.added, changed: progress.changed, unchanged: progress.unchanged, removed }, opts.nearThreshold);
}

/** The catalog's current state of a dataset, in the shape the CLI prints. */
export function summarize(
  catalog: Catalog,
  ds: DatasetRow,
  counts: { added: number; changed: number; unchanged: number; removed: number },
  nearThreshold = DEFAULT_NEAR_THRESHOLD,
): ImportSummary {
  const images = catalog.db.prepare(`SELECT COUNT(*) FROM images WHERE dataset_id = ? AND (flags & ${FLAG_CORRUPT}) = 0`).pluck().get(ds.id) as number;
  const corrupt = catalog.db
    .prepare(`SELECT path, problem AS reason, problem_detail AS detail FROM images WHERE dataset_id = ? AND (flags & ${FLAG_CORRUPT}) <> 0 ORDER BY path`)
    .all(ds.id) as Issue[];
  return {
    dataset: ds.name,
    kind: ds.kind,
    root: ds.root,
    images,
    classes: catalog.labels(ds.id).length,
    ...counts,
    exactDuplicateGroups: exactDuplicateGroups(catalog, ds.id).length,
    nearDuplicateGroups: nearDuplicateGroups(catalog, ds.id, nearThreshold).length,
    corrupt,
    skipped: catalog.issues(ds.id),
  };
}
