// Job events (version 1): one JSON object per line on a worker's stdout, the same from both engines.
// The main process validates every line it receives against these schemas.
import { z } from 'zod';

const step = z.number().int().min(0);
const finite = z.number().nullable(); // non-finite values travel as null

export const JobEvent = z.discriminatedUnion('type', [
  z.object({ v: z.literal(1), type: z.literal('started'), engine: z.enum(['onnx', 'torch']), device: z.string(), params: z.number().int(), kind: z.string(), arch: z.string() }).loose(),
  z.object({ v: z.literal(1), type: z.literal('progress'), step, totalSteps: step, epoch: z.number(), imagesPerSec: finite }).loose(),
  z.object({ v: z.literal(1), type: z.literal('metrics'), step, values: z.record(z.string(), finite) }),
  z.object({ v: z.literal(1), type: z.literal('checkpoint'), step, path: z.string(), statePath: z.string() }),
  z.object({
    v: z.literal(1),
    type: z.literal('eval'),
    step,
    weights: z.enum(['model', 'ema']),
    images: z.number().int(),
    top1: finite,
    top5: finite,
    perClass: z.array(finite),
    confusion: z.array(z.array(z.number().int())),
  }).loose(),
  z.object({ v: z.literal(1), type: z.literal('sample'), step, kind: z.string(), path: z.string() }).loose(),
  z.object({ v: z.literal(1), type: z.literal('log'), level: z.enum(['debug', 'info', 'warning', 'error']), message: z.string() }),
  z.object({ v: z.literal(1), type: z.literal('error'), message: z.string(), detail: z.string() }).loose(),
  z.object({ v: z.literal(1), type: z.literal('done'), status: z.enum(['completed', 'cancelled', 'failed']) }),
]);

export type JobEvent = z.infer<typeof JobEvent>;
export type JobEventType = JobEvent['type'];
export type EventOf<T extends JobEventType> = Extract<JobEvent, { type: T }>;

/** Parses one line of a worker's stdout; null for a line that is not a valid event (a stray print). */
export function parseEventLine(line: string): JobEvent | null {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return null;
  }
  const r = JobEvent.safeParse(raw);
  return r.success ? r.data : null;
}

// Progress of a `cnx` command the workbench runs as a task: with CNX_PROGRESS=json in its environment the
// command writes one JSON line per update on stderr, {"progress": text, "fraction": 0..1 | null}.
export const PROGRESS_ENV = 'CNX_PROGRESS';
export const ProgressLine = z.object({ progress: z.string(), fraction: z.number().min(0).max(1).nullable() });
export type ProgressLine = z.infer<typeof ProgressLine>;

/** Parses one stderr line of a task's command; null for anything that is not a progress line. */
export function parseProgressLine(line: string): ProgressLine | null {
  if (!line.startsWith('{')) return null;
  try {
    const r = ProgressLine.safeParse(JSON.parse(line));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

