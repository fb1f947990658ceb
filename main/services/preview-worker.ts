// Augmentation previews off the main thread: one long-lived worker thread runs the loader's own transform
// (decode, crop, RandAugment, erasing, PNG encode: 10-15 ms an image) so the event loop keeps serving requests
// and events meanwhile. Messages in: PreviewJob; out: PreviewReply with the same id.
import { parentPort } from 'node:worker_threads';
import { previewSample } from '../../native-worker/data/pipeline/preview.ts';

export interface PreviewJob {
  id: number;
  file: string;
  mode: 'pretrain' | 'finetune' | 'eval';
  size: number;
  seed: number;
  k: number;
}

export type PreviewReply = { id: number; png: Uint8Array } | { id: number; error: string };

const port = parentPort;
port?.on('message', (j: PreviewJob) => {
  previewSample(j.file, { size: j.size, train: j.mode !== 'eval', mode: j.mode === 'pretrain' ? 'pretrain' : 'finetune' }, j.seed, j.k).then(
    (png) => port.postMessage({ id: j.id, png } satisfies PreviewReply),
    (e: Error) => port.postMessage({ id: j.id, error: e.message } satisfies PreviewReply),
  );
});
