// Manifests on disk: building one from the catalog, freezing it as a dataset version, writing and reading
// files. The schema and the hash live in common/manifest.ts.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Manifest, ManifestError, parseManifest, sealManifest } from '../../common/manifest.ts';
import type { Catalog } from './catalog/catalog.ts';
import { FLAG_CORRUPT, FLAG_EXCLUDED } from './catalog/types.ts';

/** The manifest of a dataset as the catalog has it now: usable images in path order. */
export function buildManifest(catalog: Catalog, dataset: string, now = new Date()): Manifest {
  const ds = catalog.requireDataset(dataset);
  const labels = catalog.labels(ds.id);
  const indexOf = new Map(labels.map((l) => [l.id, l.index]));
  const items: Manifest['items'] = [];
  for (const img of catalog.iterateImages(ds.id, `(i.flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0`)) {
    items.push({ path: img.path, label: img.labelId === null ? null : indexOf.get(img.labelId)!, split: img.split });
  }
  return sealManifest({ version: 1, dataset: ds.name, createdAt: now.toISOString(), root: ds.root, classes: labels.map((l) => l.name), items });
}

/** JSON with one item per line: diffable and still compact for 100k items. */
export function formatManifest(m: Manifest): string {
  const head = JSON.stringify({ version: m.version, dataset: m.dataset, createdAt: m.createdAt, root: m.root, classes: m.classes }, null, 2);
  const items = m.items.map((i) => `    ${JSON.stringify(i)}`).join(',\n');
  return `${head.slice(0, -2)},\n  "items": [${items ? `\n${items}\n  ` : ''}],\n  "hash": ${JSON.stringify(m.hash)}\n}\n`;
}

/**
 * Freezes the dataset's current manifest as a version and writes it to `file`. When nothing changed since
 * the newest version (same hash), that version is written again byte for byte instead of a new one.
 */
export async function exportManifest(catalog: Catalog, dataset: string, file: string): Promise<{ manifest: Manifest; version: number; file: string }> {
  const ds = catalog.requireDataset(dataset);
  const built = buildManifest(catalog, dataset);
  const latest = catalog.versions(ds.id).at(-1);
  let version: number;
  let text: string;
  if (latest && latest.hash === built.hash) {
    version = latest.version;
    text = catalog.versionManifest(ds.id, version)!;
  } else {
    text = formatManifest(built);
    version = catalog.addVersion(ds.id, built.hash, text);
  }
  const target = resolve(file);
  const tmp = `${target}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, target);
  return { manifest: JSON.parse(text) as Manifest, version, file: target };
}

/** Reads and validates a manifest file; every error names the file and the problem. */
export async function readManifest(file: string): Promise<Manifest> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ManifestError(`${path}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseManifest(data, path);
}
