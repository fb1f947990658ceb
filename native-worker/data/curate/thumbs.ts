// Thumbnails for the curation UI, cached on disk under cache/thumbs/ by content hash: identical files share
// one thumbnail, and an edited file (new hash) never shows a stale one.
import { access, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Catalog } from '../catalog/catalog.ts';
import type { DatasetRow, ImageRow } from '../catalog/types.ts';
import { DEFAULT_MAX_PIXELS } from '../import/analyze.ts';

export const THUMB_DIR = join('cache', 'thumbs');

/** Where the thumbnail of `contentHash` at `size` lives, relative to the workspace. */
export function thumbnailPath(contentHash: string, size: number): string {
  return join(THUMB_DIR, contentHash.slice(0, 2), `${contentHash}-${size}.webp`);
}

/**
 * The absolute path of an image's thumbnail (longer side `size`, EXIF orientation applied), creating it on
 * first use. Returns null for corrupt images, which have nothing to show.
 */
export async function thumbnail(catalog: Catalog, dataset: DatasetRow, image: ImageRow, size = 128): Promise<string | null> {
  if (!image.contentHash || image.problem) return null;
  const file = join(catalog.workspace, thumbnailPath(image.contentHash, size));
  if (await access(file).then(() => true, () => false)) return file;
  const webp = await sharp(join(dataset.root, image.path), { autoOrient: true, limitInputPixels: DEFAULT_MAX_PIXELS, failOn: 'none' })
    .resize(size, size, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 80 })
    .toBuffer();
  await mkdir(join(file, '..'), { recursive: true });
  // Write then rename: a reader never sees a half-written thumbnail, and concurrent writers are harmless.
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, webp);
  await rename(tmp, file);
  return file;
}
