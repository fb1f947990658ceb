// The WorkbenchApi: every request the renderer can make of the main process, every response, and every
// event stream, as zod schemas. One contract, two transports (Electron IPC and HTTP + WebSocket in web
// mode); both validate requests and responses on each side with these schemas.
//
// Wire format, the same for both transports:
//   request   a method name ('runs.create') and one JSON object (the method's request schema)
//   response  ApiResult: { ok: true, value } | { ok: false, error: { code, message, field? } }
//   events    batches { events: [{ stream, data }, ...] } pushed by the main process, in order
// HTTP: POST /api/<method> (JSON body) -> ApiResult; WebSocket /ws -> event batches; files under /files/...
// IPC: ipcRenderer.invoke('cnx:api', method, request) -> ApiResult; events on channel 'cnx:events'.
// Changes to this file are additive only: the renderer is built against it.
//
// The schemas live in one file per domain under api/; this index holds the method and stream tables and
// re-exports the domains, so every caller imports common/api.ts. The Electron transport's names are in
// api/electron-transport.ts.
import { z } from 'zod';
import { CurationReport } from './curation.ts';
import { CurationRequest } from './api/curation.ts';
import { DatasetChanged, DatasetDetail, DatasetDupes, DatasetStats, DatasetSummary, EditPaths, EditResult, EditRow, ImagesPage, ImagesQuery, ImportRequest, ImportTask, ManifestExport, SplitCounts } from './api/datasets.ts';
import { ExplainRequest, ExplainResult, ExplainUpload, ExplainUploaded } from './api/explain.ts';
import { absolutePath, int } from './api/fields.ts';
import { AnalysisRequest, AnalysisResult, ExportFileRequest, ExportRequest, FileReconstructionRequest, ImportedModel, ReconstructionRequest, ReconstructionResult } from './api/models.ts';
import { Artifact, Checkpoint, JobEventMessage, MetricSeriesQuery, MetricSeriesResult, RunCreate, RunDetail, RunEventsPage, RunEventsQuery, RunSummary } from './api/runs.ts';
import { Settings, SettingsUpdate, SystemInfo } from './api/system.ts';
import { Task, TaskId, TaskKind } from './api/tasks.ts';
import { DatasetName, RunId, RunState, Split } from './api/vocabulary.ts';

export * from './api/curation.ts';
export * from './api/datasets.ts';
export * from './api/explain.ts';
export * from './api/files.ts';
export * from './api/models.ts';
export * from './api/runs.ts';
export * from './api/system.ts';
export * from './api/tasks.ts';
export * from './api/vocabulary.ts';

// ---- the method table

const method = <Req extends z.ZodType, Res extends z.ZodType>(request: Req, response: Res) => ({ request, response });
const Empty = z.strictObject({});
const Ok = z.object({});
const byName = z.strictObject({ name: DatasetName });
const byRun = z.strictObject({ runId: RunId });
const byTask = z.strictObject({ taskId: TaskId });

