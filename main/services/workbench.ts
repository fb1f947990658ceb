// The services of one workspace wired together, and the handler of every API method. Both transports
// (Electron IPC, web mode) sit on top of this and nothing else.
import { readFileSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { AnalysisResult, ApiError, ReconstructionResult, type ApiMethod, type ApiParsedRequest, type ApiResponse, type Checkpoint, type ModelRef } from '../../common/api.ts';
import { JobConfig } from '../../common/job.ts';
import { manifestSchema } from '../../common/manifest.ts';
import { z } from 'zod';
import { DatasetService } from './datasets.ts';
import { type EngineLauncher, type EngineResolver, type NodeRuntime, REPO_ROOT, cnxCommand, doctorResolver, engineLauncher, plainNode } from './engines.ts';
import { EventHub } from './hub.ts';
import { JobService } from './jobs.ts';
import { SettingsService } from './settings.ts';
import { Store, type StoreOptions } from './store.ts';
import { SystemService } from './system.ts';
import { TaskService } from './tasks.ts';
import { ChildProcessSpawner, type WorkerSpawner } from './workers.ts';
import type { Settings, SystemInfo } from '../../common/api.ts';

export type ApiHandlers = { [M in ApiMethod]: (request: ApiParsedRequest<M>) => Promise<ApiResponse<M>> | ApiResponse<M> };

/** Native dialogs, when the host has them (Electron). */
export interface HostDialogs {
  pickFolder(title?: string): Promise<string | null>;
  pickFile(title?: string, extensions?: readonly string[]): Promise<string | null>;
}

export interface WorkbenchOptions {
  workspace: string;
  host?: SystemInfo['host'];
  dialogs?: HostDialogs;
  node?: NodeRuntime;
  spawner?: WorkerSpawner;
  launcher?: EngineLauncher;
  resolver?: EngineResolver;
  store?: StoreOptions;
  settings?: Partial<Omit<Settings, 'workspace'>>;
  startupTimeoutMs?: number;
  killGraceMs?: number;
  /** Replays the run folders into the database before starting (a lost or damaged database). */
  rebuild?: boolean;
}

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
});

