// Curation of a catalog dataset with one checkpoint: its embeddings (embed.ts, stored per dataset and
// weights), then suspected label errors (cross-validated probes + confident learning), outliers (Mahalanobis
// distance of the middle stages' statistics), semantic near-duplicate groups (cosine threshold) and a 2D map, saved as curation.json in
// the embeddings' folder for the app and `cnx dataset dupes`.
import { renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Catalog } from '../data/catalog/catalog.ts';
import { FLAG_CORRUPT, FLAG_EXCLUDED } from '../data/catalog/types.ts';
import type { ProviderChoice } from '../engine/runtime.ts';
import { confidentLearning } from './confident.ts';
import { type EmbedResult, embedItems, sha256File } from './embed.ts';
import { Embedder, loadEncoder, statsDim } from './embedder.ts';
import { checkFit } from './fit.ts';
import { nearestNeighbours, similarGroups, unitRows } from './neighbours.ts';
import { mahalanobisScores } from './outliers.ts';
import { crossValidatedProbabilities } from './probes.ts';
import { project } from './projection.ts';
import { type StoreMeta, storeDir } from './store.ts';
import type { CurationReport } from '../../common/curation.ts';

export interface EmbedOptions {
  size?: number;
  batch?: number;
  provider?: ProviderChoice;
  threads?: number;
  progress?: (line: string, fraction: number) => void;
  signal?: AbortSignal;
}

export interface DatasetEmbeddings extends EmbedResult {
  meta: StoreMeta;
  dir: string;
  note: string;
}

/** Embeds the dataset's usable images (not corrupt, not excluded) with `weights`; resumes a stored set. */
export async function embedDataset(catalog: Catalog, workspace: string, name: string, weights: string, o: EmbedOptions = {}): Promise<DatasetEmbeddings> {
  const ds = catalog.requireDataset(name);
  const file = resolve(weights);
  const enc = await loadEncoder(file);
  const fit = checkFit(file, enc, { name: ds.name, classes: catalog.labels(ds.id).map((l) => l.name) });
  const size = o.size ?? fit.runSize ?? 224;
  const items = catalog.images(ds.id, `(i.flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0 AND i.content_hash IS NOT NULL`).map((i) => ({ id: i.id, path: i.path, hash: i.contentHash! }));
  const meta: StoreMeta = { version: 2, dataset: ds.name, datasetId: ds.id, weights: file, weightsSha256: await sha256File(file), arch: enc.arch.name, size, dim: enc.arch.dims.at(-1)!, statsDim: statsDim(enc.arch), createdAt: new Date().toISOString() };
  const dir = storeDir(workspace, meta);
  const embedder = await Embedder.create(enc, o.batch ?? 64, size, { ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}) });
  try {
    const r = await embedItems({
      root: ds.root, items, dir, meta, embedder,
      ...(o.signal ? { signal: o.signal } : {}),
      progress: (done, total) => o.progress?.(`embedding: ${done}/${total} images`, done / total),
    });
    return { ...r, meta, dir, note: fit.note };
  } finally {
    await embedder.release();
  }
}

export interface CurateOptions {
  folds?: number;
  /** Neighbours per image for the map (and those shown beside a suspect). */
  k?: number;
  /** Cosine similarity at or above which images group as semantic near-duplicates. */
  threshold?: number;
  map?: boolean;
  progress?: (line: string, fraction: number) => void;
}

export const CURATE_DEFAULTS = { folds: 5, k: 10, threshold: 0.97 };

/** Label issues, outliers, semantic groups and (with `map`) the 2D map of embedded images. */
export async function curate(catalog: Catalog, e: DatasetEmbeddings, o: CurateOptions = {}): Promise<CurationReport> {
  const ds = catalog.requireDataset(e.meta.dataset);
  const classes = catalog.labels(ds.id);
  const byId = new Map(catalog.images(ds.id).map((i) => [i.id, i]));
  const rows = Array.from(e.embeddings.ids, (id) => byId.get(id)!);
  const indexOf = new Map(classes.map((l) => [l.id, l.index]));
  const labels = Int32Array.from(rows, (r) => (r.labelId === null ? -1 : indexOf.get(r.labelId)!));
  const { dim, vectors } = e.embeddings;
  const k = Math.min(o.k ?? CURATE_DEFAULTS.k, rows.length - 1);
  const time = async <T>(f: () => T | Promise<T>): Promise<[T, number]> => {
    const t = performance.now();
    return [await f(), (performance.now() - t) / 1000];
  };
  const labelled = labels.some((y) => y >= 0) && classes.length > 1;
  const [probs, probes] = await time(() => (labelled ? crossValidatedProbabilities(vectors, dim, labels, classes.length, { folds: o.folds ?? CURATE_DEFAULTS.folds }, (f) => o.progress?.(`probes: fold ${f + 1}`, 0.1 + 0.3 * f / 5)) : null));
  const cl = probs ? confidentLearning(probs, labels, classes.length) : null;
  const unit = unitRows(vectors, dim);
  const [nb, neighbours] = await time(() => nearestNeighbours(unit, dim, Math.max(k, 15), (d, n) => o.progress?.(`neighbours: ${d}/${n}`, 0.4 + 0.3 * d / n)));
  const outlier = mahalanobisScores(e.stats, e.statsDim);
  o.progress?.('map', 0.7);
  const [xy, projection] = await time(() => (o.map === false ? null : project(vectors, dim, nb)));
  const threshold = o.threshold ?? CURATE_DEFAULTS.threshold;
  const name = (y: number) => (y >= 0 ? classes[y]!.name : null);
  const outlierOrder = Array.from(outlier.keys()).sort((a, b) => outlier[b]! - outlier[a]!);
  return {
    version: 1, dataset: ds.name, weights: e.meta.weights, arch: e.meta.arch, size: e.meta.size, createdAt: new Date().toISOString(), note: e.note,
    timings: { embed: e.seconds, probes, neighbours, projection }, embedded: { computed: e.computed, reused: e.reused },
    classes: classes.map((c) => c.name),
    points: {
      ids: Array.from(e.embeddings.ids), paths: rows.map((r) => r.path), label: Array.from(labels), split: rows.map((r) => r.split),
      x: xy ? Array.from({ length: rows.length }, (_, i) => round(xy[2 * i]!)) : [], y: xy ? Array.from({ length: rows.length }, (_, i) => round(xy[2 * i + 1]!)) : [],
      labelScore: cl ? Array.from(cl.scores, round) : [], outlier: Array.from(outlier, round),
    },
    labelIssues: (cl?.issues ?? []).map((x) => ({
      imageId: rows[x.row]!.id, path: rows[x.row]!.path, given: name(x.given)!, suggested: name(x.suggested)!, score: round(x.score),
      neighbours: Array.from(nb.index.subarray(x.row * nb.k, x.row * nb.k + 6), (j) => rows[j]!.id),
    })),
    outliers: outlierOrder.slice(0, Math.min(200, rows.length)).map((i) => ({ imageId: rows[i]!.id, path: rows[i]!.path, score: round(outlier[i]!) })),
    threshold,
    groups: similarGroups(nb, threshold).map((g) => ({ imageIds: g.map((i) => rows[i]!.id), paths: g.map((i) => rows[i]!.path) })),
  };
}

/** Writes the report beside the embeddings (what the app and `dupes` read). */
export function saveReport(dir: string, report: CurationReport): string {
  const file = join(dir, 'curation.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(report));
  renameSync(`${file}.tmp`, file);
  return file;
}

const round = (v: number) => Math.round(v * 1e4) / 1e4;
