// Curation edits: relabel, move between splits, exclude/include, and a seeded stratified split. Each is
// one logged edit in the catalog and can be undone.
import { type Catalog, CatalogError } from '../catalog/catalog.ts';
import { FLAG_CORRUPT, FLAG_EXCLUDED, type EditRow, type FieldChange, type ImageRow, type Split } from '../catalog/types.ts';
import { Rng } from '../../nn/random.ts';
import { mixSeed } from '../rng.ts';

/** The images at these paths; an unknown path is an error that names it. */
function imagesAt(catalog: Catalog, datasetId: number, paths: readonly string[]): ImageRow[] {
  return paths.map((p) => {
    const img = catalog.imageByPath(datasetId, p);
    if (!img) throw new CatalogError(`no image '${p}' in this dataset`);
    return img;
  });
}

/** Gives images a class (created if new) or, with null, removes their label. */
export function relabel(catalog: Catalog, dataset: string, paths: readonly string[], label: string | null): EditRow | null {
  const ds = catalog.requireDataset(dataset);
  return catalog.db.transaction(() => {
    const images = imagesAt(catalog, ds.id, paths);
    const created: number[] = [];
    let labelId: number | null = null;
    if (label !== null) {
      const l = catalog.ensureLabel(ds.id, label);
      labelId = l.id;
      if (l.created) created.push(l.id);
    }
    const changes = images.map((i): FieldChange => ({ imageId: i.id, field: 'label_id', value: labelId }));
    return catalog.recordEdit(ds.id, 'relabel', `relabel ${images.length} image(s) as ${label ?? '(unlabeled)'}`, changes, created);
  })();
}

export function moveToSplit(catalog: Catalog, dataset: string, paths: readonly string[], split: Split): EditRow | null {
  const ds = catalog.requireDataset(dataset);
  const images = imagesAt(catalog, ds.id, paths);
  return catalog.recordEdit(ds.id, 'move', `move ${images.length} image(s) to ${split}`, images.map((i) => ({ imageId: i.id, field: 'split', value: split })));
}

/** Excludes images from manifests (or includes them again) without touching the files. */
export function setExcluded(catalog: Catalog, dataset: string, paths: readonly string[], excluded: boolean): EditRow | null {
  const ds = catalog.requireDataset(dataset);
  const images = imagesAt(catalog, ds.id, paths);
  const changes = images.map((i): FieldChange => ({ imageId: i.id, field: 'flags', value: excluded ? i.flags | FLAG_EXCLUDED : i.flags & ~FLAG_EXCLUDED }));
  return catalog.recordEdit(ds.id, excluded ? 'exclude' : 'include', `${excluded ? 'exclude' : 'include'} ${images.length} image(s)`, changes);
}

/** Records that reviewed images keep their labels (a suspected label error judged right). */
export function keepLabels(catalog: Catalog, dataset: string, paths: readonly string[]): EditRow {
  const ds = catalog.requireDataset(dataset);
  const images = imagesAt(catalog, ds.id, paths);
  const what = images.length === 1 ? `${images[0]!.path} as ${images[0]!.label ?? '(unlabeled)'}` : `${images.length} image(s)`;
  return catalog.recordNote(ds.id, 'review-keep', `reviewed: kept the label of ${what}`);
}

export interface SplitOptions {
  /** Fraction of each class that goes to val. */
  val: number;
  /** Fraction of each class that goes to test; when 0 (default) the test split is left as it is. */
  test?: number;
  seed: number;
}

export interface SplitResult {
  edit: EditRow | null;
  counts: Record<Split, number>;
}

/**
 * Re-splits usable images per class (unlabeled images form their own stratum): each stratum is sorted by
 * path, shuffled with a generator seeded from (seed, stratum name), and its first round(n * val) go to val,
 * the next round(n * test) to test, the rest to train. Same catalog + seed gives the same split, whatever
 * the import order. With test = 0, images already in test stay there and are not counted.
 */
export function stratifiedSplit(catalog: Catalog, dataset: string, opts: SplitOptions): SplitResult {
  const test = opts.test ?? 0;
  for (const [k, v] of [['val', opts.val], ['test', test]] as const) {
    if (!(v >= 0 && v < 1)) throw new CatalogError(`--${k} must be a fraction in [0, 1), got ${v}`);
  }
  if (opts.val + test >= 1) throw new CatalogError(`val + test fractions must leave something to train on (got ${opts.val + test})`);
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) throw new CatalogError(`--seed must be a non-negative integer, got ${opts.seed}`);
  const ds = catalog.requireDataset(dataset);
  const candidates = catalog.images(ds.id, `(i.flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0${test > 0 ? '' : " AND i.split <> 'test'"}`);
  const strata = new Map<string, ImageRow[]>();
  for (const img of candidates) {
    // '\0' cannot be in a class name, so it keys the unlabeled stratum without clashing.
    const key = img.label ?? '\0';
    let s = strata.get(key);
    if (!s) strata.set(key, (s = []));
    s.push(img);
  }
  const changes: FieldChange[] = [];
  const counts: Record<Split, number> = { train: 0, val: 0, test: 0 };
  for (const [key, images] of [...strata].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const order = [...images].sort((a, b) => (a.path < b.path ? -1 : 1));
    new Rng(mixSeed(opts.seed, ...Array.from(key, (ch) => ch.codePointAt(0)!))).shuffle(order);
    const nVal = Math.round(order.length * opts.val);
    const nTest = Math.round(order.length * test);
    order.forEach((img, i) => {
      const split: Split = i < nVal ? 'val' : i < nVal + nTest ? 'test' : 'train';
      counts[split]++;
      changes.push({ imageId: img.id, field: 'split', value: split });
    });
  }
  const summary = `stratified split: val ${opts.val}${test ? `, test ${test}` : ''}, seed ${opts.seed}`;
  return { edit: catalog.recordEdit(ds.id, 'split', summary, changes), counts };
}

/** Undoes the dataset's newest edit; null when there is nothing to undo. */
export function undoLastEdit(catalog: Catalog, dataset: string): EditRow | null {
  return catalog.undo(catalog.requireDataset(dataset).id);
}