export const apiMethods = {
  'datasets.list': method(Empty, z.array(DatasetSummary)),
  'datasets.get': method(byName, DatasetDetail),
  /** Starts an import or rescan in the background; follow it on the datasetProgress stream. */
  'datasets.import': method(ImportRequest, ImportTask),
  'datasets.importTasks': method(Empty, z.array(ImportTask)),
  'datasets.cancelImport': method(z.strictObject({ taskId: z.string().min(1).max(100) }), ImportTask),
  'datasets.stats': method(byName, DatasetStats),
  'datasets.dupes': method(z.strictObject({ name: DatasetName, threshold: int(0, 32).default(8) }), DatasetDupes),
  'datasets.images': method(ImagesQuery, ImagesPage),
  'datasets.relabel': method(z.strictObject({ name: DatasetName, paths: EditPaths, label: z.string().min(1).max(200).nullable() }), EditResult),
  'datasets.move': method(z.strictObject({ name: DatasetName, paths: EditPaths, split: Split }), EditResult),
  'datasets.exclude': method(z.strictObject({ name: DatasetName, paths: EditPaths, excluded: z.boolean() }), EditResult),
  'datasets.split': method(
    z.strictObject({ name: DatasetName, val: z.number().min(0).lt(1), test: z.number().min(0).lt(1).default(0), seed: int(0).default(0) }),
    EditResult.extend({ counts: SplitCounts }),
  ),
  'datasets.undo': method(byName, z.object({ undone: EditRow.nullable() })),
  'datasets.edits': method(byName, z.array(EditRow)),
  /** Freezes the current manifest as a version; written to `file`, or into the workspace's manifests/. */
  'datasets.exportManifest': method(z.strictObject({ name: DatasetName, file: absolutePath.optional() }), ManifestExport),
  'datasets.delete': method(byName, Ok),

  'runs.create': method(RunCreate, RunSummary),
  'runs.list': method(z.strictObject({ states: z.array(RunState).max(9).optional(), limit: int(1, 1000).default(200), offset: int(0).default(0) }), z.array(RunSummary)),
  'runs.get': method(byRun, RunDetail),
  'runs.cancel': method(byRun, RunSummary),
  /** Checkpoints and stops a running run (or holds a queued one); runs.resume continues it. */
  'runs.pause': method(byRun, RunSummary),
  /** Queues a paused, interrupted, failed or cancelled run to continue from its last checkpoint. */
  'runs.resume': method(byRun, RunSummary),
  'runs.setPriority': method(z.strictObject({ runId: RunId, priority: int(-100, 100) }), RunSummary),
  /** Deletes a run that is not active, with its folder. */
  'runs.delete': method(byRun, Ok),
  /** Follows a run folder (a cluster run written by `cnx launch`) live and read-only; it is marked remote. */
  'runs.attach': method(z.strictObject({ path: z.string().min(1).max(4096) }), RunSummary),
  'runs.events': method(RunEventsQuery, RunEventsPage),

  'metrics.names': method(byRun, z.array(z.string())),
  'metrics.series': method(MetricSeriesQuery, MetricSeriesResult),

  'checkpoints.list': method(byRun, z.array(Checkpoint)),
  'artifacts.list': method(z.strictObject({ runId: RunId, kind: z.string().max(100).optional() }), z.array(Artifact)),

  'tasks.list': method(z.strictObject({ kind: TaskKind.optional() }), z.array(Task)),
  'tasks.get': method(byTask, Task),
  /** Stops a queued or running task; what it wrote so far is deleted with it by tasks.delete. */
  'tasks.cancel': method(byTask, Task),
  /** Deletes a task that is not running, with its folder. */
  'tasks.delete': method(byTask, Ok),
  /** Queues `cnx analyze` on the models; follow it on the taskState stream, then read analysis.result. */
  'analysis.start': method(AnalysisRequest, Task),
  'analysis.result': method(byTask, AnalysisResult),
  /** Queues `cnx export` of a run's checkpoint; the files appear in the task's folder. */
  'models.export': method(ExportRequest, Task),
  'models.exportFile': method(ExportFileRequest, Task),
  /** Queues `cnx reconstruct-images` for a pretraining run's checkpoints; read reconstructions.result when it completes. */
  'reconstructions.start': method(ReconstructionRequest, Task),
  'reconstructions.result': method(byTask, ReconstructionResult),
  /** Reconstructions by an imported checkpoint file (refused, saying why, when it has no decoder). */
  'reconstructions.startFile': method(FileReconstructionRequest, Task),
  /** Queues a check of a checkpoint file or a Hugging Face / timm model folder (config.json + weights) with
   * `cnx inspect`; once it completes it is listed by models.imported. */
  'models.import': method(z.strictObject({ file: absolutePath, name: z.string().min(1).max(200).optional() }), Task),
  'models.imported': method(Empty, z.array(ImportedModel)),

  /** Queues embedding + curation of a dataset with a model; follow it on taskState, then curation.result. */
  'curation.start': method(CurationRequest, Task),
  'curation.result': method(byTask, CurationReport),
  /** Records that reviewed images keep their labels (an edit that changes nothing, in the history). */
  'curation.keep': method(z.strictObject({ name: DatasetName, paths: EditPaths }), EditResult),

  /** Keeps an image sent by the renderer (under the workspace's cache) for explain.run. */
  'explain.upload': method(ExplainUpload, ExplainUploaded),
  /** Top-5 and a Grad-CAM overlay of one image by one or two classifiers (models stay loaded between calls). */
  'explain.run': method(ExplainRequest, ExplainResult),

  'settings.get': method(Empty, Settings),
  'settings.update': method(SettingsUpdate, Settings),
  'system.info': method(z.strictObject({ refresh: z.boolean().default(false) }), SystemInfo),

  /** Native dialogs (Electron only; web mode answers { path: null, supported: false }). */
  'host.pickFolder': method(z.strictObject({ title: z.string().max(200).optional() }), z.object({ path: z.string().nullable(), supported: z.boolean() })),
  'host.pickFile': method(
    z.strictObject({ title: z.string().max(200).optional(), extensions: z.array(z.string().max(20)).max(20).optional() }),
    z.object({ path: z.string().nullable(), supported: z.boolean() }),
  ),
} as const;

