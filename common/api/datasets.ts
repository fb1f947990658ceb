// Datasets: the catalog, its statistics, curation edits, imports and manifest exports.
import { z } from 'zod';
import { absolutePath, int, isoTime } from './fields.ts';
import { DatasetName, RelativePath, Split } from './vocabulary.ts';


export const DatasetKind = z.enum(['folder', 'csv', 'idx', 'unlabeled']);
export const ScanState = z.enum(['new', 'scanning', 'complete']);

export const DatasetSummary = z.object({
  name: z.string(),
  kind: DatasetKind,
  source: z.string(),
  root: z.string(),
  createdAt: isoTime,
  scanState: ScanState,
  scannedAt: isoTime.nullable(),
  /** Usable images: neither corrupt nor excluded. */
  images: int(0),
  classes: int(0),
  versions: int(0),
});
export type DatasetSummary = z.infer<typeof DatasetSummary>;

export const EditRow = z.object({ id: int(1), at: isoTime, kind: z.string(), summary: z.string(), undoneAt: isoTime.nullable(), changes: int(0) });
export type EditRow = z.infer<typeof EditRow>;

export const DatasetDetail = DatasetSummary.extend({
  labels: z.array(z.object({ name: z.string(), index: int(0), images: int(0) })),
  versionList: z.array(z.object({ version: int(1), createdAt: isoTime, hash: z.string() })),
  /** The newest edits first (at most 50). */
  edits: z.array(EditRow),
  corrupt: int(0),
  excluded: int(0),
  /** Paths the last scan skipped (not images, unreadable...). */
  skipped: int(0),
});
export type DatasetDetail = z.infer<typeof DatasetDetail>;

/** Image counts per split. */
export const SplitCounts = z.object({ train: int(0), val: int(0), test: int(0) });

export const DatasetStats = z.object({
  dataset: z.string(),
  kind: DatasetKind,
  root: z.string(),
  scanState: ScanState,
  images: int(0),
  corrupt: int(0),
  excluded: int(0),
  splits: SplitCounts,
  classes: z.array(z.object({ name: z.string(), index: int(0), train: int(0), val: int(0), test: int(0), total: int(0) })),
  unlabeled: SplitCounts,
  imbalance: z.object({ smallest: z.string(), largest: z.string(), ratio: z.number().nullable() }).nullable(),
  formats: z.record(z.string(), int(0)),
  size: z.object({ minWidth: z.number(), maxWidth: z.number(), minHeight: z.number(), maxHeight: z.number() }).nullable(),
  /** Images far from the dataset's own typical (median) size or shape; see native-worker/data/curate/size-outliers.ts. */
  outliers: z.object({
    small: int(0),
    large: int(0),
    aspect: int(0),
    typical: z.object({ width: z.number(), height: z.number() }).nullable(),
    examples: z.array(z.object({ path: z.string(), width: z.number(), height: z.number(), reason: z.enum(['small', 'large', 'aspect']) })),
  }),
  /** Images whose shorter side is below the training input size: the loader upscales them. */
  belowInputSize: z.object({ inputSize: int(1), count: int(0) }),
});
export type DatasetStats = z.infer<typeof DatasetStats>;

export const DuplicateGroup = z.object({
  key: z.string(),
  images: z.array(z.object({ id: int(1), path: z.string(), label: z.string().nullable(), split: z.string() })),
});
export const DatasetDupes = z.object({
  dataset: z.string(), threshold: int(0, 32), exact: z.array(DuplicateGroup), near: z.array(DuplicateGroup),
  /** Embeddings above a cosine threshold, from the dataset's newest curation (empty without one). */
  semantic: z.array(DuplicateGroup).default([]),
});
export type DatasetDupes = z.infer<typeof DatasetDupes>;

export const ImageStatus = z.enum(['usable', 'corrupt', 'excluded', 'all']);
export const ImagesQuery = z.strictObject({
  name: DatasetName,
  offset: int(0).default(0),
  limit: int(1, 500).default(100),
  split: Split.optional(),
  /** A class name; null selects unlabeled images. */
  label: z.string().nullable().optional(),
  status: ImageStatus.default('usable'),
  /** Case-insensitive substring of the path. */
  search: z.string().max(500).optional(),
});
export const ImageInfo = z.object({
  id: int(1),
  path: z.string(),
  bytes: int(0),
  width: z.number().nullable(),
  height: z.number().nullable(),
  channels: z.number().nullable(),
  format: z.string().nullable(),
  label: z.string().nullable(),
  split: Split,
  corrupt: z.boolean(),
  excluded: z.boolean(),
  problem: z.string().nullable(),
  problemDetail: z.string().nullable(),
  contentHash: z.string().nullable(),
});
export type ImageInfo = z.infer<typeof ImageInfo>;
export const ImagesPage = z.object({ total: int(0), offset: int(0), items: z.array(ImageInfo) });
export type ImagesPage = z.infer<typeof ImagesPage>;

/** The paths a curation edit applies to. */
export const EditPaths = z.array(RelativePath).min(1).max(10_000);
export const EditResult = z.object({ edit: EditRow.nullable() });

export const ImportRequest = z.strictObject({
  source: absolutePath,
  name: DatasetName.optional(),
  kind: DatasetKind.optional(),
  idxClasses: z.enum(['fashion-mnist', 'mnist']).optional(),
});
export const ImportProgress = z.object({
  phase: z.enum(['materialize', 'scan', 'finish']),
  done: int(0),
  total: int(0).nullable(),
  added: int(0),
  changed: int(0),
  unchanged: int(0),
  issues: int(0),
});
const Issue = z.object({ path: z.string(), reason: z.string(), detail: z.string() });
export const ImportSummary = z.object({
  dataset: z.string(),
  kind: DatasetKind,
  root: z.string(),
  images: int(0),
  classes: int(0),
  added: int(0),
  changed: int(0),
  removed: int(0),
  unchanged: int(0),
  exactDuplicateGroups: int(0),
  nearDuplicateGroups: int(0),
  corrupt: z.array(Issue),
  skipped: z.array(Issue),
});
export type ImportSummary = z.infer<typeof ImportSummary>;
/** An import (or rescan) running in the background; reported on the datasetProgress stream. */
export const ImportTask = z.object({
  taskId: z.string(),
  source: z.string(),
  name: z.string().nullable(),
  state: z.enum(['running', 'completed', 'failed', 'cancelled']),
  progress: ImportProgress.nullable(),
  summary: ImportSummary.nullable(),
  error: z.string().nullable(),
  startedAt: isoTime,
  finishedAt: isoTime.nullable(),
});
export type ImportTask = z.infer<typeof ImportTask>;

export const ManifestExport = z.object({
  dataset: z.string(),
  file: z.string(),
  version: int(1),
  hash: z.string(),
  items: int(0),
  classes: int(0),
  splits: SplitCounts,
});
export type ManifestExport = z.infer<typeof ManifestExport>;

export const DatasetChanged = z.object({ dataset: z.string(), reason: z.enum(['imported', 'edited', 'undone', 'exported', 'deleted']) });
