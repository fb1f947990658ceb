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
import { z } from 'zod';
import { JobConfig, type JobConfigInput } from './job.ts';
import { SPLITS } from './manifest.ts';
import { JobEvent } from './protocol.ts';

// ---- vocabulary

const int = (lo: number, hi?: number) => (hi === undefined ? z.number().int().min(lo) : z.number().int().min(lo).max(hi));
const step = int(0);
const isoTime = z.string();
const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\'), 'must be an absolute path');

/** A dataset's name as the catalog stores it (no path separators, never '.' or '..'). */
export const DatasetName = z
  .string()
  .min(1)
  .max(200)
  .refine((n) => !/[/\\\0]/.test(n) && n !== '.' && n !== '..', "must not contain '/', '\\' or be '.' or '..'");

/** A path inside a dataset, relative to its root: '/' separated, no '.', '..' or empty segments. */
export const RelativePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\\') && !p.includes('\0') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), "must be relative, '/' separated, without '.', '..' or empty segments");

/** A run's id: also its folder name under runs/, so it is restricted to file-name-safe characters. */
export const RunId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$/, 'is not a run id');

export const Split = z.enum(SPLITS);
export const EngineName = z.enum(['onnx', 'torch']);
export type EngineName = z.infer<typeof EngineName>;
/** 'auto': the PyTorch engine when a Python with torch and a GPU is found, else the ONNX engine. */
export const EngineChoice = z.enum(['auto', 'onnx', 'torch']);
export type EngineChoice = z.infer<typeof EngineChoice>;
export const DeviceChoice = z.enum(['auto', 'cpu', 'cuda', 'mps']);

/**
 * queued -> running -> completed | failed; running -> pausing -> paused; running -> cancelling -> cancelled;
 * a worker that dies without saying `done` (or a workbench that stopped mid-run) leaves it interrupted.
 * paused, interrupted, failed and cancelled runs can resume from their last checkpoint.
 */
export const RunState = z.enum(['queued', 'running', 'pausing', 'paused', 'cancelling', 'cancelled', 'completed', 'failed', 'interrupted']);
export type RunState = z.infer<typeof RunState>;
export const ACTIVE_RUN_STATES: readonly RunState[] = ['running', 'pausing', 'cancelling'];
export const RESUMABLE_RUN_STATES: readonly RunState[] = ['paused', 'interrupted', 'failed', 'cancelled'];

export const ApiErrorCode = z.enum(['invalid', 'unauthorized', 'not-found', 'conflict', 'too-large', 'unsupported', 'internal']);
export type ApiErrorCode = z.infer<typeof ApiErrorCode>;
export const ApiErrorBody = z.object({ code: ApiErrorCode, message: z.string(), field: z.string().optional() });
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;

/** What every transport returns for a request. */
export const ApiResult = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), value: z.unknown() }), z.object({ ok: z.literal(false), error: ApiErrorBody })]);
export type ApiResult = z.infer<typeof ApiResult>;

/** A failed request; `field` is the dotted path of the bad request field when there is one. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  toBody(): ApiErrorBody {
    return this.field === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, field: this.field };
  }
}

/** The first problem of a failed zod parse as an 'invalid' ApiError naming the field. */
export function invalidRequest(error: z.ZodError, prefix = ''): ApiError {
  const first = error.issues[0];
  const path = [prefix, ...(first?.path ?? []).map(String)].filter(Boolean).join('.');
  return new ApiError('invalid', `${path || 'request'}: ${first?.message ?? 'invalid'}`, path || undefined);
}

// ---- datasets

export const DatasetKind = z.enum(['folder', 'csv', 'idx', 'unlabeled']);
export const ScanState = z.enum(['new', 'scanning', 'complete']);

export const DatasetSummary = z.object({
  name: z.string(),
  kind: DatasetKind,
  source: z.string(),
  root: z.string(),
  createdAt: isoTime,
  scanState: ScanState,
  scannedAt: isoTime.nullable(),
  /** Usable images: neither corrupt nor excluded. */
  images: int(0),
  classes: int(0),
  versions: int(0),
});
export type DatasetSummary = z.infer<typeof DatasetSummary>;

