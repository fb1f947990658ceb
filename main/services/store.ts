// The Store: the workspace database (the catalog's workbench.db, plus the services' tables) and the run
// logs. Every fact about a run enters as a RunLine: it is appended to runs/<id>/events.jsonl and applied
// to the tables by one function, live or when replaying a log, so the database can always be rebuilt
// from the run folders. The log is written first, so it is never behind the database. Worker events are
// batched (one log write and one transaction per flush) so a worker sending thousands of metrics a
// second costs a few short transactions, never a stall of the event loop.
import type Database from 'better-sqlite3';
import { readdir, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Attempt, EngineChoice, JobEventMessage, MetricSeriesResult, RunState, RunSummary } from '../../common/api.ts';
import type { JobEvent } from '../../common/protocol.ts';
import { Catalog } from '../../native-worker/data/catalog/catalog.ts';
import { type Lane, type RunLine, type RunMeta, RUNS_DIR, RunLogWriter, formatRunLine, readRunLines, readRunMeta, runDir } from './run-log.ts';
import type { SeriesRequest } from './query-worker.ts';
import { migrateServices } from './schema.ts';
import { type SeriesQuery, metricNames, querySeries } from './series.ts';

const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const QUERY_MODULE = new URL('./query-worker.ts', import.meta.url).href;

export interface StoreOptions {
  /** How long worker events may wait before they are written (default 50 ms). */
  flushMs?: number;
  /** Pending lines that force a flush at once (default 5000). */
  maxPending?: number;
}

/** Lines that reached the database in one flush, in order. */
export interface AppliedBatch {
  lines: { runId: string; line: RunLine; raw: string | undefined }[];
  runs: Set<string>;
}

interface RunDbRow {
  id: string;
  remote: number;
  name: string;
  kind: RunSummary['kind'];
  arch: string;
  dataset: string | null;
  run_dir: string;
  config: string;
  engine_choice: EngineChoice;
  priority: number;
  state: RunState;
  created_at: string;
  updated_at: string;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  engine: RunSummary['engine'];
  device: string | null;
  lane: Lane | null;
  step: number | null;
  total_steps: number | null;
  epoch: number | null;
  images_per_sec: number | null;
  attempts: number;
  last_checkpoint_step: number | null;
  best_top1: number | null;
  error_message: string | null;
  error_detail: string | null;
  event_seq: number;
}

interface JobDbRow {
  run_id: string;
  attempt: number;
  engine: Attempt['engine'];
  lane: Lane;
  pid: number | null;
  started_at: string;
  ended_at: string | null;
  resumed_from_step: number | null;
  exit_code: number | null;
  signal: string | null;
  outcome: RunState | null;
  done_status: string | null;
  error_message: string | null;
  error_detail: string | null;
  stderr_tail: string | null;
}

export interface RunRecord {
  summary: RunSummary;
  runDir: string;
  config: unknown;
  eventSeq: number;
}

const iso = (t: number) => new Date(t).toISOString();

const toSummary = (r: RunDbRow): RunSummary => ({
  id: r.id,
  remote: r.remote === 1,
  name: r.name,
  kind: r.kind,
  arch: r.arch,
  dataset: r.dataset,
  state: r.state,
  engineChoice: r.engine_choice,
  engine: r.engine,
  device: r.device,
  lane: r.lane,
  priority: r.priority,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  step: r.step,
  totalSteps: r.total_steps,
  epoch: r.epoch,
  imagesPerSec: r.images_per_sec,
  attempts: r.attempts,
  lastCheckpointStep: r.last_checkpoint_step,
  bestTop1: r.best_top1,
  error: r.error_message === null ? null : { message: r.error_message, detail: r.error_detail ?? '' },
});

const toAttempt = (r: JobDbRow): Attempt => ({
  attempt: r.attempt,
  engine: r.engine,
  lane: r.lane,
  pid: r.pid,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  resumedFromStep: r.resumed_from_step,
  exitCode: r.exit_code,
  signal: r.signal,
  outcome: r.outcome,
  error: r.error_message === null ? null : { message: r.error_message, detail: r.error_detail ?? '' },
  stderrTail: r.stderr_tail,
});

