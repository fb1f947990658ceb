// The API's model tasks: what analysis.start, models.export(File), models.import and reconstructions.start(File)
// ask for, checked against the runs and files they name, and turned into the `cnx` command a task runs.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ApiError, type ApiParsedRequest, type ApiResponse, type ModelRef } from '../../common/api.ts';
import { JobConfig } from '../../common/job.ts';
import { manifestSchema } from '../../common/manifest.ts';
import { pythonOption } from '../../native-worker/torch-python.ts';
import type { DatasetService } from './datasets.ts';
import type { SettingsService } from './settings.ts';
import type { Store } from './store.ts';
import type { TaskService } from './tasks.ts';

/** What an import task keeps: `cnx inspect --json` of the file. */
const IMPORT_SUMMARY = 'model.json';
const InspectSummary = z.object({
  model: z.string(),
  kind: z.enum(['classifier', 'encoder', 'fcmae']),
  numClasses: z.number().int().min(0),
  format: z.string(),
  layout: z.string(),
  parameters: z.number().int().min(0),
  notes: z.array(z.string()),
  // Absent from imports made by earlier versions.
  source: z.string().default(''),
  decoderNote: z.string().default(''),
  epoch: z.number().int().nullable().default(null),
});

/** A checkpoint file, or a Hugging Face / timm model folder (config.json beside the weights). */
async function isModelPath(path: string): Promise<boolean> {
  const s = await stat(path).catch(() => null);
  return !!s && (s.isFile() || (s.isDirectory() && (await stat(join(path, 'config.json')).catch(() => null))?.isFile() === true));
}

/** A file name without folder and extension. */
const stem = (file: string) => basename(file).replace(/\.[^.]+$/, '');

/** A JSON file's content if it reads and matches `schema`, else null. */
async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  try {
    return schema.safeParse(JSON.parse(await readFile(file, 'utf8'))).data ?? null;
  } catch {
    return null;
  }
}

export class ModelTasks {
  constructor(
    private readonly store: Store,
    private readonly tasks: TaskService,
    private readonly datasets: DatasetService,
    private readonly settings: SettingsService,
  ) {}

  private run(runId: string) {
    const rec = this.store.run(runId);
    if (!rec) throw new ApiError('not-found', `no run '${runId}'`);
    return rec;
  }

  /** A run's checkpoint file at `step`. */
  private checkpointFile(runId: string, step: number, field: string): string {
    this.run(runId);
    const c = this.store.checkpoints(runId).find((k) => k.step === step);
    if (!c) throw new ApiError('not-found', `run '${runId}' has no checkpoint at step ${step}`, field);
    return c.path;
  }

  /** The file and a default label of a model reference; a file must exist. */
  private async modelFile(ref: ModelRef, field: string): Promise<{ file: string; label: string }> {
    if ('runId' in ref) return { file: this.checkpointFile(ref.runId, ref.step, field), label: `${this.run(ref.runId).summary.name} @${ref.step}` };
    if (!(await isModelPath(ref.file))) throw new ApiError('invalid', `${ref.file}: no such checkpoint file (or model folder with config.json)`, field);
    return { file: ref.file, label: stem(ref.file) };
  }

  async analysis(r: ApiParsedRequest<'analysis.start'>): Promise<ApiResponse<'analysis.start'>> {
    await this.datasets.get(r.dataset);
    const models = await Promise.all(r.models.map(async (m, i) => ({ ...(await this.modelFile(m.model, `models.${i}.model`)), name: m.name })));
    const names = models.map((m) => m.name ?? m.label);
    return this.tasks.start('analysis', `${names.join(' vs ')} on ${r.dataset}`, { ...r }, (dir) => [
      'analyze',
      ...models.flatMap((m, i) => ['--checkpoint', m.file, '--name', names[i]!]),
      ...['--dataset', r.dataset, '--workspace', this.store.workspace, '--split', r.split],
      ...['--images', String(r.images), '--size', String(r.size), '--grid-image', String(r.gridImage)],
      ...(r.gridLayer !== undefined ? ['--grid-layer', String(r.gridLayer)] : []),
      ...(r.engine === 'torch' ? ['--engine', 'torch', ...pythonOption(this.settings.get().pythonPath)] : []),
      ...['--out', dir, '--json'],
    ]);
  }