export const EditRow = z.object({ id: int(1), at: isoTime, kind: z.string(), summary: z.string(), undoneAt: isoTime.nullable(), changes: int(0) });
export type EditRow = z.infer<typeof EditRow>;

export const DatasetDetail = DatasetSummary.extend({
  labels: z.array(z.object({ name: z.string(), index: int(0), images: int(0) })),
  versionList: z.array(z.object({ version: int(1), createdAt: isoTime, hash: z.string() })),
  /** The newest edits first (at most 50). */
  edits: z.array(EditRow),
  corrupt: int(0),
  excluded: int(0),
  /** Paths the last scan skipped (not images, unreadable...). */
  skipped: int(0),
});
export type DatasetDetail = z.infer<typeof DatasetDetail>;

const splitCounts = z.object({ train: int(0), val: int(0), test: int(0) });

export const DatasetStats = z.object({
  dataset: z.string(),
  kind: DatasetKind,
  root: z.string(),
  scanState: ScanState,
  images: int(0),
  corrupt: int(0),
  excluded: int(0),
  splits: splitCounts,
  classes: z.array(z.object({ name: z.string(), index: int(0), train: int(0), val: int(0), test: int(0), total: int(0) })),
  unlabeled: splitCounts,
  imbalance: z.object({ smallest: z.string(), largest: z.string(), ratio: z.number().nullable() }).nullable(),
  formats: z.record(z.string(), int(0)),
  size: z.object({ minWidth: z.number(), maxWidth: z.number(), minHeight: z.number(), maxHeight: z.number() }).nullable(),
  outliers: z.object({
    small: int(0),
    large: int(0),
    aspect: int(0),
    examples: z.array(z.object({ path: z.string(), width: z.number(), height: z.number(), reason: z.enum(['small', 'large', 'aspect']) })),
  }),
});
export type DatasetStats = z.infer<typeof DatasetStats>;

export const DuplicateGroup = z.object({
  key: z.string(),
  images: z.array(z.object({ id: int(1), path: z.string(), label: z.string().nullable(), split: z.string() })),
});
export const DatasetDupes = z.object({ dataset: z.string(), threshold: int(0, 32), exact: z.array(DuplicateGroup), near: z.array(DuplicateGroup) });
export type DatasetDupes = z.infer<typeof DatasetDupes>;

export const ImageStatus = z.enum(['usable', 'corrupt', 'excluded', 'all']);
export const ImagesQuery = z.strictObject({
  name: DatasetName,
  offset: int(0).default(0),
  limit: int(1, 500).default(100),
  split: Split.optional(),
  /** A class name; null selects unlabeled images. */
  label: z.string().nullable().optional(),
  status: ImageStatus.default('usable'),
  /** Case-insensitive substring of the path. */
  search: z.string().max(500).optional(),
});
export const ImageInfo = z.object({
  id: int(1),
  path: z.string(),
  bytes: int(0),
  width: z.number().nullable(),
  height: z.number().nullable(),
  channels: z.number().nullable(),
  format: z.string().nullable(),
  label: z.string().nullable(),
  split: Split,
  corrupt: z.boolean(),
  excluded: z.boolean(),
  problem: z.string().nullable(),
  problemDetail: z.string().nullable(),
  contentHash: z.string().nullable(),
});
export type ImageInfo = z.infer<typeof ImageInfo>;
export const ImagesPage = z.object({ total: int(0), offset: int(0), items: z.array(ImageInfo) });
export type ImagesPage = z.infer<typeof ImagesPage>;

const paths = z.array(RelativePath).min(1).max(10_000);
export const EditResult = z.object({ edit: EditRow.nullable() });

