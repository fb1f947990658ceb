// Runs (one training or evaluation run; each start or resume of it is an attempt), their events,
// metrics, checkpoints and artifacts.
import { z } from 'zod';
import { JobConfig, type JobConfigInput } from '../job.ts';
import { JobEvent } from '../protocol.ts';
import { int, isoTime, step } from './fields.ts';
import { DatasetName, EngineChoice, EngineName, RunId, RunState } from './vocabulary.ts';

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
  /** Followed read-only from a run folder no service here runs (runs.attach), e.g. a cluster run. */
  remote: z.boolean().optional(),
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
