// What a dataset looks like: per-class and per-split counts, class balance, formats, and the images whose
// size or shape is extreme enough to deserve a look before training.
import type { Catalog } from '../catalog/catalog.ts';
import { FLAG_CORRUPT, FLAG_EXCLUDED, type DatasetRow, type Split } from '../catalog/types.ts';
import { SPLITS } from '../../../common/manifest.ts';

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
  outliers: { small: number; large: number; aspect: number; examples: SizeOutlier[] };
}

export interface StatsOptions {
  /** Shorter side below this is 'small' (default 32, the smallest input a ConvNeXt stem handles sanely). */
  minSide?: number;
  /** Longer side above this is 'large' (default 8192). */
  maxSide?: number;
  /** Long/short side ratio above this is 'aspect' (default 4). */
  maxAspect?: number;
  /** How many outliers to list (default 20). */
  examples?: number;
}

const usable = `(flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0`;

export function datasetStats(catalog: Catalog, name: string, opts: StatsOptions = {}): DatasetStats {
  const ds = catalog.requireDataset(name);
  const db = catalog.db;
  const minSide = opts.minSide ?? 32;
  const maxSide = opts.maxSide ?? 8192;
  const maxAspect = opts.maxAspect ?? 4;

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
  const size = db
    .prepare(`SELECT MIN(width) AS minWidth, MAX(width) AS maxWidth, MIN(height) AS minHeight, MAX(height) AS maxHeight FROM images WHERE dataset_id = ? AND ${usable}`)
    .get(ds.id) as { minWidth: number | null; maxWidth: number; minHeight: number; maxHeight: number };

  const small = `MIN(width, height) < ${Number(minSide)}`;
  const large = `MAX(width, height) > ${Number(maxSide)}`;
  const aspect = `MAX(width, height) > ${Number(maxAspect)} * MIN(width, height)`;
  const examples = db
    .prepare(
      `SELECT path, width, height, CASE WHEN ${small} THEN 'small' WHEN ${large} THEN 'large' ELSE 'aspect' END AS reason
       FROM images WHERE dataset_id = ? AND ${usable} AND (${small} OR ${large} OR ${aspect}) ORDER BY path LIMIT ?`,
    )
    .all(ds.id, opts.examples ?? 20) as SizeOutlier[];

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
    size: size.minWidth === null ? null : { ...size, minWidth: size.minWidth },
    outliers: { small: count(`${usable} AND ${small}`), large: count(`${usable} AND ${large}`), aspect: count(`${usable} AND ${aspect}`), examples },
  };
}
