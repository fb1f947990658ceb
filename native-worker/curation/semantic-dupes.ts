// Semantic near-duplicates for the duplicate review: the groups of the newest curation report of a dataset
// (any weights), with each image's current label and split; images gone from the catalog drop out.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CurationReport } from '../../common/curation.ts';
import type { Catalog } from '../data/catalog/catalog.ts';
import { FLAG_CORRUPT } from '../data/catalog/types.ts';
import type { DuplicateGroup } from '../data/curate/dupes.ts';
import { listStores } from './store.ts';

/** The newest curation.json of the dataset's embedding sets, validated, or null. */
export function latestReport(workspace: string, datasetId: number): CurationReport | null {
  const found = listStores(workspace, datasetId)
    .map((s) => join(s.dir, 'curation.json'))
    .flatMap((f) => {
      try {
        return [{ f, t: statSync(f).mtimeMs }];
      } catch {
        return [];
      }
    })
    .sort((a, b) => b.t - a.t)[0];
  if (!found) return null;
  try {
    return CurationReport.parse(JSON.parse(readFileSync(found.f, 'utf8')));
  } catch {
    return null; // a damaged report is as good as none: the next `issues` run rewrites it
  }
}

export function semanticDuplicateGroups(catalog: Catalog, workspace: string, datasetId: number): DuplicateGroup[] {
  const report = latestReport(workspace, datasetId);
  if (!report) return [];
  const byId = new Map(catalog.images(datasetId, `(i.flags & ${FLAG_CORRUPT}) = 0`).map((i) => [i.id, i]));
  return report.groups.flatMap((g) => {
    const images = g.imageIds.flatMap((id) => {
      const i = byId.get(id);
      return i ? [{ id, path: i.path, label: i.label, split: i.split }] : [];
    });
    return images.length > 1 ? [{ key: `cosine>=${report.threshold}:${images[0]!.path}`, images }] : [];
  });
}
