// Grad-CAM off the main thread: one long-lived worker thread keeps the classifiers loaded and compiled
// (ExplainerCache, one entry per checkpoint and size) so repeated "Try it" requests skip the load and compile.
// Messages in: ExplainJob; out: ExplainReply with the same id.
import { parentPort } from 'node:worker_threads';
import { prepareImage } from '../../native-worker/analysis/explain-image.ts';
import { ExplainerCache, explainWith } from '../../native-worker/analysis/explain.ts';

export interface ExplainJob {
  id: number;
  image: string;
  size: number;
  models: { file: string; name: string }[];
  target?: number;
}

export interface ExplainedModel {
  name: string;
  arch: string;
  top: { index: number; name: string | null; p: number }[];
  target: { index: number; name: string | null };
  cam: number[][];
  camMax: number;
  overlay: Uint8Array;
  ms: number;
}

export type ExplainReply = { id: number; models: ExplainedModel[] } | { id: number; error: string };

const cache = new ExplainerCache({ max: 4, provider: 'cpu' });

async function run(j: ExplainJob): Promise<ExplainedModel[]> {
  const img = await prepareImage(j.image, j.size).catch((e: Error) => {
    throw new Error(`cannot read the image (${e.message})`);
  });
  const out: ExplainedModel[] = [];
  for (const m of j.models) {
    const model = await cache.get(m.file, j.size);
    if (j.target !== undefined && j.target >= model.numClasses) throw new Error(`class ${j.target}: ${m.name} has ${model.numClasses} classes`);
    const r = await explainWith(model, img, j.target);
    out.push({ name: m.name, arch: model.arch, top: r.top, target: r.target, cam: r.cam, camMax: r.camMax, overlay: r.overlay, ms: r.ms });
  }
  return out;
}

// One request at a time: the sessions are shared, and onnxruntime uses every core for each.
let queue: Promise<unknown> = Promise.resolve();
const port = parentPort;
port?.on('message', (j: ExplainJob) => {
  queue = queue.then(() =>
    run(j).then(
      (models) => port.postMessage({ id: j.id, models } satisfies ExplainReply),
      (e: Error) => port.postMessage({ id: j.id, error: e.message } satisfies ExplainReply),
    ),
  );
});
