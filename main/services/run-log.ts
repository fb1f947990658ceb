// A run's folder and its append-only log, runs/<id>/events.jsonl: every worker event and every decision
// of the service (queued, attempt started, worker exited, paused...) as one numbered JSON line. The
// database holds the same facts indexed; it can always be rebuilt by replaying these files.
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { EngineChoice, EngineName, RunError, RunState } from '../../common/api.ts';
import { JobEvent } from '../../common/protocol.ts';

export const RUNS_DIR = 'runs';
export const EVENTS_FILE = 'events.jsonl';
export const RUN_FILE = 'run.json';
export const CONFIG_FILE = 'config.json';

export const Lane = z.enum(['gpu', 'cpu']);
export type Lane = z.infer<typeof Lane>;

/** What the service decided, logged next to the worker events so the run's history replays exactly. */
export const ServiceEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('queued') }),
  /** A state the service set without a worker: paused or cancelled while queued, pausing, cancelling. */
  z.object({ type: z.literal('state'), state: RunState, reason: z.string().optional() }),
  z.object({
    type: z.literal('attempt'),
    attempt: z.number().int().min(1),
    engine: EngineName,
    lane: Lane,
    pid: z.number().int().nullable(),
    resumedFromStep: z.number().int().nullable(),
    /** The CUDA GPUs the queue gave the attempt (CUDA_VISIBLE_DEVICES). */
    gpus: z.array(z.number().int()).optional(),
  }),
  z.object({
    type: z.literal('exit'),
    attempt: z.number().int().min(1),
    code: z.number().int().nullable(),
    signal: z.string().nullable(),
    outcome: RunState,
    error: RunError.nullable(),
    stderrTail: z.string().nullable(),
  }),
  z.object({ type: z.literal('priority'), priority: z.number().int() }),
]);
export type ServiceEvent = z.infer<typeof ServiceEvent>;

/** One line of events.jsonl: a worker event (with the attempt that sent it) or a service event. */
export type RunLine = { seq: number; t: number; attempt: number; event: JobEvent } | { seq: number; t: number; svc: ServiceEvent };

const LineSchema = z.union([
  z.object({ seq: z.number().int().min(1), t: z.number(), attempt: z.number().int().min(1), event: JobEvent }),
  z.object({ seq: z.number().int().min(1), t: z.number(), svc: ServiceEvent }),
]);

export function parseRunLine(text: string): RunLine | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const r = LineSchema.safeParse(raw);
  return r.success ? r.data : null;
}

/**
 * The JSON of a line. A worker event keeps the exact text the worker sent (already validated), so the log
 * records what was said and the hot path never re-serialises it.
 */
export function formatRunLine(line: RunLine, rawEvent?: string): string {
  if ('svc' in line) return JSON.stringify(line);
  return `{"seq":${line.seq},"t":${line.t},"attempt":${line.attempt},"event":${rawEvent ?? JSON.stringify(line.event)}}`;
}

/** Identity of a run, written once at creation (priority changes are logged lines). */
export const RunMeta = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.string(),
  engineChoice: EngineChoice,
  priority: z.number().int(),
  dataset: z.string().nullable(),
});
export type RunMeta = z.infer<typeof RunMeta>;

export function runDir(workspace: string, id: string): string {
  return join(workspace, RUNS_DIR, id);
}

/** Writes a file atomically (temp + rename): a crash leaves the old or the new content, never half. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

export async function writeRunFolder(dir: string, meta: RunMeta, config: unknown): Promise<void> {
  await mkdir(join(dir, 'checkpoints'), { recursive: true });
  await writeFileAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
  await writeFileAtomic(join(dir, RUN_FILE), `${JSON.stringify(meta, null, 2)}\n`);
}

export async function readRunMeta(dir: string): Promise<{ meta: RunMeta; config: unknown } | null> {
  try {
    const meta = RunMeta.parse(JSON.parse(await readFile(join(dir, RUN_FILE), 'utf8')));
    const config: unknown = JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8'));
    return { meta, config };
  } catch {
    return null;
  }
}

/** Streams the lines of a run's log, skipping lines that do not parse (a torn last line after a crash). */
export async function* readRunLines(dir: string): AsyncGenerator<{ line: RunLine; raw: string }> {
  const stream = createReadStream(join(dir, EVENTS_FILE), { encoding: 'utf8' });
  const opened = await new Promise<boolean>((resolve) => {
    stream.once('open', () => resolve(true));
    stream.once('error', () => resolve(false));
  });
  if (!opened) return;
  for await (const raw of createInterface({ input: stream, crlfDelay: Infinity })) {
    const line = raw.trim() ? parseRunLine(raw) : null;
    if (line) yield { line, raw };
  }
}

/**
 * Appends to one run's events.jsonl. Each flush is one write to the page cache (at most a few hundred KB,
 * well under a millisecond) made before the database applies the same lines: the log is never behind the
 * database, so whatever a crash loses from the database is replayed from the log. A queued asynchronous
 * write could not promise that, nor keep service lines in order with worker lines.
 */
export class RunLogWriter {
  private fd: number | null = null;
  constructor(readonly dir: string) {}

  append(text: string): void {
    this.fd ??= openSync(join(this.dir, EVENTS_FILE), 'a');
    const bytes = Buffer.from(text);
    // write(2) may take less than asked (a full disk raises instead): finish the rest.
    for (let off = 0; off < bytes.length; ) off += writeSync(this.fd, bytes, off);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
