// Files (images, thumbnails, artifacts, task outputs) are fetched by URL, never through the request channel.

export type FileRef =
  | { kind: 'image'; dataset: string; path: string }
  | { kind: 'thumb'; dataset: string; path: string; size: number }
  | { kind: 'artifact'; runId: string; path: string }
  | { kind: 'task'; taskId: string; path: string }
  /** The k-th augmented version of a dataset image under a recipe's transform (what training sees). */
  | { kind: 'preview'; dataset: string; path: string; mode: 'pretrain' | 'finetune' | 'eval'; size: number; seed: number; k: number };

/** The URL path of a file, relative to the transport's origin (web mode) or the app protocol (Electron). */
export function fileUrlPath(ref: FileRef): string {
  const segments = (p: string) => p.split('/').map(encodeURIComponent).join('/');
  if (ref.kind === 'artifact') return `/files/artifact/${encodeURIComponent(ref.runId)}/${segments(ref.path)}`;
  if (ref.kind === 'task') return `/files/task/${encodeURIComponent(ref.taskId)}/${segments(ref.path)}`;
  const base = `/files/${ref.kind}/${encodeURIComponent(ref.dataset)}/${segments(ref.path)}`;
  if (ref.kind === 'preview') return `${base}?mode=${ref.mode}&size=${ref.size}&seed=${ref.seed}&k=${ref.k}`;
  return ref.kind === 'thumb' ? `${base}?size=${ref.size}` : base;
}