export type ApiMethods = typeof apiMethods;
export type ApiMethod = keyof ApiMethods;
/** What a caller passes (defaults may be left out). */
export type ApiRequest<M extends ApiMethod> = z.input<ApiMethods[M]['request']>;
/** What a handler receives (defaults filled in). */
export type ApiParsedRequest<M extends ApiMethod> = z.output<ApiMethods[M]['request']>;
export type ApiResponse<M extends ApiMethod> = z.output<ApiMethods[M]['response']>;

export const API_METHOD_NAMES = Object.keys(apiMethods) as ApiMethod[];
export function isApiMethod(name: string): name is ApiMethod {
  return Object.hasOwn(apiMethods, name);
}

// ---- event streams


export const apiStreams = {
  /** Every event of every worker, in order per run (metrics, checkpoints, logs, evals...). */
  jobEvent: JobEventMessage,
  /** A run's summary whenever its state or progress changes. */
  jobState: RunSummary,
  datasetProgress: ImportTask,
  datasetChanged: DatasetChanged,
  /** A task's state and progress whenever they change. */
  taskState: Task,
  settings: Settings,
} as const;

export type ApiStreams = typeof apiStreams;
export type ApiStream = keyof ApiStreams;
export type StreamPayload<S extends ApiStream> = z.output<ApiStreams[S]>;
export const API_STREAM_NAMES = Object.keys(apiStreams) as ApiStream[];

export const StreamItem = z.object({ stream: z.enum(API_STREAM_NAMES as [ApiStream, ...ApiStream[]]), data: z.unknown() });
export const StreamBatch = z.object({ events: z.array(StreamItem) });
export type StreamItem = { [S in ApiStream]: { stream: S; data: StreamPayload<S> } }[ApiStream];
export type StreamBatch = { events: StreamItem[] };

// ---- the API as the renderer sees it: api.runs.create({...}), api.onJobEvent(listener)

export type Unsubscribe = () => void;
type GroupOf<M> = M extends `${infer G}.${string}` ? G : never;
type ApiGroups = {
  [G in GroupOf<ApiMethod>]: {
    [M in ApiMethod as M extends `${G}.${infer N}` ? N : never]: (request: ApiRequest<M>) => Promise<ApiResponse<M>>;
  };
};
type ApiEventHooks = {
  [S in ApiStream as `on${Capitalize<S>}`]: (listener: (payload: StreamPayload<S>) => void) => Unsubscribe;
};
export type WorkbenchApi = ApiGroups & ApiEventHooks;

/** The hook name of a stream: jobEvent -> onJobEvent. */
export function streamHook(stream: ApiStream): `on${Capitalize<ApiStream>}` {
  return `on${stream[0]!.toUpperCase()}${stream.slice(1)}` as `on${Capitalize<ApiStream>}`;
}