export const ImportRequest = z.strictObject({
  source: absolutePath,
  name: DatasetName.optional(),
  kind: DatasetKind.optional(),
  idxClasses: z.enum(['fashion-mnist', 'mnist']).optional(),
});
export const ImportProgress = z.object({
  phase: z.enum(['materialize', 'scan', 'finish']),
  done: int(0),
  total: int(0).nullable(),
  added: int(0),
  changed: int(0),
  unchanged: int(0),
  issues: int(0),
});
const Issue = z.object({ path: z.string(), reason: z.string(), detail: z.string() });
export const ImportSummary = z.object({
  dataset: z.string(),
  kind: DatasetKind,
  root: z.string(),
  images: int(0),
  classes: int(0),
  added: int(0),
  changed: int(0),
  removed: int(0),
  unchanged: int(0),
  exactDuplicateGroups: int(0),
  nearDuplicateGroups: int(0),
  corrupt: z.array(Issue),
  skipped: z.array(Issue),
});
export type ImportSummary = z.infer<typeof ImportSummary>;
/** An import (or rescan) running in the background; reported on the datasetProgress stream. */
export const ImportTask = z.object({
  taskId: z.string(),
  source: z.string(),
  name: z.string().nullable(),
  state: z.enum(['running', 'completed', 'failed', 'cancelled']),
  progress: ImportProgress.nullable(),
  summary: ImportSummary.nullable(),
  error: z.string().nullable(),
  startedAt: isoTime,
  finishedAt: isoTime.nullable(),
});
export type ImportTask = z.infer<typeof ImportTask>;

export const ManifestExport = z.object({
  dataset: z.string(),
  file: z.string(),
  version: int(1),
  hash: z.string(),
  items: int(0),
  classes: int(0),
  splits: splitCounts,
});
export type ManifestExport = z.infer<typeof ManifestExport>;

// ---- runs (one training or evaluation run; each start or resume of it is an attempt)

/** A job config as the renderer writes it: the service owns runDir and resume, and may fill data.manifest. */
export type JobConfigDraft = Omit<JobConfigInput, 'runDir' | 'resume' | 'data' | 'device'> & {
  data: Omit<JobConfigInput['data'], 'manifest'> & { manifest?: string };
  device?: JobConfigInput['device'];
};
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Shape-checked here; the service validates it fully with parseJobConfig and names the bad field. */
export const JobConfigDraft = z.custom<JobConfigDraft>((v) => isRecord(v) && isRecord(v.data), 'must be a job config object (with a data section)');

export const RunCreate = z.strictObject({
  config: JobConfigDraft,
  /** Trains on this dataset's current manifest (frozen as a version into the run folder). */
  dataset: DatasetName.optional(),
  engine: EngineChoice.optional(),
  name: z.string().min(1).max(200).optional(),
  /** Higher runs first among queued runs on the same device. */
  priority: int(-100, 100).default(0),
  /** false: created paused, started later with runs.resume. */
  start: z.boolean().default(true),
});
export type RunCreate = z.input<typeof RunCreate>;

