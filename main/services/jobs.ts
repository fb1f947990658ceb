// Jobs: the persistent queue of runs and the workers that execute them. A run is queued, started on a lane
// (GPU jobs per GPU, see gpu-slots.ts; CPU jobs alongside up to the CPU slots), paused (checkpoint and stop), cancelled,
// resumed from its last checkpoint, and recovered after a crash of the worker or of the service itself.
// Every decision is a line in the run's log before it is acted on, so the history replays exactly.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ACTIVE_RUN_STATES,
  ApiError,
  type ApiParsedRequest,
  type EngineName,
  type JobConfigDraft,
  RESUMABLE_RUN_STATES,
  type RunState,
  type RunSummary,
} from '../../common/api.ts';
import { type JobConfig, JobConfigError, parseJobConfig, processesPerNode } from '../../common/job.ts';
import type { EngineLauncher, EngineResolver } from './engines.ts';
import { pickGpus } from './gpu-slots.ts';
import { RemoteRuns } from './remote-runs.ts';
import type { EventHub } from './hub.ts';
import { type Lane, type ServiceEvent, writeFileAtomic, writeRunFolder } from './run-log.ts';
import type { SettingsService } from './settings.ts';
import type { AppliedBatch, Store } from './store.ts';
import { type StopReason, type SupervisedExit, type WorkerCommand, WorkerSupervisor, type WorkerSpawner } from './workers.ts';

export interface JobServiceOptions {
  store: Store;
  hub: EventHub;
  settings: SettingsService;
  spawner: WorkerSpawner;
  launcher: EngineLauncher;
  resolver: EngineResolver;
  /** Writes a dataset's current manifest to `file` (runs.create with `dataset`). */
  exportManifest?: (dataset: string, file: string) => Promise<void>;
  startupTimeoutMs?: number;
  killGraceMs?: number;
}

interface ActiveRun {
  supervisor: WorkerSupervisor;
  lane: Lane;
  gpus: readonly number[];
  attempt: number;
  exited: Promise<void>;
}

const SIGNALS_FROM_OUTSIDE = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP']);

/** A run id that sorts by creation time and is safe as a folder name. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether `pid` is still the worker we started for this attempt (its command line names the attempt's
 * config file): a recycled pid must never be killed. Only Linux can tell; elsewhere we leave it alone.
 */
