// Images for the commands that look at a model on a few dataset images (analyze, reconstructions): a frozen
// manifest (a file, or the catalog's current one for a dataset), a pick of its items, and the eval transform.
import { join } from 'node:path';
import { type Manifest, sealManifest } from '../../common/manifest.ts';
import { exportManifest, readManifest } from '../data/manifest.ts';
import { createLoader } from '../data/pipeline/loader.ts';
import { CliError } from './command.ts';
import { withCatalog } from './dataset/shared.ts';

/** The manifest of --manifest FILE, or of --dataset NAME (frozen into `out`/manifest.json). */
export async function manifestOf(manifest: string | undefined, dataset: string | undefined, workspace: string | undefined, out: string): Promise<Manifest> {
  if (!!manifest === !!dataset) throw new CliError('give the images with exactly one of --manifest FILE or --dataset NAME');
  if (manifest) return readManifest(manifest).catch((e: Error) => {
    throw new CliError(e.message);
  });
  const file = join(out, 'manifest.json');
  await withCatalog(workspace, (c) => exportManifest(c, dataset!, file));
  return readManifest(file);
}

/** Up to `count` images of `split`, taken round-robin over the classes (the paper uses different classes). */
export async function pickImages(m: Manifest, split: 'train' | 'val' | 'test', count: number): Promise<Manifest> {
  const byClass = new Map<number, Manifest['items']>();
  for (const item of m.items) if (item.split === split) byClass.set(item.label ?? -1, [...(byClass.get(item.label ?? -1) ?? []), item]);
  if (!byClass.size) throw new CliError(`the dataset has no ${split} images (use --split)`);
  const picked: Manifest['items'] = [];
  for (let round = 0; picked.length < count; round++) {
    let any = false;
    for (const items of byClass.values()) {
      const item = items[round];
      if (item && picked.length < count) {
        picked.push({ ...item, split: 'val' });
        any = true;
      }
    }
    if (!any) break;
  }
  return sealManifest({ version: 1, dataset: m.dataset, createdAt: m.createdAt, root: m.root, classes: m.classes, items: picked });
}

/** The items through the eval transform, in batches of `batch` (the last zero-padded; `rows` are real). */
export async function loadImages(m: Manifest, batch: number, size: number): Promise<{ images: Float32Array; rows: number }[]> {
  const loader = createLoader({ manifest: m, split: 'val', batchSize: batch, size, train: false, workers: 0 });
  const out: { images: Float32Array; rows: number }[] = [];
  const per = 3 * size * size;
  for await (const b of loader) {
    const rows = b.labels.length;
    const images = new Float32Array(batch * per);
    images.set(b.images.subarray(0, rows * per));
    out.push({ images, rows });
  }
  return out;
}
