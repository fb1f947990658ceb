// Runs a job config (common/job.ts) on the ONNX engine: FCMAE pretraining, fine-tuning or evaluation on a
// dataset manifest, speaking the event protocol (common/protocol.ts) and writing the run files that the
// PyTorch engine writes too (run-files.ts), so either engine can resume or evaluate the other's checkpoints.
import { UserError } from '../../common/errors.ts';
import { type JobConfig, JobConfigError, parseJobConfig, processesPerNode } from '../../common/job.ts';
import { parseArch } from '../../common/variants.ts';
import { chooseProvider } from '../engine/runtime.ts';
import { convnextParams } from '../nn/convnext.ts';
import { lrAt } from '../optim/recipes.ts';
import { JobError, type RunOptions, lazyEvaluator, loadManifest, provider, weightsFile, writeMistakes } from './job-context.ts';
import { readWeights } from './run-files.ts';
import { Training, prepare, restore } from './training.ts';

export type JobStatus = 'completed' | 'cancelled' | 'failed';

export { JobError, type RunOptions } from './job-context.ts';

/** Runs the job to its end; never throws: failures become an `error` event and `done` failed. */
export async function runJob(raw: unknown, o: RunOptions): Promise<JobStatus> {
  const { sink } = o;
  let status: JobStatus = 'failed';
  try {
    const cfg = parseJobConfig(raw);
    if (processesPerNode(cfg) > 1) throw new JobError(`a data-parallel run (${processesPerNode(cfg)} processes) needs the PyTorch engine; this is the ONNX engine`);
    status = await (cfg.kind === 'eval' ? evaluateJob(cfg, o) : train(cfg, o));
  } catch (e) {
    sink.emit('error', { message: (e as Error).message, detail: e instanceof UserError ? '' : ((e as Error).stack ?? ''), ...(e instanceof JobConfigError ? { field: e.field } : {}) });
    status = 'failed';
  }
  sink.emit('done', { status });
  return status;
}

/** A training job, nanoGPT-style: restore, build, then per step lr -> step -> log -> checkpoint -> evaluate. */
async function train(cfg: JobConfig, o: RunOptions): Promise<JobStatus> {
  const prepared = await prepare(cfg, o);
  const restored = await restore(cfg, prepared.specs, o);
  const t = await Training.build(cfg, o, prepared, restored);
  const { trainer } = t;
  const optim = cfg.optim!;
  const due = (every: number | null | undefined) => !!every && trainer.stepCount % every === 0;
  try {
    for await (const batch of t.loader) {
      if (o.signal.aborted) break;
      t.sampler?.remember(batch.images);
      if (trainer.stepCount >= optim.totalSteps) break;
      if (!t.collect(batch)) continue;
      const lr = lrAt(trainer.stepCount, optim.lr, optim.warmupSteps, optim.totalSteps, optim.minLr);
      const r = await t.trainStep(lr);
      t.log(r, lr);
      if (due(cfg.checkpointEverySteps)) await t.save();
      if (due(cfg.evalEverySteps)) await t.evaluate();
      if (trainer.stepCount >= optim.totalSteps) break;
    }
    if (!o.signal.aborted && !due(cfg.evalEverySteps)) await t.evaluate();
    await t.save();
  } finally {
    await t.close();
  }
  return o.signal.aborted ? 'cancelled' : 'completed';
}

/** An eval job: the weights in `init.weights` on the manifest's eval split. */
async function evaluateJob(cfg: JobConfig, o: RunOptions): Promise<JobStatus> {
  const manifest = await loadManifest(cfg);
  const arch = parseArch(cfg.model.arch);
  const specs = convnextParams({ arch, numClasses: cfg.model.numClasses });
  const weights = await readWeights(weightsFile(cfg.init.weights!));
  for (const s of specs) if (!weights.has(s.name)) throw new JobError(`${cfg.init.weights}: lacks ${s.name}; is it a ${cfg.model.arch} classifier with ${cfg.model.numClasses} classes?`);
  o.sink.emit('started', { engine: 'onnx', device: chooseProvider(provider(cfg)).chosen, params: specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0), kind: 'eval', arch: cfg.model.arch });
  const ev = lazyEvaluator(cfg, arch, manifest, o);
  try {
    const r = await ev.run(weights, o.signal);
    if (!r) {
      if (o.signal.aborted) return 'cancelled';
      throw new JobError(`${cfg.data.manifest}: no ${cfg.data.evalSplit} images to evaluate`);
    }
    const { mistakes, ...m } = r;
    o.sink.emit('eval', { step: 0, weights: 'model', ...m });
    writeMistakes(o.sink, cfg, 0, mistakes);
  } finally {
    await ev.release();
  }
  return 'completed';
}
