// Tasks: a V1-vs-V2 analysis, a model export, import or reconstruction, each a `cnx` command the
// workbench runs in the background (one at a time), with its own folder under the workspace's tasks/.
import { z } from 'zod';
import { absolutePath, isoTime, step } from './fields.ts';
import { RunError } from './runs.ts';
import { RunId } from './vocabulary.ts';

export const TaskId = z.string().regex(/^[a-z]+-[A-Za-z0-9_-]{1,80}$/, 'is not a task id');
export const TaskKind = z.enum(['analysis', 'export', 'import', 'reconstruction', 'curation']);
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