  async exportRun(r: ApiParsedRequest<'models.export'>): Promise<ApiResponse<'models.export'>> {
    const rec = this.run(r.runId);
    const file = this.checkpointFile(r.runId, r.step, 'step');
    const config = JobConfig.parse(rec.config);
    if ((r.format === 'onnx' || r.format === 'hf') && config.kind === 'pretrain') {
      throw new ApiError('invalid', 'an FCMAE pretraining checkpoint has no classifier head: export its encoder as timm or official safetensors, or fine-tune it first', 'format');
    }
    // The class names travel with the ONNX model (its metadata JSON), from the run's frozen manifest.
    const labels = async () => {
      // No readable manifest: numbered classes.
      const classes = (await readJson(config.data.manifest, manifestSchema))?.classes;
      return classes && classes.length === config.model.numClasses ? classes : null;
    };
    return this.exportTask({ ...r, size: r.size ?? config.model.inputSize }, { file, arch: config.model.arch, name: rec.summary.name, step: r.step, labels });
  }

  async exportFile(r: ApiParsedRequest<'models.exportFile'>): Promise<ApiResponse<'models.exportFile'>> {
    await this.modelFile({ file: r.file }, 'file');
    const name = stem(r.file);
    return this.exportTask({ ...r }, { file: r.file, arch: null, name, step: null, labels: async () => r.labels ?? null });
  }