/** Metric names of an eval event: eval/top1 for the model's weights, eval-ema/top1 for the EMA's. */
function evalMetrics(e: Extract<JobEvent, { type: 'eval' }>): [string, number | null][] {
  const p = e.weights === 'ema' ? 'eval-ema' : 'eval';
  return [
    [`${p}/top1`, e.top1],
    [`${p}/top5`, e.top5],
  ];
}

export class Store {
  readonly catalog: Catalog;
  readonly db: Database.Database;
  readonly workspace: string;
  /** Called after each flush with the lines it applied. */
  onApplied: ((batch: AppliedBatch) => void) | null = null;

  private readonly flushMs: number;
  private readonly maxPending: number;
  private pending: { runId: string; line: RunLine; raw: string | undefined }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly writers = new Map<string, RunLogWriter>();
  private readonly lastSeq = new Map<string, number>();
  private readonly stmts;
  private queryWorker: Worker | null = null;
  private queryId = 0;
  private readonly pendingQueries = new Map<number, { resolve: (r: MetricSeriesResult) => void; reject: (e: Error) => void }>();

  private constructor(catalog: Catalog, opts: StoreOptions) {
    this.catalog = catalog;
    this.db = catalog.db;
    this.workspace = catalog.workspace;
    this.flushMs = opts.flushMs ?? 50;
    this.maxPending = opts.maxPending ?? 5000;
    const db = this.db;
    this.stmts = {
      run: db.prepare('SELECT * FROM runs WHERE id = ?'),
      metric: db.prepare('INSERT OR REPLACE INTO metrics (run_id, name, step, value) VALUES (?, ?, ?, ?)'),
      event: db.prepare('INSERT OR REPLACE INTO run_events (run_id, seq, attempt, at, type, event) VALUES (?, ?, ?, ?, ?, ?)'),
      step: db.prepare('UPDATE runs SET step = ?, updated_at = ? WHERE id = ?'),
      progress: db.prepare('UPDATE runs SET step = ?, total_steps = ?, epoch = ?, images_per_sec = ?, updated_at = ? WHERE id = ?'),
      started: db.prepare('UPDATE runs SET device = ?, updated_at = ? WHERE id = ?'),
      checkpoint: db.prepare('INSERT OR REPLACE INTO checkpoints (run_id, step, path, state_path, at) VALUES (?, ?, ?, ?, ?)'),
      lastCheckpoint: db.prepare('UPDATE runs SET last_checkpoint_step = ?, updated_at = ? WHERE id = ?'),
      best: db.prepare('UPDATE runs SET best_top1 = MAX(COALESCE(best_top1, ?), ?), updated_at = ? WHERE id = ?'),
      artifact: db.prepare('INSERT OR REPLACE INTO artifacts (run_id, step, kind, path, at) VALUES (?, ?, ?, ?, ?)'),
      error: db.prepare('UPDATE runs SET error_message = ?, error_detail = ?, updated_at = ? WHERE id = ?'),
      done: db.prepare('UPDATE jobs SET done_status = ? WHERE run_id = ? AND attempt = ?'),
      queued: db.prepare('UPDATE runs SET state = ?, queued_at = ?, finished_at = NULL, updated_at = ? WHERE id = ?'),
      state: db.prepare('UPDATE runs SET state = ?, updated_at = ? WHERE id = ?'),
      attempt: db.prepare(
        `INSERT OR REPLACE INTO jobs (run_id, attempt, engine, lane, pid, started_at, resumed_from_step) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      attemptRun: db.prepare(
        `UPDATE runs SET state = 'running', attempts = ?, engine = ?, lane = ?, device = NULL, images_per_sec = NULL,
           started_at = COALESCE(started_at, ?), finished_at = NULL, error_message = NULL, error_detail = NULL, updated_at = ? WHERE id = ?`,
      ),
      exit: db.prepare(
        `UPDATE jobs SET ended_at = ?, exit_code = ?, signal = ?, outcome = ?, error_message = ?, error_detail = ?, stderr_tail = ?
         WHERE run_id = ? AND attempt = ?`,
      ),
      exitRun: db.prepare(
        `UPDATE runs SET state = ?, finished_at = ?, images_per_sec = NULL, updated_at = ?,
           error_message = COALESCE(?, error_message), error_detail = COALESCE(?, error_detail) WHERE id = ?`,
      ),
      priority: db.prepare('UPDATE runs SET priority = ?, updated_at = ? WHERE id = ?'),
      seq: db.prepare('UPDATE runs SET event_seq = MAX(event_seq, ?) WHERE id = ?'),
    };
  }

  /** Opens workspace/workbench.db: the catalog migrates its tables, then the services theirs. */
  static open(workspace: string, opts: StoreOptions = {}): Store {
    const catalog = Catalog.open(workspace);
    try {
      migrateServices(catalog.db, catalog.file);
    } catch (e) {
      catalog.close();
      throw e;
    }
    return new Store(catalog, opts);
  }

  runDir(id: string): string {
    return runDir(this.workspace, id);
  }

  // ---- runs

  insertRun(meta: RunMeta, config: { kind: RunSummary['kind']; model: { arch: string } }, dir: string): void {
    this.db
      .prepare(
        `INSERT INTO runs (id, name, kind, arch, dataset, run_dir, config, engine_choice, priority, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)`,
      )
      .run(meta.id, meta.name, config.kind, config.model.arch, meta.dataset, dir, JSON.stringify(config), meta.engineChoice, meta.priority, meta.createdAt, meta.createdAt);
    this.lastSeq.set(meta.id, 0);
  }

  run(id: string): RunRecord | undefined {
    const r = this.stmts.run.get(id) as RunDbRow | undefined;
    return r && { summary: toSummary(r), runDir: r.run_dir, config: JSON.parse(r.config) as unknown, eventSeq: r.event_seq };
  }

  /** Registers a run folder outside the workspace, followed read-only from its log (see remote-runs.ts). */
  insertRemoteRun(meta: RunMeta, config: { kind: RunSummary['kind']; model: { arch: string } }, dir: string): void {
    this.insertRun(meta, config, dir);
    this.db.prepare('UPDATE runs SET remote = 1 WHERE id = ?').run(meta.id);
  }

  remoteRuns(): RunSummary[] {
    return (this.db.prepare('SELECT * FROM runs WHERE remote = 1').all() as RunDbRow[]).map(toSummary);
  }

  summary(id: string): RunSummary | undefined {
    const r = this.stmts.run.get(id) as RunDbRow | undefined;
    return r && toSummary(r);
  }

  runs(opts: { states?: readonly RunState[] | undefined; limit?: number; offset?: number } = {}): RunSummary[] {
    const states = opts.states ?? [];
    const where = states.length ? `WHERE state IN (${states.map(() => '?').join(', ')})` : '';
    return (this.db.prepare(`SELECT * FROM runs ${where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`).all(...states, opts.limit ?? -1, opts.offset ?? 0) as RunDbRow[]).map(toSummary);
  }

  /** Queued runs in the order they should start: priority, then first come first served. */
  queued(): RunSummary[] {
    return (this.db.prepare("SELECT * FROM runs WHERE state = 'queued' AND remote = 0 ORDER BY priority DESC, queued_at, created_at").all() as RunDbRow[]).map(toSummary);
  }

  attempts(runId: string): Attempt[] {
    return (this.db.prepare('SELECT * FROM jobs WHERE run_id = ? ORDER BY attempt').all(runId) as JobDbRow[]).map(toAttempt);
  }

  lastAttempt(runId: string): (Attempt & { doneStatus: string | null }) | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE run_id = ? ORDER BY attempt DESC LIMIT 1').get(runId) as JobDbRow | undefined;
    return r && { ...toAttempt(r), doneStatus: r.done_status };
  }

  /** Removes a run's rows and its folder. */
  async deleteRun(id: string): Promise<void> {
    const rec = this.run(id);
    // A remote run's folder is not ours: forgetting it leaves the files alone.
    const dir = rec && !rec.summary.remote ? rec.runDir : undefined;
    this.flush();
    this.writers.get(id)?.close();
    this.writers.delete(id);
    this.db.transaction(() => {
      for (const t of ['runs', 'jobs', 'metrics', 'checkpoints', 'artifacts', 'run_events']) this.db.prepare(`DELETE FROM ${t} WHERE ${t === 'runs' ? 'id' : 'run_id'} = ?`).run(id);
    })();
    this.lastSeq.delete(id);
    if (dir) await rm(dir, { recursive: true, force: true });
  }

  // ---- lines

  /** The next line number of a run's log. */
  nextSeq(runId: string): number {
    let last = this.lastSeq.get(runId);
    if (last === undefined) last = (this.db.prepare('SELECT event_seq FROM runs WHERE id = ?').pluck().get(runId) as number | undefined) ?? 0;
    this.lastSeq.set(runId, last + 1);
    return last + 1;
  }

  /** Queues a worker event line; it is logged and applied within flushMs. */
  push(runId: string, line: RunLine, raw?: string): void {
    this.pending.push({ runId, line, raw });
    if (this.pending.length >= this.maxPending) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** Logs and applies a line now, after everything queued before it (service decisions take effect at once). */
  pushNow(runId: string, line: RunLine): void {
    this.pending.push({ runId, line, raw: undefined });
    this.flush();
  }

  /** Writes every queued line to its run's log and applies them in one transaction. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    const chunks = new Map<string, string[]>();
    for (const p of batch) {
      let c = chunks.get(p.runId);
      if (!c) chunks.set(p.runId, (c = []));
      c.push(`${formatRunLine(p.line, p.raw)}\n`);
    }
    for (const [runId, lines] of chunks) this.writer(runId).append(lines.join(''));
    this.applyLines(batch);
    this.onApplied?.({ lines: batch, runs: new Set(chunks.keys()) });
  }

  private writer(runId: string): RunLogWriter {
    let w = this.writers.get(runId);
    if (!w) this.writers.set(runId, (w = new RunLogWriter(this.runDir(runId))));
    return w;
  }

  /** Closes a run's log file (reopened on the next line). */
  closeLog(runId: string): void {
    this.writers.get(runId)?.close();
    this.writers.delete(runId);
  }

  private applyLines(lines: readonly { runId: string; line: RunLine; raw: string | undefined }[]): void {
    this.db.transaction(() => {
      const seqs = new Map<string, number>();
      for (const { runId, line, raw } of lines) {
        this.applyLine(runId, line, raw);
        seqs.set(runId, line.seq);
      }
      for (const [runId, seq] of seqs) this.stmts.seq.run(seq, runId);
    })();
  }

  /** The one place a line changes the tables; live ingestion and log replay both come through here. */
  private applyLine(runId: string, line: RunLine, raw: string | undefined): void {
    const s = this.stmts;
    const at = iso(line.t);
    if ('svc' in line) {
      const e = line.svc;
      switch (e.type) {
        case 'queued':
          s.queued.run('queued', at, at, runId);
          break;
        case 'state':
          s.state.run(e.state, at, runId);
          break;
        case 'attempt':
          s.attempt.run(runId, e.attempt, e.engine, e.lane, e.pid, at, e.resumedFromStep);
          s.attemptRun.run(e.attempt, e.engine, e.lane, at, at, runId);
          break;
        case 'exit':
          s.exit.run(at, e.code, e.signal, e.outcome, e.error?.message ?? null, e.error?.detail ?? null, e.stderrTail, runId, e.attempt);
          s.exitRun.run(e.outcome, at, at, e.error?.message ?? null, e.error?.detail ?? null, runId);
          break;
        case 'priority':
          s.priority.run(e.priority, at, runId);
          break;
      }
      return;
    }
    const e = line.event;
    const keep = () => s.event.run(runId, line.seq, line.attempt, line.t, e.type, raw ?? JSON.stringify(e));
    switch (e.type) {
      case 'metrics':
        for (const [name, value] of Object.entries(e.values)) s.metric.run(runId, name, e.step, value);
        s.step.run(e.step, at, runId);
        break;
      case 'progress':
        s.progress.run(e.step, e.totalSteps, e.epoch, e.imagesPerSec, at, runId);
        if (e.imagesPerSec !== null) s.metric.run(runId, 'imagesPerSec', e.step, e.imagesPerSec);
        break;
      case 'started':
        s.started.run(e.device, at, runId);
        keep();
        break;
      case 'checkpoint':
        s.checkpoint.run(runId, e.step, e.path, e.statePath, at);
        s.lastCheckpoint.run(e.step, at, runId);
        keep();
        break;
      case 'eval':
        for (const [name, value] of evalMetrics(e)) s.metric.run(runId, name, e.step, value);
        if (e.weights === 'model' && e.top1 !== null) s.best.run(e.top1, e.top1, at, runId);
        keep();
        break;
      case 'sample': {
        const rel = relative(this.runDir(runId), e.path);
        if (rel && !rel.startsWith('..') && !rel.startsWith(sep) && !/^[A-Za-z]:/.test(rel)) s.artifact.run(runId, e.step, e.kind, rel.split(sep).join('/'), at);
        keep();
        break;
      }
      case 'error':
        s.error.run(e.message, e.detail, at, runId);
        keep();
        break;
      case 'done':
        s.done.run(e.status, runId, line.attempt);
        keep();
        break;
      case 'log':
        keep();
        break;
    }
  }

  // ---- replay

  /** Applies the lines of a run's log that the database has not seen (after a crash); returns how many. */
  async replayLog(runId: string, publish = false): Promise<number> {
    const rec = this.run(runId);
    if (!rec) return 0;
    this.flush();
    let applied = 0;
    let batch: { runId: string; line: RunLine; raw: string | undefined }[] = [];
    let last = rec.eventSeq;
    for await (const { line } of readRunLines(rec.runDir)) {
      if (line.seq <= rec.eventSeq) continue;
      // Worker events are applied from the parsed line: the raw worker text is inside the log line.
      batch.push({ runId, line, raw: undefined });
      last = Math.max(last, line.seq);
      if (batch.length >= 1000) {
        this.applyLines(batch);
        if (publish) this.onApplied?.({ lines: batch, runs: new Set([runId]) });
        applied += batch.length;
        batch = [];
      }
    }
    if (batch.length) this.applyLines(batch);
    if (batch.length && publish) this.onApplied?.({ lines: batch, runs: new Set([runId]) });
    applied += batch.length;
    this.lastSeq.set(runId, last);
    return applied;
  }

  /**
   * Rebuilds every run's rows from the run folders (runs/<id>/run.json, config.json, events.jsonl), for a
   * lost or damaged database. Dataset tables and settings are left alone. Returns the runs restored.
   */
  async rebuildFromRunFolders(): Promise<string[]> {
    this.flush();
    this.db.transaction(() => {
      for (const t of ['runs', 'jobs', 'metrics', 'checkpoints', 'artifacts', 'run_events']) this.db.prepare(`DELETE FROM ${t}`).run();
    })();
    this.lastSeq.clear();
    const root = join(this.workspace, RUNS_DIR);
    const names = await readdir(root).catch(() => [] as string[]);
    const restored: string[] = [];
    for (const name of names.sort()) {
      const dir = join(root, name);
      const found = await readRunMeta(dir);
      if (!found || found.meta.id !== name) continue;
      const cfg = found.config as { kind: RunSummary['kind']; model: { arch: string } };
      this.insertRun(found.meta, cfg, dir);
      this.lastSeq.delete(name);
      await this.replayLog(name);
      restored.push(name);
    }
    return restored;
  }

  // ---- reads for the API

  events(runId: string, opts: { types?: readonly string[] | undefined; afterSeq: number; limit: number }): JobEventMessage[] {
    const types = opts.types ?? [];
    const where = types.length ? `AND type IN (${types.map(() => '?').join(', ')})` : '';
    const rows = this.db
      .prepare(`SELECT seq, attempt, at, event FROM run_events WHERE run_id = ? AND seq > ? ${where} ORDER BY seq LIMIT ?`)
      .all(runId, opts.afterSeq, ...types, opts.limit) as { seq: number; attempt: number; at: number; event: string }[];
    return rows.map((r) => ({ runId, seq: r.seq, attempt: r.attempt, at: r.at, event: JSON.parse(r.event) as JobEvent }));
  }

  metricNames(runId: string): string[] {
    return metricNames(this.db, runId);
  }

  /** Downsampled series on this thread (see series.ts); the API uses seriesAsync. */
  metricSeries(runId: string, q: SeriesQuery): MetricSeriesResult {
    return querySeries(this.db, runId, q);
  }

  /** The same, answered by the query worker so a huge run never stalls the main thread. */
  seriesAsync(runId: string, query: SeriesQuery): Promise<MetricSeriesResult> {
    this.flush();
    if (!this.queryWorker) {
      const w = new Worker(WORKER_ENTRY, { workerData: { entry: QUERY_MODULE, file: this.catalog.file } });
      w.on('message', (m: { id: number; ok: boolean; value?: MetricSeriesResult; message?: string }) => {
        const p = this.pendingQueries.get(m.id);
        this.pendingQueries.delete(m.id);
        if (m.ok) p?.resolve(m.value!);
        else p?.reject(new Error(`metric query failed: ${m.message}`));
      });
      w.on('error', (e) => this.failQueries(e));
      w.on('exit', () => {
        this.queryWorker = null;
        this.failQueries(new Error('the query worker stopped'));
      });
      this.queryWorker = w;
    }
    const id = ++this.queryId;
    return new Promise((resolve, reject) => {
      this.pendingQueries.set(id, { resolve, reject });
      this.queryWorker!.postMessage({ id, runId, query } satisfies SeriesRequest);
    });
  }

  private failQueries(e: Error): void {
    for (const p of this.pendingQueries.values()) p.reject(e);
    this.pendingQueries.clear();
  }

  checkpoints(runId: string): { step: number; path: string; statePath: string; at: string }[] {
    return this.db.prepare('SELECT step, path, state_path AS statePath, at FROM checkpoints WHERE run_id = ? ORDER BY step').all(runId) as {
      step: number;
      path: string;
      statePath: string;
      at: string;
    }[];
  }

  /** The newest checkpoint a worker announced with a checkpoint event (not merely found on disk). */
  lastAnnouncedCheckpoint(runId: string): { step: number; statePath: string } | null {
    const raw = this.db.prepare("SELECT event FROM run_events WHERE run_id = ? AND type = 'checkpoint' ORDER BY seq DESC LIMIT 1").pluck().get(runId) as string | undefined;
    if (!raw) return null;
    const e = JSON.parse(raw) as { step: number; statePath: string };
    return { step: e.step, statePath: e.statePath };
  }

  /** Records a checkpoint found on disk that no event announced (a worker that outlived the service). */
  addCheckpointFromDisk(runId: string, step: number, path: string, statePath: string, at: string): boolean {
    const r = this.db.prepare('INSERT OR IGNORE INTO checkpoints (run_id, step, path, state_path, at) VALUES (?, ?, ?, ?, ?)').run(runId, step, path, statePath, at);
    this.db.prepare('UPDATE runs SET last_checkpoint_step = MAX(COALESCE(last_checkpoint_step, ?), ?) WHERE id = ?').run(step, step, runId);
    return r.changes > 0;
  }

  artifacts(runId: string, kind?: string): { id: number; step: number; kind: string; path: string; at: string }[] {
    const where = kind === undefined ? '' : 'AND kind = ?';
    return this.db.prepare(`SELECT id, step, kind, path, at FROM artifacts WHERE run_id = ? ${where} ORDER BY step, id`).all(runId, ...(kind === undefined ? [] : [kind])) as {
      id: number;
      step: number;
      kind: string;
      path: string;
      at: string;
    }[];
  }

  artifactByPath(runId: string, path: string): { path: string } | undefined {
    return this.db.prepare('SELECT path FROM artifacts WHERE run_id = ? AND path = ?').get(runId, path) as { path: string } | undefined;
  }

  // ---- settings

  setting(key: string): unknown {
    const v = this.db.prepare('SELECT value FROM settings WHERE key = ?').pluck().get(key) as string | undefined;
    return v === undefined ? undefined : (JSON.parse(v) as unknown);
  }

  setSettings(values: Record<string, unknown>): void {
    const put = this.db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    this.db.transaction(() => {
      for (const [k, v] of Object.entries(values)) if (v !== undefined) put.run(k, JSON.stringify(v));
    })();
  }

  /** Writes what is queued, closes every log, the query worker and the database. */
  async close(): Promise<void> {
    this.flush();
    await this.queryWorker?.terminate();
    for (const w of this.writers.values()) w.close();
    this.writers.clear();
    this.catalog.close();
  }
}
