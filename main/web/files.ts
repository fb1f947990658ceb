// Files the UI may load by URL (the paths of common/api.ts fileUrlPath): images and thumbnails of cataloged
// datasets, and artifacts recorded for a run. Shared by web mode and Electron's app protocol. Nothing else
// on disk is reachable: every path segment is checked ('..', '.', empty and backslashes refused), the path
// must be one the catalog or the run's artifact table holds, and it must resolve inside its root.
import { realpath } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import { ApiError, DatasetName, RelativePath, RunId, TaskId } from '../../common/api.ts';
import type { Workbench } from '../services/workbench.ts';

const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.avif': 'image/avif',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** URL path segments after a prefix, percent-decoded; a malformed escape is an 'invalid' error. */
function segments(rest: string): string[] {
  try {
    return rest.split('/').map((s) => decodeURIComponent(s));
  } catch {
    throw new ApiError('invalid', 'malformed percent-encoding in the path');
  }
}

function checked<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new ApiError('invalid', `${what} '${String(value)}' is not allowed`);
  return r.data;
}

/**
 * The file behind a /files/... URL path, or an ApiError: 'invalid' for a malformed or traversing path,
 * 'not-found' for anything not registered.
 */
export async function resolveFile(wb: Workbench, pathname: string, query: URLSearchParams): Promise<{ file: string; contentType: string }> {
  const m = /^\/files\/(image|thumb|artifact|task|preview)\/(.+)$/.exec(pathname);
  if (!m) throw new ApiError('not-found', 'no such file route');
  const [owner, ...rest] = segments(m[2]!);
  const path = checked(RelativePath, rest.join('/'), 'path');
  if (m[1] === 'task') {
    const taskId = checked(TaskId, owner, 'task id');
    const wanted = wb.tasks.fileOf(taskId, path);
    const [root, file] = await Promise.all([realpath(wb.tasks.get(taskId).dir), realpath(wanted)]).catch(() => {
      throw new ApiError('not-found', `file '${path}' of task '${taskId}' is missing on disk`);
    });
    if (!file.startsWith(root + sep)) throw new ApiError('not-found', `file '${path}' resolves outside its task`);
    return { file, contentType: contentTypeOf(file) };
  }
  if (m[1] === 'artifact') {
    const runId = checked(RunId, owner, 'run id');
    const run = wb.store.run(runId);
    if (!run || !wb.store.artifactByPath(runId, path)) throw new ApiError('not-found', `no artifact '${path}' in run '${runId}'`);
    const [root, file] = await Promise.all([realpath(run.runDir), realpath(join(run.runDir, path))]).catch(() => {
      throw new ApiError('not-found', `artifact '${path}' is missing on disk`);
    });
    if (!file.startsWith(root + sep)) throw new ApiError('not-found', `artifact '${path}' resolves outside its run`);
    return { file, contentType: contentTypeOf(file) };
  }
  const dataset = checked(DatasetName, owner, 'dataset');
  if (m[1] === 'image') {
    const file = await wb.datasets.imageFile(dataset, path);
    return { file, contentType: contentTypeOf(file) };
  }
  if (m[1] === 'preview') return { file: await wb.datasets.preview(dataset, path, previewOptions(query)), contentType: 'image/png' };
  const size = Number(query.get('size') ?? 128);
  if (!Number.isInteger(size) || size < 16 || size > 1024) throw new ApiError('invalid', 'size must be an integer from 16 to 1024');
  const file = await wb.datasets.thumbnail(dataset, path, size);
  if (!file) throw new ApiError('not-found', `image '${path}' is corrupt; it has no thumbnail`);
  return { file, contentType: 'image/webp' };
}

/** ?mode=pretrain|finetune|eval&size=32..512 (a multiple of 32)&seed=N&k=0..63 of a /files/preview/ URL. */
function previewOptions(q: URLSearchParams): { mode: 'pretrain' | 'finetune' | 'eval'; size: number; seed: number; k: number } {
  const mode = q.get('mode') ?? 'finetune';
  if (mode !== 'pretrain' && mode !== 'finetune' && mode !== 'eval') throw new ApiError('invalid', `mode must be pretrain, finetune or eval, not '${mode}'`);
  const num = (name: string, fallback: number, lo: number, hi: number) => {
    const v = Number(q.get(name) ?? fallback);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new ApiError('invalid', `${name} must be an integer from ${lo} to ${hi}`);
    return v;
  };
  const size = num('size', 224, 32, 512);
  if (size % 32) throw new ApiError('invalid', 'size must be a multiple of 32');
  return { mode, size, seed: num('seed', 0, 0, 2 ** 31 - 1), k: num('k', 0, 0, 63) };
}
