// What a dataset looks like: per-class and per-split counts, class balance, formats, the images whose size
// or shape is far from the rest of the dataset's (size-outliers.ts), and how many are smaller than the
// training input size (the loader upscales those).
import type { Catalog } from '../catalog/catalog.ts';
import { FLAG_CORRUPT, FLAG_EXCLUDED, type DatasetRow, type Split } from '../catalog/types.ts';
import { SPLITS } from '../../../common/manifest.ts';
import { type SizeGroup, sizeOutliers } from './size-outliers.ts';

export interface ClassCount {
  name: string;
  index: number;
  train: number;
  val: number;
  test: number;
  total: number;
}

export interface SizeOutlier {
  path: string;
  width: number;
  height: number;
  reason: 'small' | 'large' | 'aspect';
}

export interface DatasetStats {
  dataset: string;
  kind: DatasetRow['kind'];
  root: string;
  scanState: DatasetRow['scanState'];
  /** Images a manifest would list: neither corrupt nor excluded. */
  images: number;
  corrupt: number;
  excluded: number;
  splits: Record<Split, number>;
  classes: ClassCount[];
  unlabeled: Record<Split, number>;
  /** Largest over smallest class (usable images; ratio null when a class is empty); null without classes. */
  imbalance: { smallest: string; largest: string; ratio: number | null } | null;
  formats: Record<string, number>;
  size: { minWidth: number; maxWidth: number; minHeight: number; maxHeight: number } | null;
  /** Images far from this dataset's typical (median) size or shape; none when every image is alike. */
  outliers: { small: number; large: number; aspect: number; typical: { width: number; height: number } | null; examples: SizeOutlier[] };
  /** Images whose shorter side is below the training input size (upscaled by the loader). */
  belowInputSize: { inputSize: number; count: number };
}

export interface StatsOptions {
  /** The training input size the "smaller than the input" count is about (default 224, the paper's). */
  inputSize?: number;
  /** How many outliers to list, most extreme first (default 20). */
  examples?: number;
}

export const DEFAULT_INPUT_SIZE = 224;

const usable = `(flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0`;

export function datasetStats(catalog: Catalog, name: string, opts: StatsOptions = {}): DatasetStats {
  const ds = catalog.requireDataset(name);
  const db = catalog.db;

  const count = (where: string, ...p: unknown[]) => db.prepare(`SELECT COUNT(*) FROM images WHERE dataset_id = ? AND ${where}`).pluck().get(ds.id, ...p) as number;
  const splitCounts = () => ({ train: 0, val: 0, test: 0 }) as Record<Split, number>;

  const splits = splitCounts();
  const unlabeled = splitCounts();
  const perLabel = new Map<number, Record<Split, number>>();
  const rows = db
    .prepare(`SELECT label_id AS labelId, split, COUNT(*) AS n FROM images WHERE dataset_id = ? AND ${usable} GROUP BY label_id, split`)
    .all(ds.id) as { labelId: number | null; split: Split; n: number }[];
  for (const r of rows) {
    splits[r.split] += r.n;
    if (r.labelId === null) unlabeled[r.split] += r.n;
    else {
      let c = perLabel.get(r.labelId);
      if (!c) perLabel.set(r.labelId, (c = splitCounts()));
      c[r.split] += r.n;
    }
  }
  const classes = catalog.labels(ds.id).map((l): ClassCount => {
    const c = perLabel.get(l.id) ?? splitCounts();
    return { name: l.name, index: l.index, ...c, total: SPLITS.reduce((s, k) => s + c[k], 0) };
  });
  let imbalance: DatasetStats['imbalance'] = null;
  if (classes.length) {
    const sorted = [...classes].sort((a, b) => a.total - b.total);
    const smallest = sorted[0]!;
    const largest = sorted[sorted.length - 1]!;
    imbalance = { smallest: smallest.name, largest: largest.name, ratio: smallest.total ? largest.total / smallest.total : null };
  }

  const formats: Record<string, number> = {};
  for (const r of db.prepare(`SELECT format, COUNT(*) AS n FROM images WHERE dataset_id = ? AND ${usable} GROUP BY format ORDER BY format`).all(ds.id) as { format: string; n: number }[]) {
    formats[r.format] = r.n;
  }
  return {
    dataset: ds.name,
    kind: ds.kind,
    root: ds.root,
    scanState: ds.scanState,
    images: count(usable),
    corrupt: count(`(flags & ${FLAG_CORRUPT}) <> 0`),
    excluded: count(`(flags & ${FLAG_CORRUPT}) = 0 AND (flags & ${FLAG_EXCLUDED}) <> 0`),
    splits,
    classes,
    unlabeled,
    imbalance,
    formats,
    ...sizeReport(catalog, ds.id, opts),
  };
}

/** Size range, outliers against the dataset's own sizes (most extreme listed first), and images below the input size. */
function sizeReport(catalog: Catalog, datasetId: number, opts: StatsOptions): Pick<DatasetStats, 'size' | 'outliers' | 'belowInputSize'> {
  const db = catalog.db;
  const size = db
    .prepare(`SELECT MIN(width) AS minWidth, MAX(width) AS maxWidth, MIN(height) AS minHeight, MAX(height) AS maxHeight FROM images WHERE dataset_id = ? AND ${usable}`)
    .get(datasetId) as { minWidth: number | null; maxWidth: number; minHeight: number; maxHeight: number };

  const groups = db
    .prepare(`SELECT width, height, COUNT(*) AS n FROM images WHERE dataset_id = ? AND ${usable} AND width > 0 AND height > 0 GROUP BY width, height`)
    .all(datasetId) as SizeGroup[];
  const found = sizeOutliers(groups);
  const examples: SizeOutlier[] = [];
  const byPath = db.prepare(`SELECT path FROM images WHERE dataset_id = ? AND ${usable} AND width = ? AND height = ? ORDER BY path LIMIT ?`).pluck();
  for (const g of found.groups) {
    const room = (opts.examples ?? 20) - examples.length;
    if (room <= 0) break;
    for (const path of byPath.all(datasetId, g.width, g.height, room) as string[]) examples.push({ path, width: g.width, height: g.height, reason: g.reason });
  }
  const inputSize = opts.inputSize ?? DEFAULT_INPUT_SIZE;
  const below = groups.reduce((n, g) => n + (Math.min(g.width, g.height) < inputSize ? g.n : 0), 0);

  return {
    size: size.minWidth === null ? null : { ...size, minWidth: size.minWidth },
    outliers: { ...found.counts, typical: found.typical, examples },
    belowInputSize: { inputSize, count: below },
  };
}
