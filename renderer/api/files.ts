// URLs of images, thumbnails and run artifacts. Both hosts serve them under /files/ on the page's own
// origin (web mode's server, Electron's app protocol), so a relative URL works in either.
import { fileUrlPath } from '../../common/api.ts';

/** Thumbnails are rendered at these sizes only, so the server's thumbnail cache is shared by every view. */
export const THUMB_SIZES = [96, 192, 384] as const;

export function thumbUrl(dataset: string, path: string, cssPixels: number, devicePixelRatio = 1): string {
  const want = cssPixels * devicePixelRatio;
  const size = THUMB_SIZES.find((s) => s >= want) ?? THUMB_SIZES[2];
  return fileUrlPath({ kind: 'thumb', dataset, path, size });
}

export function imageUrl(dataset: string, path: string): string {
  return fileUrlPath({ kind: 'image', dataset, path });
}

export function artifactUrl(runId: string, path: string): string {
  return fileUrlPath({ kind: 'artifact', runId, path });
}

export function taskFileUrl(taskId: string, path: string): string {
  return fileUrlPath({ kind: 'task', taskId, path });
}

export function previewUrl(p: { dataset: string; path: string; mode: 'pretrain' | 'finetune' | 'eval'; size: number; seed: number; k: number }): string {
  return fileUrlPath({ kind: 'preview', ...p });
}