  /** `cnx export` of one checkpoint file into a task folder (hf: the folder is the model folder); ONNX and hf get the class names when known. */
  private exportTask(
    request: Record<string, unknown> & { format: ApiParsedRequest<'models.export'>['format']; size: number },
    m: { file: string; arch: string | null; name: string; step: number | null; labels: () => Promise<string[] | null> },
  ): Promise<ApiResponse<'models.export'>> {
    const { format, size } = request;
    const slug = m.name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 60);
    const output = `${slug}${m.step === null ? '' : `-step${m.step}`}.${format === 'onnx' ? 'onnx' : 'safetensors'}`;
    const what = format === 'onnx' ? 'ONNX' : format === 'hf' ? 'a timm / Hugging Face folder' : `${format} safetensors`;
    return this.tasks.start('export', `${m.name}${m.step === null ? '' : ` @${m.step}`} as ${what}`, request, async (dir) => {
      const o = format === 'onnx' ? (request.onnx as { batch: 'dynamic' | number; fp16Weights: boolean; opset: number } | undefined) : undefined;
      const args = [
        'export', ...(m.arch ? ['--arch', m.arch] : []), '--weights', m.file, '--format', format, '--size', String(size), '--output', format === 'hf' ? dir : join(dir, output),
        ...(o ? ['--batch', String(o.batch), '--opset', String(o.opset), ...(o.fp16Weights ? ['--fp16-weights'] : [])] : []),
      ];
      // The class names travel with ONNX (its metadata JSON) and timm folders (config.json).
      const classes = format === 'onnx' || format === 'hf' ? await m.labels() : null;
      if (!classes) return args;
      const labels = join(dir, 'labels.txt');
      await writeFile(labels, `${classes.join('\n')}\n`);
      return [...args, '--labels', labels];
    });
  }

  async reconstructions(r: ApiParsedRequest<'reconstructions.start'>): Promise<ApiResponse<'reconstructions.start'>> {
    const rec = this.run(r.runId);
    const config = JobConfig.parse(rec.config);
    if (config.kind !== 'pretrain') throw new ApiError('invalid', `run '${rec.summary.name}' is not an FCMAE pretraining run (it is a ${config.kind} run); reconstructions need one`, 'runId');
    const files = r.steps.map((s, i) => this.checkpointFile(r.runId, s, `steps.${i}`));
    const maskRatio = r.maskRatio ?? config.fcmae.maskRatio;
    const title = `${rec.summary.name}: ${r.steps.length === 1 ? `step ${r.steps[0]}` : `steps ${r.steps.join(', ')}`} at mask ratio ${maskRatio}`;
    // The run's frozen manifest: the images it trained on, whatever the catalog holds now.
    return this.tasks.start('reconstruction', title, { ...r, maskRatio }, (dir) => [
      'reconstruct-images',
      ...files.flatMap((f, i) => ['--checkpoint', f, '--name', `step ${r.steps[i]}`]),
      ...['--manifest', config.data.manifest, '--size', String(config.model.inputSize), '--mask-ratio', String(maskRatio), '--mask-seed', String(r.maskSeed)],
      ...(r.paths ? r.paths.flatMap((p) => ['--path', p]) : ['--split', r.split, '--images', String(r.images), '--pick-seed', String(r.pickSeed)]),
      ...(config.fcmae.normPixLoss ? [] : ['--no-norm-pix-loss']),
      ...['--out', dir, '--json'],
    ]);
  }

  /** `cnx dataset issues` of a dataset with a model (embedding first where the workspace lacks it). */
  async curation(r: ApiParsedRequest<'curation.start'>): Promise<ApiResponse<'curation.start'>> {
    await this.datasets.get(r.dataset);
    const { file, label } = await this.modelFile(r.model, 'model');
    return this.tasks.start('curation', `${r.dataset} with ${label}`, { ...r }, (dir) => [
      'dataset', 'issues', r.dataset, '--weights', file, '--workspace', this.store.workspace,
      ...(r.size ? ['--size', String(r.size)] : []), '--threshold', String(r.threshold), '--out', join(dir, 'curation.json'), '--json',
    ]);
  }

  /** `cnx reconstruct-images` of one checkpoint file on a catalogued dataset's images. */
  async reconstructFile(r: ApiParsedRequest<'reconstructions.startFile'>): Promise<ApiResponse<'reconstructions.startFile'>> {
    const { file, label } = await this.modelFile({ file: r.file }, 'file');
    await this.datasets.get(r.dataset);
    return this.tasks.start('reconstruction', `${label} on ${r.dataset} at mask ratio ${r.maskRatio}`, { ...r }, (dir) => [
      'reconstruct-images', '--checkpoint', file, '--name', label,
      ...['--dataset', r.dataset, '--workspace', this.store.workspace, '--size', String(r.size), '--split', r.split],
      ...['--images', String(r.images), '--pick-seed', String(r.pickSeed), '--mask-ratio', String(r.maskRatio), '--mask-seed', String(r.maskSeed)],
      ...['--out', dir, '--json'],
    ]);
  }

  async importFile(r: ApiParsedRequest<'models.import'>): Promise<ApiResponse<'models.import'>> {
    await this.modelFile({ file: r.file }, 'file');
    const name = r.name ?? stem(r.file);
    return this.tasks.start('import', `import ${name}`, { ...r, name }, (dir) => ['inspect', r.file, '--json', '--save', join(dir, IMPORT_SUMMARY)]);
  }

  /** Completed imports with what `cnx inspect` found in each file. */
  async imported(): Promise<ApiResponse<'models.imported'>> {
    const done = this.tasks.list('import').filter((t) => t.state === 'completed');
    const found = await Promise.all(
      done.map(async (t) => {
        const req = t.request as { file: string; name: string };
        const summary = await readJson(join(t.dir, IMPORT_SUMMARY), InspectSummary);
        if (!summary) return []; // a damaged record: the import is left out rather than failing the list
        const present = await isModelPath(req.file);
        const { model: arch, kind, numClasses, format, layout, parameters, notes, source, decoderNote, epoch } = summary;
        return [{ taskId: t.id, name: req.name, file: req.file, present, importedAt: t.finishedAt ?? t.createdAt, arch, kind, numClasses, format, layout, parameters, notes, source, decoderNote, epoch }];
      }),
    );
    return found.flat();
  }
}
