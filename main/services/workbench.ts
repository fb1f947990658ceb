// The services of one workspace wired together, and the handler of every API method. Both transports
// (Electron IPC, web mode) sit on top of this and nothing else.
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AnalysisResult, ApiError, ReconstructionResult, type ApiMethod, type ApiParsedRequest, type ApiResponse, type Checkpoint } from '../../common/api.ts';
import { CurationReport } from '../../common/curation.ts';
import { JobConfig } from '../../common/job.ts';
import { DatasetService } from './datasets.ts';
import { type EngineLauncher, type EngineResolver, type NodeRuntime, REPO_ROOT, cnxCommand, doctorResolver, engineLauncher, plainNode } from './engines.ts';
import { ExplainService } from './explain.ts';
import { EventHub } from './hub.ts';
import { JobService } from './jobs.ts';
import { SettingsService } from './settings.ts';
import { Store, type StoreOptions } from './store.ts';
import { SystemService } from './system.ts';
import { ModelTasks } from './model-tasks.ts';
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

const APP_VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export class Workbench {
  readonly handlers: ApiHandlers;
  /** "Try it": keeps the explained models loaded in its child process. */
  readonly explain: ExplainService;

  private constructor(
    readonly store: Store,
    readonly hub: EventHub,
    readonly settings: SettingsService,
    readonly datasets: DatasetService,
    readonly jobs: JobService,
    readonly system: SystemService,
    readonly tasks: TaskService,
    dialogs: HostDialogs | undefined,
    node: NodeRuntime,
  ) {
    this.explain = new ExplainService(store, datasets, node);
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
    return new Workbench(store, hub, settings, datasets, jobs, system, tasks, o.dialogs, node);
  }

  /** Pauses running jobs (each checkpoints), stops imports, writes everything out and closes the database. */
  async close(opts: { jobTimeoutMs?: number } = {}): Promise<void> {
    await Promise.all([this.jobs.shutdown(opts.jobTimeoutMs), this.datasets.shutdown(), this.tasks.shutdown(), this.explain.shutdown()]);
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
  private makeHandlers(dialogs: HostDialogs | undefined): ApiHandlers {
    const { datasets, jobs, store, settings, system } = this;
    const models = new ModelTasks(store, this.tasks, datasets, settings);
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
      'runs.attach': (r) => jobs.attach(r.path),
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
      'analysis.start': (r) => models.analysis(r),
      'analysis.result': (r) => this.tasks.result(r.taskId, 'analysis', 'analysis.json', AnalysisResult),
      'reconstructions.start': (r) => models.reconstructions(r),
      'reconstructions.startFile': (r) => models.reconstructFile(r),
      'reconstructions.result': (r) => this.tasks.result(r.taskId, 'reconstruction', 'reconstructions.json', ReconstructionResult),
      'models.export': (r) => models.exportRun(r),
      'models.exportFile': (r) => models.exportFile(r),
      'models.import': (r) => models.importFile(r),
      'models.imported': () => models.imported(),
      'curation.start': (r) => models.curation(r),
      'curation.result': (r) => this.tasks.result(r.taskId, 'curation', 'curation.json', CurationReport),
      'curation.keep': (r) => datasets.keepLabels(r.name, r.paths),

      'explain.upload': (r) => this.explain.upload(r),
      'explain.run': (r) => this.explain.run(r),
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
