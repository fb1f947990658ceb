// `cnx explain --serve`: the app's "Try it" worker. Reads ExplainJob lines (common/explain-protocol.ts) on
// stdin, answers ExplainReply lines on stdout, one job at a time, keeping up to four (checkpoint, size) pairs
// loaded and compiled between jobs. Ends when stdin closes.
import { createInterface } from 'node:readline';
import { ExplainJob, type ExplainReply, type ExplainedModel } from '../../common/explain-protocol.ts';
import { prepareImage } from '../analysis/explain-image.ts';
import { ExplainerCache, explainWith } from '../analysis/explain.ts';

async function run(cache: ExplainerCache, j: ExplainJob): Promise<ExplainedModel[]> {
  const img = await prepareImage(j.image, j.size).catch((e: Error) => {
    throw new Error(`cannot read the image (${e.message})`);
  });
  const out: ExplainedModel[] = [];
  for (const m of j.models) {
    const model = await cache.get(m.file, j.size);
    if (j.target !== undefined && j.target >= model.numClasses) throw new Error(`class ${j.target}: ${m.name} has ${model.numClasses} classes`);
    const r = await explainWith(model, img, j.target);
    out.push({ name: m.name, arch: model.arch, top: r.top, target: r.target, cam: r.cam, camMax: r.camMax, overlay: r.overlay.toString('base64'), ms: r.ms });
  }
  return out;
}

export async function serveExplain(): Promise<number> {
  const cache = new ExplainerCache({ max: 4, provider: 'cpu' });
  const reply = (r: ExplainReply) => process.stdout.write(`${JSON.stringify(r)}\n`);
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    let job: ExplainJob;
    try {
      job = ExplainJob.parse(JSON.parse(line));
    } catch (e) {
      reply({ id: 0, error: `bad request line: ${(e as Error).message.slice(0, 500)}` });
      continue;
    }
    try {
      reply({ id: job.id, models: await run(cache, job) });
    } catch (e) {
      reply({ id: job.id, error: (e as Error).message });
    }
  }
  await cache.release();
  return 0;
}