async function isOurWorker(pid: number, configPath: string): Promise<boolean> {
  if (process.platform !== 'linux' || !pidAlive(pid)) return false;
  return readFile(`/proc/${pid}/cmdline`, 'utf8').then(
    (cmdline) => cmdline.split('\0').includes(configPath),
    () => false,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `p` settles within `ms`; the timer is cleared either way so it never holds the process open. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class JobService {
  private readonly active = new Map<string, ActiveRun>();
  private readonly starting = new Set<string>();
  private readonly stopIntents = new Map<string, StopReason>();
  private scheduleChain: Promise<void> = Promise.resolve();
  private scheduleQueued = false;
  private closing = false;
  private readonly startupTimeoutMs: number;
  private readonly killGraceMs: number;
  private readonly remote: RemoteRuns;

  constructor(private readonly o: JobServiceOptions) {
    this.remote = new RemoteRuns(o.store);
    this.startupTimeoutMs = o.startupTimeoutMs ?? 300_000;
    this.killGraceMs = o.killGraceMs ?? 120_000;
    o.store.onApplied = (batch) => this.publishApplied(batch);
  }

  // ---- API

  async create(req: ApiParsedRequest<'runs.create'>): Promise<RunSummary> {
    const store = this.o.store;
    const id = newRunId();
    const dir = store.runDir(id);
    await mkdir(dir, { recursive: true });
    try {
      return await this.createIn(id, dir, req);
    } catch (e) {
      // A request that fails leaves no half-made run folder behind.
      if (!store.summary(id)) await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async createIn(id: string, dir: string, req: ApiParsedRequest<'runs.create'>): Promise<RunSummary> {
    const { store, settings } = this.o;
    const draft: JobConfigDraft = req.config;
    let manifest = draft.data.manifest;
    if (req.dataset !== undefined) {
      if (!this.o.exportManifest) throw new ApiError('unsupported', 'this service cannot export dataset manifests');
      manifest = join(dir, 'manifest.json');
      await this.o.exportManifest(req.dataset, manifest);
    }
    if (manifest === undefined) throw new ApiError('invalid', 'config.data.manifest: give a manifest file or a dataset', 'config.data.manifest');
    let config: JobConfig;
    try {
      config = parseJobConfig({ device: settings.get().defaultDevice, ...draft, data: { ...draft.data, manifest }, runDir: dir, resume: null });
    } catch (e) {
      if (e instanceof JobConfigError) throw new ApiError('invalid', `config.${e.message}`, `config.${e.field}`);
      throw e;
    }
    const createdAt = new Date().toISOString();
    const meta = {
      id,
      name: req.name ?? `${config.kind} ${config.model.arch}${req.dataset ? ` on ${req.dataset}` : ''}`,
      createdAt,
      engineChoice: req.engine ?? settings.get().defaultEngine,
      priority: req.priority,
      dataset: req.dataset ?? null,
    };
    await writeRunFolder(dir, meta, config);
    store.insertRun(meta, config, dir);
    this.service(id, req.start ? { type: 'queued' } : { type: 'state', state: 'paused', reason: 'created without starting' });
    this.schedule();
    return store.summary(id)!;
  }

  /** Follows a run folder no service here runs (a cluster run), read-only. */
  attach(path: string): Promise<RunSummary> {
    return this.remote.attach(path);
  }

  cancel(runId: string): RunSummary {
    const run = this.requireLocal(runId);
    const active = this.active.get(runId);
    if (active) {
      this.stopIntents.set(runId, 'cancel');
      this.service(runId, { type: 'state', state: 'cancelling' });
      active.supervisor.stop('cancel');
    } else if (run.state === 'queued' || RESUMABLE_RUN_STATES.includes(run.state)) {
      if (run.state !== 'cancelled') this.service(runId, { type: 'state', state: 'cancelled', reason: 'cancelled before it ran again' });
    } else throw new ApiError('conflict', `run ${runId} is ${run.state}; it cannot be cancelled`);
    return this.o.store.summary(runId)!;
  }

  pause(runId: string): RunSummary {
    const run = this.requireLocal(runId);
    const active = this.active.get(runId);
    if (active) {
      if (this.stopIntents.has(runId)) return run;
      this.stopIntents.set(runId, 'pause');
      this.service(runId, { type: 'state', state: 'pausing' });
      active.supervisor.stop('pause');
    } else if (run.state === 'queued') this.service(runId, { type: 'state', state: 'paused', reason: 'held in the queue' });
    else if (run.state !== 'paused') throw new ApiError('conflict', `run ${runId} is ${run.state}; only queued or running runs can be paused`);
    return this.o.store.summary(runId)!;
  }

  resume(runId: string): RunSummary {
    const run = this.requireLocal(runId);
    if (!RESUMABLE_RUN_STATES.includes(run.state)) throw new ApiError('conflict', `run ${runId} is ${run.state}; only ${RESUMABLE_RUN_STATES.join(', ')} runs can resume`);
    this.service(runId, { type: 'queued' });
    this.schedule();
    return this.o.store.summary(runId)!;
  }

  setPriority(runId: string, priority: number): RunSummary {
    this.requireLocal(runId);
    this.service(runId, { type: 'priority', priority });
    this.schedule();
    return this.o.store.summary(runId)!;
  }

  async delete(runId: string): Promise<void> {
    const run = this.require(runId);
    if (!run.remote && (this.active.has(runId) || this.starting.has(runId) || ACTIVE_RUN_STATES.includes(run.state))) {
      throw new ApiError('conflict', `run ${runId} is ${run.state}; cancel or pause it before deleting`);
    }
    await this.o.store.deleteRun(runId);
  }

  private require(runId: string): RunSummary {
    const s = this.o.store.summary(runId);
    if (!s) throw new ApiError('not-found', `no run '${runId}'`);
    return s;
  }

  private requireLocal(runId: string): RunSummary {
    const s = this.require(runId);
    if (s.remote) throw new ApiError('conflict', `run ${runId} is a remote run, followed read-only from its folder: stop or resume it where it runs (e.g. scancel, sbatch)`);
    return s;
  }

  // ---- lines and events

  private service(runId: string, svc: ServiceEvent): void {
    const store = this.o.store;
    store.pushNow(runId, { seq: store.nextSeq(runId), t: Date.now(), svc });
  }

  private publishApplied(batch: AppliedBatch): void {
    const hub = this.o.hub;
    if (hub.subscribers) {
      for (const { runId, line, raw } of batch.lines) {
        if ('svc' in line) continue;
        const data = { runId, attempt: line.attempt, seq: line.seq, at: line.t, event: line.event };
        // The worker's own text is already validated JSON: splice it instead of serialising again.
        const json = raw === undefined ? undefined : `{"runId":${JSON.stringify(runId)},"attempt":${line.attempt},"seq":${line.seq},"at":${line.t},"event":${raw}}`;
        hub.publish('jobEvent', data, json);
      }
    }
    for (const runId of batch.runs) {
      const s = this.o.store.summary(runId);
      if (s) hub.publish('jobState', s);
    }
  }

  // ---- scheduling

  /** Starts whatever queued runs fit on free lanes; calls made while a pass runs coalesce into one more. */
  schedule(): Promise<void> {
    if (this.scheduleQueued) return this.scheduleChain;
    this.scheduleQueued = true;
    this.scheduleChain = this.scheduleChain.then(async () => {
      this.scheduleQueued = false;
      try {
        await this.schedulePass();
      } catch (e) {
        // A scheduling bug must not kill the service; the next event schedules again.
        console.error(`cnx jobs: scheduling failed: ${(e as Error).stack ?? String(e)}`);
      }
    });
    return this.scheduleChain;
  }

  private async schedulePass(): Promise<void> {
    if (this.closing) return;
    const used: Record<Lane, number> = { gpu: 0, cpu: 0 };
    const busyGpus = new Set<number>();
    for (const a of this.active.values()) {
      used[a.lane]++;
      for (const g of a.gpus) busyGpus.add(g);
    }
    let inventory: Promise<number | null> | undefined;
    // GPU runs start in queue order: one that waits for its GPUs holds the later ones back (no starvation).
    let gpuQueueBlocked = false;
    for (const run of this.o.store.queued()) {
      if (this.closing) return;
      const rec = this.o.store.run(run.id);
      if (!rec) continue;
      const config = rec.config as JobConfig;
      let engine: EngineName;
      let lane: Lane;
      const parallel = processesPerNode(config) > 1;
      try {
        // Data-parallel runs exist on the PyTorch engine only.
        ({ engine, lane } = await this.o.resolver.resolve(parallel && run.engineChoice === 'auto' ? 'torch' : run.engineChoice, config.device));
      } catch (e) {
        this.failToStart(run, `cannot choose an engine: ${(e as Error).message}`);
        continue;
      }
      if (parallel && engine === 'onnx') {
        this.failToStart(run, `a data-parallel run (${processesPerNode(config)} processes) needs the PyTorch engine`);
        continue;
      }
      let gpus: number[] = [];
      if (lane === 'gpu') {
        if (gpuQueueBlocked) continue;
        inventory ??= this.o.resolver.gpus?.() ?? Promise.resolve(null);
        const pick = pickGpus(config.devices, await inventory, busyGpus, used.gpu);
        if (pick === null) {
          gpuQueueBlocked = true;
          continue;
        }
        if (!Array.isArray(pick)) {
          this.failToStart(run, pick.error);
          continue;
        }
        gpus = pick;
      } else if (used.cpu >= this.o.settings.get().cpuJobSlots) continue;
      // Re-read: the run may have been paused or cancelled while the engine was being resolved.
      if (this.o.store.summary(run.id)?.state !== 'queued') continue;
      used[lane]++;
      for (const g of gpus) busyGpus.add(g);
      await this.start(rec.runDir, config, run, engine, lane, gpus);
    }
  }

  private failToStart(run: RunSummary, message: string): void {
    const attempt = run.attempts + 1;
    this.service(run.id, { type: 'attempt', attempt, engine: run.engine ?? 'onnx', lane: 'cpu', pid: null, resumedFromStep: null });
    this.service(run.id, { type: 'exit', attempt, code: null, signal: null, outcome: 'failed', error: { message, detail: '' }, stderrTail: null });
  }

  private async start(dir: string, config: JobConfig, run: RunSummary, engine: EngineName, lane: Lane, gpus: number[]): Promise<void> {
    this.starting.add(run.id);
    try {
      const attempt = run.attempts + 1;
      // Resume from the newest checkpoint the log announced: every metric up to it was recorded. A newer
      // one written by a worker nobody was listening to (the service had died) would leave a gap.
      const from = this.o.store.lastAnnouncedCheckpoint(run.id);
      const resumedFromStep = from?.step ?? null;
      const attemptConfig = { ...config, resume: from?.statePath ?? null };
      const configPath = join(dir, `attempt-${attempt}.json`);
      await writeFileAtomic(configPath, `${JSON.stringify(attemptConfig, null, 2)}\n`);
      if (this.closing || this.o.store.summary(run.id)?.state !== 'queued') return;

      let cmd: WorkerCommand;
      try {
        cmd = this.o.launcher.command(engine, configPath, this.o.settings.get().pythonPath);
      } catch (e) {
        this.failToStart(run, `cannot start the ${engine} engine: ${(e as Error).message}`);
        return;
      }
      // The worker sees only its GPUs; the PyTorch engine numbers them 0..n-1 (one rank each).
      if (gpus.length) cmd.env = { ...(cmd.env ?? process.env), CUDA_VISIBLE_DEVICES: gpus.join(',') };
      const handle = this.o.spawner.spawn(cmd);
      this.service(run.id, { type: 'attempt', attempt, engine, lane, pid: handle.pid, resumedFromStep, ...(gpus.length ? { gpus } : {}) });
      let exited!: () => void;
      const exitedPromise = new Promise<void>((r) => (exited = r));
      const store = this.o.store;
      const supervisor = new WorkerSupervisor(handle, {
        startupTimeoutMs: this.startupTimeoutMs,
        stallTimeoutMs: this.o.settings.get().stallTimeoutSec * 1000,
        killGraceMs: this.killGraceMs,
        onEvent: (event, raw) => store.push(run.id, { seq: store.nextSeq(run.id), t: Date.now(), attempt, event }, raw),
        onExit: (exit) => {
          this.finish(run.id, attempt, engine, exit);
          exited();
        },
      });
      this.active.set(run.id, { supervisor, lane, gpus, attempt, exited: exitedPromise });
    } finally {
      this.starting.delete(run.id);
    }
  }

  /** Turns how a worker ended into the run's outcome, logs it and schedules the next run. */
  private finish(runId: string, attempt: number, engine: EngineName, x: SupervisedExit): void {
    this.active.delete(runId);
    const intent = this.stopIntents.get(runId) ?? null;
    this.stopIntents.delete(runId);
    const stopped: RunState = intent === 'cancel' ? 'cancelled' : 'paused';
    const how = x.signal ? `was killed by ${x.signal}` : `exited with code ${x.code}`;
    let outcome: RunState;
    let error: { message: string; detail: string } | null = null;
    if (x.spawnError) {
      outcome = 'failed';
      error = { message: `cannot start the ${engine} engine: ${x.spawnError}`, detail: '' };
    } else if (x.timedOut) {
      outcome = 'failed';
      error = { message: x.timedOut, detail: x.stderrTail };
    } else if (x.doneStatus === 'completed') outcome = 'completed';
    else if (x.doneStatus === 'failed') {
      outcome = 'failed';
      error = x.lastError ?? { message: `the worker reported failure and ${how}`, detail: x.stderrTail };
      if (!error.detail) error = { ...error, detail: x.stderrTail };
    } else if (x.doneStatus === 'cancelled') {
      // A stop nobody here asked for (the OS shutting down, a signal from a terminal) is an interruption.
      outcome = intent ? stopped : 'interrupted';
      // A data-parallel worker names the process that died (with its last stderr lines) as its error.
      if (!intent) error = x.lastError ?? { message: 'the worker was stopped from outside the workbench; resume continues from its last checkpoint', detail: '' };
    } else if (intent) {
      outcome = stopped;
    } else if (x.signal && SIGNALS_FROM_OUTSIDE.has(x.signal)) {
      outcome = 'interrupted';
      error = { message: `the worker ${how} before finishing; resume continues from the last checkpoint`, detail: x.stderrTail };
    } else {
      outcome = 'failed';
      error = { message: x.lastError?.message ?? `the worker ${how} without finishing`, detail: x.stderrTail };
    }
    const keepTail = outcome === 'failed' || outcome === 'interrupted';
    this.service(runId, { type: 'exit', attempt, code: x.code, signal: x.signal, outcome, error, stderrTail: keepTail ? x.stderrTail : null });
    this.o.store.closeLog(runId);
    void this.schedule();
  }

  // ---- recovery and shutdown

  /**
   * Brings the database in line with the run folders after a crash: replays log lines it missed, ends
   * attempts whose worker is gone (stopping a worker that outlived the service first), records checkpoints
   * written after the service stopped listening, then schedules the queue. Interrupted runs wait for the
   * user to resume them.
   */
  async recover(): Promise<{ replayed: number; interrupted: string[] }> {
    const store = this.o.store;
    let replayed = 0;
    for (const run of store.runs({ states: ['queued', ...ACTIVE_RUN_STATES] })) replayed += await store.replayLog(run.id);
    const interrupted: string[] = [];
    // Remote runs are followed, never recovered: their folder is another machine's to write.
    if (store.remoteRuns().length) this.remote.start();
    for (const run of store.runs({ states: ACTIVE_RUN_STATES }).filter((r) => !r.remote)) {
      const rec = store.run(run.id)!;
      const last = store.lastAttempt(run.id);
      if (last?.pid) await this.stopOrphan(last.pid, join(rec.runDir, `attempt-${last.attempt}.json`));
      await this.syncCheckpoints(run.id, rec.runDir);
      if (!last) {
        this.service(run.id, { type: 'queued' });
        continue;
      }
      let outcome: RunState;
      let error: { message: string; detail: string } | null = null;
      if (last.doneStatus === 'completed') outcome = 'completed';
      else if (last.doneStatus === 'failed') outcome = 'failed';
      else if (run.state === 'pausing') outcome = 'paused';
      else if (run.state === 'cancelling') outcome = 'cancelled';
      else {
        outcome = 'interrupted';
        error = { message: 'the workbench stopped while this run was running; resume continues from the last checkpoint', detail: '' };
        interrupted.push(run.id);
      }
      this.service(run.id, { type: 'exit', attempt: last.attempt, code: null, signal: null, outcome, error, stderrTail: null });
    }
    void this.schedule();
    return { replayed, interrupted };
  }

  /** A worker that outlived the previous service: ask it to checkpoint and stop, and wait for it. */
  private async stopOrphan(pid: number, configPath: string): Promise<void> {
    if (!(await isOurWorker(pid, configPath))) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + this.killGraceMs;
    while (pidAlive(pid) && Date.now() < deadline) await sleep(100);
    if (pidAlive(pid)) {
      process.kill(pid, 'SIGKILL');
      while (pidAlive(pid)) await sleep(50);
    }
  }

  private async syncCheckpoints(runId: string, dir: string): Promise<void> {
    const folder = join(dir, 'checkpoints');
    const files = new Set(await readdir(folder).catch(() => [] as string[]));
    for (const f of files) {
      const m = /^step-(\d+)\.safetensors$/.exec(f);
      if (!m || !files.has(`step-${m[1]}.state.safetensors`)) continue;
      const st = await stat(join(folder, f));
      this.o.store.addCheckpointFromDisk(runId, Number(m[1]), join(folder, f), join(folder, `step-${m[1]}.state.safetensors`), st.mtime.toISOString());
    }
  }

  get activeRuns(): string[] {
    return [...this.active.keys()];
  }

  /**
   * Stops accepting work and pauses running jobs (each checkpoints and stops); a worker still alive after
   * `timeoutMs` is killed and its run left interrupted, resumable from its last checkpoint.
   */
  async shutdown(timeoutMs = this.killGraceMs): Promise<void> {
    this.closing = true;
    this.remote.close();
    await this.scheduleChain;
    const running = [...this.active.entries()];
    for (const [runId, a] of running) {
      if (!this.stopIntents.has(runId)) {
        this.stopIntents.set(runId, 'shutdown');
        this.service(runId, { type: 'state', state: 'pausing', reason: 'the workbench is closing' });
      }
      a.supervisor.stop('shutdown');
    }
    const all = Promise.all(running.map(([, a]) => a.exited));
    if (!(await within(all, timeoutMs))) {
      for (const [, a] of this.active) a.supervisor.kill();
      await within(all, 5000);
    }
    this.o.store.flush();
  }
}