const APP_VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export class Workbench {
  readonly handlers: ApiHandlers;

  private constructor(
    readonly store: Store,
    readonly hub: EventHub,
    readonly settings: SettingsService,
    readonly datasets: DatasetService,
    readonly jobs: JobService,
    readonly system: SystemService,
    readonly tasks: TaskService,
    dialogs: HostDialogs | undefined,
  ) {
    this.handlers = this.makeHandlers(dialogs);
  }

  /** Opens the workspace, recovers runs a crash left behind, and starts the queue. */
  static async open(o: WorkbenchOptions): Promise<Workbench> {
    const store = Store.open(o.workspace, o.store);
    const hub = new EventHub();
    const settings = new SettingsService(store, hub, o.settings);
    const node = o.node ?? plainNode;
    const system = new SystemService({
      workspace: store.workspace,
      host: o.host ?? { kind: 'web', nativeDialogs: false },
      appVersion: APP_VERSION,
      pythonPath: () => settings.get().pythonPath,
      cnx: (args) => cnxCommand(node, args),
    });
    const datasets = new DatasetService(store, hub);
    const spawner = o.spawner ?? new ChildProcessSpawner();
    const jobs = new JobService({
      store,
      hub,
      settings,
      spawner,
      launcher: o.launcher ?? engineLauncher(node),
      resolver: o.resolver ?? doctorResolver(() => system.doctor()),
      exportManifest: async (dataset, file) => void (await datasets.exportManifest(dataset, file)),
      ...(o.startupTimeoutMs !== undefined ? { startupTimeoutMs: o.startupTimeoutMs } : {}),
      ...(o.killGraceMs !== undefined ? { killGraceMs: o.killGraceMs } : {}),
    });
    let tasks: TaskService;
    try {
      if (o.rebuild) await store.rebuildFromRunFolders();
      await jobs.recover();
      tasks = await TaskService.open({ workspace: store.workspace, hub, spawner, cnx: (args) => cnxCommand(node, args), ...(o.killGraceMs !== undefined ? { killGraceMs: o.killGraceMs } : {}) });
    } catch (e) {
      await store.close();
      throw e;
    }
    return new Workbench(store, hub, settings, datasets, jobs, system, tasks, o.dialogs);
  }

  /** Pauses running jobs (each checkpoints), stops imports, writes everything out and closes the database. */
  async close(opts: { jobTimeoutMs?: number } = {}): Promise<void> {
    await Promise.all([this.jobs.shutdown(opts.jobTimeoutMs), this.datasets.shutdown(), this.tasks.shutdown()]);
    await this.store.close();
  }

  private runRecord(runId: string) {
    const rec = this.store.run(runId);
    if (!rec) throw new ApiError('not-found', `no run '${runId}'`);
    return rec;
  }

  private async checkpoints(runId: string): Promise<Checkpoint[]> {
    const rec = this.runRecord(runId);
    const pointer = async (name: string) =>
      readFile(join(rec.runDir, 'checkpoints', name), 'utf8').then(
        (t) => (JSON.parse(t) as { step?: number }).step ?? null,
        () => null,
      );
    const [last, best] = await Promise.all([pointer('last.json'), pointer('best.json')]);
    return Promise.all(
      this.store.checkpoints(runId).map(async (c) => ({
        ...c,
        bytes: await stat(c.path).then(
          (s) => s.size,
          () => null,
        ),
        last: c.step === last,
        best: c.step === best,
      })),
    );
  }

  /** A run's checkpoint file at `step`. */
  private checkpointFile(runId: string, step: number, field: string): string {
    this.runRecord(runId);
    const c = this.store.checkpoints(runId).find((k) => k.step === step);
    if (!c) throw new ApiError('not-found', `run '${runId}' has no checkpoint at step ${step}`, field);
    return c.path;
  }

  /** The file and a default label of a model reference; a file must exist. */
  private async modelFile(ref: ModelRef, field: string): Promise<{ file: string; label: string }> {
    if ('runId' in ref) return { file: this.checkpointFile(ref.runId, ref.step, field), label: `${this.runRecord(ref.runId).summary.name} @${ref.step}` };
    const s = await stat(ref.file).catch(() => null);
    if (!s?.isFile()) throw new ApiError('invalid', `${ref.file}: no such checkpoint file`, field);
    return { file: ref.file, label: basename(ref.file).replace(/\.[^.]+$/, '') };
  }

  private async startAnalysis(r: ApiParsedRequest<'analysis.start'>): Promise<ApiResponse<'analysis.start'>> {
    await this.datasets.get(r.dataset);
    const models = await Promise.all(r.models.map(async (m, i) => ({ ...(await this.modelFile(m.model, `models.${i}.model`)), name: m.name })));
    const names = models.map((m) => m.name ?? m.label);
    return this.tasks.start('analysis', `${names.join(' vs ')} on ${r.dataset}`, { ...r }, (dir) => [
      'analyze',
      ...models.flatMap((m, i) => ['--checkpoint', m.file, '--name', names[i]!]),
      ...['--dataset', r.dataset, '--workspace', this.store.workspace, '--split', r.split],
      ...['--images', String(r.images), '--size', String(r.size), '--grid-image', String(r.gridImage)],
      ...(r.gridLayer !== undefined ? ['--grid-layer', String(r.gridLayer)] : []),
      ...(r.engine === 'torch' ? ['--engine', 'torch', '--python', this.settings.get().pythonPath] : []),
      ...['--out', dir, '--json'],
    ]);
  }

  private async startExport(r: ApiParsedRequest<'models.export'>): Promise<ApiResponse<'models.export'>> {
    const rec = this.runRecord(r.runId);
    const file = this.checkpointFile(r.runId, r.step, 'step');
    const config = JobConfig.parse(rec.config);
    if (r.format === 'onnx' && config.kind === 'pretrain') {
      throw new ApiError('invalid', 'an FCMAE pretraining checkpoint has no classifier head: export its encoder as timm or official safetensors, or fine-tune it first', 'format');
    }
    // The class names travel with the ONNX model (its metadata JSON), from the run's frozen manifest.
    const labels = async () => {
      try {
        const classes = manifestSchema.safeParse(JSON.parse(await readFile(config.data.manifest, 'utf8'))).data?.classes;
        return classes && classes.length === config.model.numClasses ? classes : null;
      } catch {
        return null; // no readable manifest: numbered classes
      }
    };
    return this.exportTask({ ...r, size: r.size ?? config.model.inputSize }, { file, arch: config.model.arch, name: rec.summary.name, step: r.step, labels });
  }

  private async startExportFile(r: ApiParsedRequest<'models.exportFile'>): Promise<ApiResponse<'models.exportFile'>> {
    await this.modelFile({ file: r.file }, 'file');
    const name = basename(r.file).replace(/\.[^.]+$/, '');
    return this.exportTask({ ...r }, { file: r.file, arch: null, name, step: null, labels: async () => r.labels ?? null });
  }

  /** `cnx export` of one checkpoint file into a task folder; ONNX gets the class names when known. */
  private exportTask(
    request: Record<string, unknown> & { format: ApiParsedRequest<'models.export'>['format']; size: number },
    m: { file: string; arch: string | null; name: string; step: number | null; labels: () => Promise<string[] | null> },
  ): Promise<ApiResponse<'models.export'>> {
    const { format, size } = request;
    const slug = m.name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 60);
    const output = `${slug}${m.step === null ? '' : `-step${m.step}`}.${format === 'onnx' ? 'onnx' : 'safetensors'}`;
    const what = format === 'onnx' ? 'ONNX' : `${format} safetensors`;
    return this.tasks.start('export', `${m.name}${m.step === null ? '' : ` @${m.step}`} as ${what}`, request, async (dir) => {
      const args = ['export', ...(m.arch ? ['--arch', m.arch] : []), '--weights', m.file, '--format', format, '--size', String(size), '--output', join(dir, output)];
      const classes = format === 'onnx' ? await m.labels() : null;
      if (!classes) return args;
      const labels = join(dir, 'labels.txt');
      await writeFile(labels, `${classes.join('\n')}\n`);
      return [...args, '--labels', labels];
    });
  }

  private async startReconstructions(r: ApiParsedRequest<'reconstructions.start'>): Promise<ApiResponse<'reconstructions.start'>> {
    const rec = this.runRecord(r.runId);
    const config = JobConfig.parse(rec.config);
    if (config.kind !== 'pretrain') throw new ApiError('invalid', `run '${rec.summary.name}' is ${config.kind === 'eval' ? 'an' : 'a'} ${config.kind} run; reconstructions need an FCMAE pretraining run`, 'runId');
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

  private async startImport(r: ApiParsedRequest<'models.import'>): Promise<ApiResponse<'models.import'>> {
    await this.modelFile({ file: r.file }, 'file');
    const name = r.name ?? basename(r.file).replace(/\.[^.]+$/, '');
    return this.tasks.start('import', `import ${name}`, { ...r, name }, (dir) => ['inspect', r.file, '--json', '--save', join(dir, IMPORT_SUMMARY)]);
  }

  /** Completed imports with what `cnx inspect` found in each file. */
  private async imported(): Promise<ApiResponse<'models.imported'>> {
    const done = this.tasks.list('import').filter((t) => t.state === 'completed');
    const found = await Promise.all(
      done.map(async (t) => {
        const req = t.request as { file: string; name: string };
        const summary = await readFile(join(t.dir, IMPORT_SUMMARY), 'utf8').then((x) => InspectSummary.safeParse(JSON.parse(x)).data ?? null, () => null);
        if (!summary) return [];
        const present = await stat(req.file).then((st) => st.isFile(), () => false);
        const { model: arch, kind, numClasses, format, layout, parameters, notes } = summary;
        return [{ taskId: t.id, name: req.name, file: req.file, present, importedAt: t.finishedAt ?? t.createdAt, arch, kind, numClasses, format, layout, parameters, notes }];
      }),
    );
    return found.flat();
  }

  private makeHandlers(dialogs: HostDialogs | undefined): ApiHandlers {
    const { datasets, jobs, store, settings, system } = this;
    return {
      'datasets.list': () => datasets.list(),
      'datasets.get': (r) => datasets.get(r.name),
      'datasets.import': (r) => datasets.startImport(r),
      'datasets.importTasks': () => datasets.importTasks(),
      'datasets.cancelImport': (r) => datasets.cancelImport(r.taskId),
      'datasets.stats': (r) => datasets.stats(r.name),
      'datasets.dupes': (r) => datasets.dupes(r.name, r.threshold),
      'datasets.images': (r) => datasets.images(r),
      'datasets.relabel': (r) => datasets.relabel(r.name, r.paths, r.label),
      'datasets.move': (r) => datasets.move(r.name, r.paths, r.split),
      'datasets.exclude': (r) => datasets.exclude(r.name, r.paths, r.excluded),
      'datasets.split': (r) => datasets.split(r.name, r.val, r.test, r.seed),
      'datasets.undo': (r) => datasets.undo(r.name),
      'datasets.edits': (r) => datasets.edits(r.name),
      'datasets.exportManifest': (r) => datasets.exportManifest(r.name, r.file),
      'datasets.delete': (r) => (datasets.delete(r.name), {}),

      'runs.create': (r) => jobs.create(r),
      'runs.list': (r) => store.runs(r),
      'runs.get': (r) => {
        const rec = this.runRecord(r.runId);
        return { ...rec.summary, runDir: rec.runDir, config: JobConfig.parse(rec.config), attemptsList: store.attempts(r.runId) };
      },
      'runs.cancel': (r) => jobs.cancel(r.runId),
      'runs.pause': (r) => jobs.pause(r.runId),
      'runs.resume': (r) => jobs.resume(r.runId),
      'runs.setPriority': (r) => jobs.setPriority(r.runId, r.priority),
      'runs.delete': async (r) => (await jobs.delete(r.runId), {}),
      'runs.events': (r) => {
        this.runRecord(r.runId);
        store.flush();
        const items = store.events(r.runId, r);
        return { items, lastSeq: items.at(-1)?.seq ?? r.afterSeq };
      },

      'metrics.names': (r) => (this.runRecord(r.runId), store.metricNames(r.runId)),
      'metrics.series': (r) => {
        this.runRecord(r.runId);
        return store.seriesAsync(r.runId, r);
      },

      'checkpoints.list': (r) => this.checkpoints(r.runId),
      'artifacts.list': (r) => (this.runRecord(r.runId), store.artifacts(r.runId, r.kind)),

      'tasks.list': (r) => this.tasks.list(r.kind),
      'tasks.get': (r) => this.tasks.get(r.taskId),
      'tasks.cancel': (r) => this.tasks.cancel(r.taskId),
      'tasks.delete': async (r) => (await this.tasks.delete(r.taskId), {}),
      'analysis.start': (r) => this.startAnalysis(r),
      'analysis.result': (r) => this.tasks.result(r.taskId, 'analysis', 'analysis.json', AnalysisResult),
      'reconstructions.start': (r) => this.startReconstructions(r),
      'reconstructions.result': (r) => this.tasks.result(r.taskId, 'reconstruction', 'reconstructions.json', ReconstructionResult),
      'models.export': (r) => this.startExport(r),
      'models.exportFile': (r) => this.startExportFile(r),
      'models.import': (r) => this.startImport(r),
      'models.imported': () => this.imported(),

      'settings.get': () => settings.get(),
      'settings.update': (r) => {
        const before = settings.get().pythonPath;
        const after = settings.update(r);
        if (after.pythonPath !== before) system.invalidate();
        void jobs.schedule();
        return after;
      },
      'system.info': (r) => system.info(r.refresh),

      'host.pickFolder': async (r) => (dialogs ? { path: await dialogs.pickFolder(r.title), supported: true } : { path: null, supported: false }),
      'host.pickFile': async (r) => (dialogs ? { path: await dialogs.pickFile(r.title, r.extensions), supported: true } : { path: null, supported: false }),
    };
  }
}