export const RunError = z.object({ message: z.string(), detail: z.string() });
export const RunSummary = z.object({
  id: RunId,
  name: z.string(),
  kind: z.enum(['pretrain', 'finetune', 'eval']),
  arch: z.string(),
  dataset: z.string().nullable(),
  state: RunState,
  engineChoice: EngineChoice,
  /** The engine of the latest attempt; null before the first start. */
  engine: EngineName.nullable(),
  /** The worker's own name for its device ('cpu', 'cuda:NVIDIA H100 ...'); null until it starts. */
  device: z.string().nullable(),
  /** The scheduling lane: 'gpu' (one job at a time) or 'cpu'. */
  lane: z.enum(['gpu', 'cpu']).nullable(),
  priority: z.number().int(),
  createdAt: isoTime,
  updatedAt: isoTime,
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  step: step.nullable(),
  totalSteps: step.nullable(),
  epoch: z.number().nullable(),
  imagesPerSec: z.number().nullable(),
  attempts: int(0),
  lastCheckpointStep: step.nullable(),
  bestTop1: z.number().nullable(),
  error: RunError.nullable(),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const Attempt = z.object({
  attempt: int(1),
  engine: EngineName,
  lane: z.enum(['gpu', 'cpu']),
  pid: z.number().int().nullable(),
  startedAt: isoTime,
  endedAt: isoTime.nullable(),
  resumedFromStep: step.nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  outcome: RunState.nullable(),
  error: RunError.nullable(),
  /** The last lines the worker wrote to stderr, kept when it failed. */
  stderrTail: z.string().nullable(),
});
export type Attempt = z.infer<typeof Attempt>;

export const RunDetail = RunSummary.extend({
  runDir: z.string(),
  config: JobConfig,
  attemptsList: z.array(Attempt),
});
export type RunDetail = z.infer<typeof RunDetail>;

/** One worker event as the service recorded it: seq numbers the lines of the run's events.jsonl. */
export const JobEventMessage = z.object({ runId: RunId, attempt: int(1), seq: int(1), at: z.number(), event: JobEvent });
export type JobEventMessage = z.infer<typeof JobEventMessage>;

export const RunEventsQuery = z.strictObject({
  runId: RunId,
  types: z.array(z.enum(['started', 'progress', 'metrics', 'checkpoint', 'eval', 'sample', 'log', 'error', 'done'])).max(9).optional(),
  afterSeq: int(0).default(0),
  limit: int(1, 1000).default(200),
});
export const RunEventsPage = z.object({ items: z.array(JobEventMessage), lastSeq: int(0) });

// ---- metrics

export const MetricSeriesQuery = z.strictObject({
  runId: RunId,
  /** Metric names ('loss', 'lr', 'eval/top1', ...); all when absent. */
  names: z.array(z.string().min(1).max(200)).max(64).optional(),
  /** At most this many buckets per series: long runs cost the same to fetch and draw as short ones. */
  points: int(1, 10_000).default(1000),
  fromStep: step.optional(),
  toStep: step.optional(),
});
/** Column arrays, one entry per non-empty bucket; min/max/last skip non-finite values (null when all are). */
export const MetricSeries = z.object({
  name: z.string(),
  /** First and last step in each bucket. */
  fromStep: z.array(step),
  toStep: z.array(step),
  min: z.array(z.number().nullable()),
  max: z.array(z.number().nullable()),
  /** The value at the bucket's last step. */
  last: z.array(z.number().nullable()),
  count: z.array(int(1)),
});
export type MetricSeries = z.infer<typeof MetricSeries>;
export const MetricSeriesResult = z.object({ runId: RunId, fromStep: step.nullable(), toStep: step.nullable(), series: z.array(MetricSeries) });
export type MetricSeriesResult = z.infer<typeof MetricSeriesResult>;

// ---- checkpoints and artifacts

export const Checkpoint = z.object({
  step,
  /** Absolute paths of the weights and the optimizer state. */
  path: z.string(),
  statePath: z.string(),
  at: isoTime,
  bytes: int(0).nullable(),
  /** Named by last.json / best.json. */
  last: z.boolean(),
  best: z.boolean(),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const Artifact = z.object({
  id: int(1),
  step,
  kind: z.string(),
  /** Relative to the run folder; fetched as FileRef { kind: 'artifact' }. */
  path: z.string(),
  at: isoTime,
});
export type Artifact = z.infer<typeof Artifact>;

// ---- settings and system

export const Settings = z.object({
  /** The workspace folder in use (changed by restarting with another one). */
  workspace: z.string(),
  /** The Python interpreter of the PyTorch engine. */
  pythonPath: z.string().min(1),
  defaultEngine: EngineChoice,
  defaultDevice: DeviceChoice,
  /** CPU jobs allowed to run at once (GPU jobs run one at a time). */
  cpuJobSlots: int(1, 16),
  /** A running worker silent for this long is stopped and its run marked failed. */
  stallTimeoutSec: int(10, 86_400),
});
export type Settings = z.infer<typeof Settings>;
export const SettingsUpdate = Settings.omit({ workspace: true }).partial().strict();

export const GpuInfo = z.object({ name: z.string(), memoryGiB: z.number().nullable(), backend: z.enum(['cuda', 'mps']) });
export const SystemInfo = z.object({
  app: z.object({ version: z.string(), node: z.string(), platform: z.string(), arch: z.string() }),
  host: z.object({ kind: z.enum(['electron', 'web']), nativeDialogs: z.boolean() }),
  cpu: z.object({ model: z.string(), cores: int(0) }),
  memory: z.object({ totalBytes: z.number(), freeBytes: z.number() }),
  workspace: z.object({ path: z.string(), diskTotalBytes: z.number().nullable(), diskFreeBytes: z.number().nullable() }),
  gpus: z.array(GpuInfo),
  engines: z.object({
    onnx: z.object({ available: z.boolean(), version: z.string().nullable(), providers: z.array(z.string()), chosen: z.string().nullable(), notes: z.array(z.string()) }),
    torch: z.object({ available: z.boolean(), interpreter: z.string(), python: z.string().nullable(), version: z.string().nullable(), error: z.string().nullable() }),
  }),
  /** What engine 'auto' picks on this machine. */
  autoEngine: EngineName,
  /** Set when `cnx doctor` could not be run; the engine fields then say unknown. */
  doctorError: z.string().nullable(),
  checkedAt: isoTime,
});
export type SystemInfo = z.infer<typeof SystemInfo>;

// ---- tasks: a V1-vs-V2 analysis or a model export, each a `cnx` command the workbench runs in the
// background (one at a time), with its own folder under the workspace's tasks/

export const TaskId = z.string().regex(/^[a-z]+-[A-Za-z0-9_-]{1,80}$/, 'is not a task id');
export const TaskKind = z.enum(['analysis', 'export', 'import', 'reconstruction']);
export type TaskKind = z.infer<typeof TaskKind>;
/** queued -> running -> completed | failed | cancelled; a workbench that stopped mid-task leaves it interrupted. */
export const TaskState = z.enum(['queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted']);
export type TaskState = z.infer<typeof TaskState>;

/** A model to load: a run's checkpoint, or a checkpoint file (official, timm or another workbench's). */
export const ModelRef = z.union([z.strictObject({ runId: RunId, step }), z.strictObject({ file: absolutePath })]);
export type ModelRef = z.infer<typeof ModelRef>;

export const Task = z.object({
  id: TaskId,
  kind: TaskKind,
  title: z.string(),
  state: TaskState,
  createdAt: isoTime,
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  progress: z.object({ message: z.string(), fraction: z.number().min(0).max(1).nullable() }).nullable(),
  /** The task's folder (absolute): what the command wrote. */
  dir: z.string(),
  /** Files the task wrote, relative to `dir`; fetched as FileRef { kind: 'task' }. */
  files: z.array(z.string()),
  error: RunError.nullable(),
  /** The request that started it (AnalysisRequest or ExportRequest, defaults filled in). */
  request: z.record(z.string(), z.unknown()),
});
export type Task = z.infer<typeof Task>;

const multipleOf32 = int(32, 1024).refine((s) => s % 32 === 0, 'must be a multiple of 32');

export const AnalysisRequest = z.strictObject({
  /** The checkpoints to compare (V1 and V2, classifiers or FCMAE encoders), each with a label. */
  models: z.array(z.strictObject({ model: ModelRef, name: z.string().min(1).max(100).optional() })).min(1).max(4),
  /** The images: taken round-robin over the classes of this dataset's split. */
  dataset: DatasetName,
  split: Split.default('val'),
  images: int(1, 1024).default(64),
  size: multipleOf32.default(224),
  /** The block whose 64 channels the activation grids show (default: the last block of stage 2). */
  gridLayer: int(0, 200).optional(),
  /** Which of the chosen images the grids show. */
  gridImage: int(0).default(0),
  /** The engine that computes it: ONNX (CPU, or CUDA when present) or PyTorch (the Python of the settings). */
  engine: EngineName.default('onnx'),
});
export type AnalysisRequest = z.input<typeof AnalysisRequest>;

const ParamStats = z.object({ mean: z.number(), std: z.number(), min: z.number(), max: z.number(), nearZero: z.number() });
export const AnalysisModel = z.object({
  name: z.string(),
  checkpoint: z.string(),
  arch: z.string(),
  fcmae: z.boolean(),
  /** The activation grid's file in the task folder. */
  grid: z.string().nullable(),
  gridLayer: int(0),
  layers: z.array(
    z.object({
      name: z.string(),
      stage: int(0),
      channels: int(1),
      /** Normalized layer index, 0..1 (the paper's x axis). */
      depth: z.number(),
      /** Average pairwise feature cosine distance (paper Fig. 4); higher = more diverse channels. */
      distance: z.number().nullable(),
      dead: int(0),
      constant: int(0),
    }),
  ),
  /** GRN gamma (weight) and beta (bias) statistics per block; empty for V1. */
  grn: z.array(z.object({ layer: z.string(), weight: ParamStats, bias: ParamStats })),
});
export const AnalysisResult = z.object({
  /** Absent in results written before the engine was recorded (those are the ONNX engine's). */
  engine: EngineName.default('onnx'),
  images: int(0),
  size: int(1),
  split: z.string(),
  gridImage: z.object({ index: int(0), path: z.string(), label: z.string().nullable() }).nullable(),
  models: z.array(AnalysisModel),
});
export type AnalysisResult = z.infer<typeof AnalysisResult>;

/** hf: a Hugging Face / timm model folder (model.safetensors + config.json with class names and preprocessing). */
export const ExportFormat = z.enum(['onnx', 'timm', 'official', 'hf']);
export type ExportFormat = z.infer<typeof ExportFormat>;
/** ONNX export options: batch 'dynamic' (any) or fixed; float16 weights (compute stays float32); opset 18..21. */
export const OnnxOptions = z.strictObject({
  batch: z.union([z.literal('dynamic'), int(1, 4096)]).default('dynamic'),
  fp16Weights: z.boolean().default(false),
  opset: int(18, 21).default(20),
});
export type OnnxOptions = z.input<typeof OnnxOptions>;
export const ExportRequest = z.strictObject({
  runId: RunId,
  step,
  /** onnx: an inference model + metadata JSON (classifiers); timm / official: safetensors (an FCMAE run exports its encoder). */
  format: ExportFormat,
  /** The ONNX model's input size (default: the run's). */
  size: multipleOf32.optional(),
  onnx: OnnxOptions.optional(),
});
export type ExportRequest = z.input<typeof ExportRequest>;

/** FCMAE reconstructions of chosen images by some of a pretraining run's checkpoints, under one mask. */
export const ReconstructionRequest = z.strictObject({
  runId: RunId,
  /** The checkpoints (steps) to compare; each gets the same images and masks. */
  steps: z.array(step).min(1).max(8),
  /** Images by dataset-relative path; else `images` picked at random (pickSeed) from `split` of the run's data. */
  paths: z.array(RelativePath).min(1).max(16).optional(),
  split: Split.default('val'),
  images: int(1, 16).default(4),
  pickSeed: int(0).default(0),
  /** Default: the run's own mask ratio. */
  maskRatio: z.number().gt(0).lt(1).optional(),
  maskSeed: int(0).default(0),
});
export type ReconstructionRequest = z.input<typeof ReconstructionRequest>;

// ---- models in: reconstructions by an imported FCMAE checkpoint file (e.g. an official training checkpoint)
/** Images of a catalogued dataset reconstructed by one checkpoint file that holds an FCMAE decoder. */
export const FileReconstructionRequest = z.strictObject({
  file: absolutePath,
  dataset: DatasetName,
  split: Split.default('val'),
  images: int(1, 16).default(4),
  pickSeed: int(0).default(0),
  size: int(32, 1024).refine((s) => s % 32 === 0, 'must be a multiple of 32').default(224),
  maskRatio: z.number().gt(0).lt(1).default(0.6),
  maskSeed: int(0).default(0),
});
export type FileReconstructionRequest = z.input<typeof FileReconstructionRequest>;

export const ReconstructionResult = z.object({
  size: int(32),
  maskRatio: z.number(),
  maskSeed: int(0),
  patchesPerSide: int(1),
  images: z.array(z.object({ path: z.string(), label: z.string().nullable() })),
  checkpoints: z.array(
    z.object({
      name: z.string(),
      checkpoint: z.string(),
      arch: z.string(),
      loss: z.number().nullable(),
      /** Grid file in the task folder: a row per image; original | masked | reconstruction | + visible | error. */
      grid: z.string(),
      /** Per image, per patch (row-major): mean squared error of a removed patch; null for visible ones. */
      patchErrors: z.array(z.array(z.number().nullable())),
    }),
  ),
});
export type ReconstructionResult = z.infer<typeof ReconstructionResult>;

/** Exports a checkpoint file (an imported one): the same formats, the architecture as the file holds it. */
export const ExportFileRequest = z.strictObject({
  file: absolutePath,
  format: ExportFormat,
  size: multipleOf32.default(224),
  onnx: OnnxOptions.optional(),
  /** Class names for the ONNX metadata, one per class of the head. */
  labels: z.array(z.string().min(1).max(200)).max(100_000).optional(),
});
export type ExportFileRequest = z.input<typeof ExportFileRequest>;

/**
 * A checkpoint file brought into the workbench (official, timm, or another workbench's): checked and
 * described by an import task; the file stays where it is and is referred to by path.
 */
export const ImportedModel = z.object({
  /** The import task that checked it; tasks.delete forgets the import (never the file). */
  taskId: TaskId,
  name: z.string(),
  file: z.string(),
  /** false when the file has gone since it was imported. */
  present: z.boolean(),
  importedAt: isoTime,
  /** timm's model name, e.g. convnextv2_atto. */
  arch: z.string(),
  kind: z.enum(['classifier', 'encoder', 'fcmae']),
  numClasses: int(0),
  format: z.string(),
  layout: z.string(),
  parameters: int(0),
  notes: z.array(z.string()),
  /** Where the file comes from (e.g. "official FCMAE training checkpoint ..."); '' for imports made before. */
  source: z.string(),
  /** Whether it holds the FCMAE decoder, and what that means for reconstructions. */
  decoderNote: z.string(),
  /** The training epoch an official training checkpoint records. */
  epoch: z.number().int().nullable(),
});
export type ImportedModel = z.infer<typeof ImportedModel>;

// ---- files (images, thumbnails, artifacts, task outputs) are fetched by URL, never through the request channel

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
  'datasets.relabel': method(z.strictObject({ name: DatasetName, paths, label: z.string().min(1).max(200).nullable() }), EditResult),
  'datasets.move': method(z.strictObject({ name: DatasetName, paths, split: Split }), EditResult),
  'datasets.exclude': method(z.strictObject({ name: DatasetName, paths, excluded: z.boolean() }), EditResult),
  'datasets.split': method(
    z.strictObject({ name: DatasetName, val: z.number().min(0).lt(1), test: z.number().min(0).lt(1).default(0), seed: int(0).default(0) }),
    EditResult.extend({ counts: splitCounts }),
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
  /** Queues a check of a checkpoint file (`cnx inspect`); once it completes the file is listed by models.imported. */
  /** `file`: a checkpoint file or a Hugging Face / timm model folder (config.json + weights). */
  'models.import': method(z.strictObject({ file: absolutePath, name: z.string().min(1).max(200).optional() }), Task),
  'models.imported': method(Empty, z.array(ImportedModel)),

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

export const DatasetChanged = z.object({ dataset: z.string(), reason: z.enum(['imported', 'edited', 'undone', 'exported', 'deleted']) });

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

// ---- the Electron transport's names (the preload exposes the API as window.workbench)

export const IPC_INVOKE_CHANNEL = 'cnx:api';
export const IPC_EVENTS_CHANNEL = 'cnx:events';
export const PRELOAD_GLOBAL = 'workbench';

/**
 * What Electron's preload exposes as window.workbench: the raw IPC transport, not a client. The renderer
 * builds its client on top, so ApiError (with its code and field) is created in the page's own world; an
 * error thrown across the context bridge would arrive as a plain Error with its message only.
 */
export interface PreloadBridge {
  /** Sends one request; resolves with the raw ApiResult envelope (validated by the renderer's client). */
  invoke(method: string, request: unknown): Promise<unknown>;
  /** Delivers each event batch as its JSON text (cheaper across the bridge than a cloned object). */
  listen(onBatchJson: (json: string) => void): () => void;
}
/** The app protocol serving the renderer and /files/... in Electron: app://workbench/. */
export const APP_ORIGIN = 'app://workbench';
