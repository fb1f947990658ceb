// Tasks: `cnx analyze` and `cnx export` run in the background for the UI, one at a time (both are heavy on
// the CPU and short next to training), each in its own folder under the workspace's tasks/. The folder holds
// task.json (the Task record, written atomically on every state change) and what the command wrote, so the
// list survives a restart; a task that was queued or running when the workbench stopped is `interrupted`.
// Progress comes from the command's CNX_PROGRESS=json lines on stderr; the rest of stderr is kept as a tail
// for the error report.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { z } from 'zod';
import { ApiError, type Task, type TaskKind, Task as TaskSchema } from '../../common/api.ts';
import { PROGRESS_ENV, parseProgressLine } from '../../common/protocol.ts';
import type { EventHub } from './hub.ts';
import { writeFileAtomic } from './run-log.ts';
import { TailBuffer, type WorkerCommand, type WorkerExit, type WorkerHandle, type WorkerSpawner } from './workers.ts';

export const TASKS_DIR = 'tasks';
const TASK_FILE = 'task.json';
const ACTIVE: readonly Task['state'][] = ['queued', 'running'];

export interface TaskServiceOptions {
  workspace: string;
  hub: EventHub;
  spawner: WorkerSpawner;
  /** `cnx <args>` as a command line. */
  cnx(args: readonly string[]): WorkerCommand;
  /** Time between SIGTERM and SIGKILL when a task is cancelled. */
  killGraceMs?: number;
}

/** What to run: the arguments after `cnx`, given the task's folder (made before it runs). */
export type TaskPlan = (dir: string) => string[] | Promise<string[]>;

const nowIso = () => new Date().toISOString();

/** Files under `dir`, relative and '/'-separated, without task.json; sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .filter((p) => p !== TASK_FILE && !p.endsWith('.tmp'))
    .sort();
}

/** The message of a failed command: its `cnx <cmd>: ...` line if it printed one, else the last line. */
function failureMessage(stderr: string, exit: { code: number | null; signal: string | null; spawnError: string | null }): string {
  if (exit.spawnError) return `could not start cnx: ${exit.spawnError}`;
  const lines = stderr.split('\n').filter((l) => l.trim() && !parseProgressLine(l));
  const own = lines.find((l) => /^cnx \w[\w-]*: /.test(l));
  if (own) return own.replace(/^cnx \w[\w-]*: /, '');
  const how = exit.signal ? `was killed (${exit.signal})` : `exited with ${exit.code}`;
  return lines.length ? `${lines.at(-1)} (the command ${how})` : `the command ${how}`;
}

export class TaskService {
  private readonly tasks = new Map<string, Task>();
  private readonly plans = new Map<string, TaskPlan>();
  private readonly queue: string[] = [];
  /** The task being run; `handle` is null while its plan is prepared. */
  private current: { id: string; handle: WorkerHandle | null; cancelled: boolean; timer: NodeJS.Timeout | null } | null = null;
  private busy = false;
  /** The queue loop; shutdown waits for it. */
  private loop: Promise<void> = Promise.resolve();
  private counter = 0;
  private closed = false;

  private constructor(private readonly o: TaskServiceOptions) {}

  private get root(): string {
    return join(this.o.workspace, TASKS_DIR);
  }

  /** Reads the task folders; tasks that were queued or running become interrupted. */
  static async open(o: TaskServiceOptions): Promise<TaskService> {
    const s = new TaskService(o);
    await mkdir(s.root, { recursive: true });
    for (const e of await readdir(s.root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const file = join(s.root, e.name, TASK_FILE);
      let task: Task;
      try {
        task = TaskSchema.parse(JSON.parse(await readFile(file, 'utf8')));
      } catch (err) {
        // A folder without a readable record (a crash before the first write, or a damaged file) is left
        // on disk for the user, and said once.
        console.warn(`tasks: skipping ${file}: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      if (ACTIVE.includes(task.state)) {
        task = { ...task, state: 'interrupted', finishedAt: task.finishedAt ?? nowIso(), error: task.error ?? { message: 'the workbench stopped while this task was running; start it again', detail: '' } };
        await s.save(task);
      }
      s.tasks.set(task.id, task);
    }
    return s;
  }

  list(kind?: TaskKind): Task[] {
    return [...this.tasks.values()].filter((t) => !kind || t.kind === kind).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  get(id: string): Task {
    const t = this.tasks.get(id);
    if (!t) throw new ApiError('not-found', `no task '${id}'`);
    return t;
  }

  /** Queues a task; `plan` gives the command's arguments once its folder exists. */
  async start(kind: TaskKind, title: string, request: Record<string, unknown>, plan: TaskPlan): Promise<Task> {
    if (this.closed) throw new ApiError('conflict', 'the workbench is shutting down');
    const id = `${kind}-${Date.now().toString(36)}${(this.counter++).toString(36)}`;
    const task: Task = {
      id, kind, title, state: 'queued', createdAt: nowIso(), startedAt: null, finishedAt: null,
      progress: null, dir: join(this.root, id), files: [], error: null, request,
    };
    await mkdir(task.dir, { recursive: true });
    await this.save(task);
    this.tasks.set(id, task);
    this.plans.set(id, plan);
    this.queue.push(id);
    this.o.hub.publish('taskState', task);
    this.kick();
    return task;
  }

  async cancel(id: string): Promise<Task> {
    const t = this.get(id);
    const queued = this.queue.indexOf(id);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.plans.delete(id);
      return this.update(id, { state: 'cancelled', finishedAt: nowIso() });
    }
    const cur = this.current;
    if (cur?.id === id && !cur.cancelled) {
      cur.cancelled = true;
      this.stop(cur);
    }
    return t;
  }

  /** SIGTERM, then SIGKILL after the grace time; a command not started yet is stopped as it starts. */
  private stop(cur: NonNullable<TaskService['current']>): void {
    if (!cur.handle) return;
    cur.handle.kill('SIGTERM');
    const handle = cur.handle;
    cur.timer = setTimeout(() => handle.kill('SIGKILL'), this.o.killGraceMs ?? 5000);
    cur.timer.unref();
  }

  async delete(id: string): Promise<void> {
    const t = this.get(id);
    if (ACTIVE.includes(t.state)) throw new ApiError('conflict', `task '${id}' is ${t.state}; cancel it first`);
    await rm(t.dir, { recursive: true, force: true });
    this.tasks.delete(id);
  }

  /** The result file a completed task of `kind` wrote, validated against its schema. */
  async result<T>(id: string, kind: TaskKind, name: string, schema: z.ZodType<T>): Promise<T> {
    const t = this.get(id);
    if (t.kind !== kind) throw new ApiError('invalid', `task '${id}' is of kind ${t.kind}, not ${kind}`);
    if (t.state !== 'completed') throw new ApiError('conflict', `${kind} '${id}' is ${t.state}; its result exists once it completes`);
    const file = join(t.dir, name);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (e) {
      throw new ApiError('not-found', `${file}: ${(e as Error).message}`);
    }
    const r = schema.safeParse(raw);
    if (!r.success) throw new ApiError('internal', `${file}: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`);
    return r.data;
  }

  /** A task's file for the /files/task/... route: only files it wrote, never task.json. */
  fileOf(id: string, path: string): string {
    const t = this.get(id);
    if (!t.files.includes(path)) throw new ApiError('not-found', `task '${id}' wrote no '${path}'`);
    return join(t.dir, path);
  }

  /** Stops the running task (it becomes interrupted) and takes no new ones. */
  async shutdown(): Promise<void> {
    this.closed = true;
    for (const id of this.queue.splice(0)) await this.update(id, { state: 'interrupted', finishedAt: nowIso() });
    this.current?.handle?.kill('SIGKILL');
    await this.loop;
  }

  private async save(task: Task): Promise<void> {
    await writeFileAtomic(join(task.dir, TASK_FILE), `${JSON.stringify(task, null, 2)}\n`);
  }

  private async update(id: string, patch: Partial<Task>): Promise<Task> {
    const task = { ...this.get(id), ...patch };
    this.tasks.set(id, task);
    // Progress is published only: it is not worth a disk write four times a second.
    if (Object.keys(patch).some((k) => k !== 'progress')) await this.save(task);
    this.o.hub.publish('taskState', task);
    return task;
  }

  private kick(): void {
    if (!this.busy) this.loop = this.next();
  }

  /** Runs queued tasks one after another; a call while one runs returns at once. */
  private async next(): Promise<void> {
    if (this.busy || this.closed) return;
    const id = this.queue.shift();
    if (!id) return;
    this.busy = true;
    try {
      await this.run(id);
    } finally {
      this.busy = false;
    }
    await this.next();
  }

  /** Runs one task's command; resolves once its final state is written. */
  private async run(id: string): Promise<void> {
    const plan = this.plans.get(id)!;
    this.plans.delete(id);
    const task = this.get(id);
    const cur: NonNullable<TaskService['current']> = { id, handle: null, cancelled: false, timer: null };
    this.current = cur;
    try {
      await this.execute(task, plan, cur);
    } finally {
      this.current = null;
    }
  }

  private async execute(task: Task, plan: TaskPlan, cur: NonNullable<TaskService['current']>): Promise<void> {
    const id = task.id;
    let args: string[];
    try {
      args = await plan(task.dir);
    } catch (e) {
      await this.update(id, { state: 'failed', finishedAt: nowIso(), error: { message: (e as Error).message, detail: '' } });
      return;
    }
    if (cur.cancelled || this.closed) {
      await this.update(id, { state: cur.cancelled ? 'cancelled' : 'interrupted', finishedAt: nowIso() });
      return;
    }
    const cmd = this.o.cnx(args);
    const handle = this.o.spawner.spawn({ ...cmd, env: { ...(cmd.env ?? process.env), [PROGRESS_ENV]: 'json' } });
    cur.handle = handle;
    const tail = new TailBuffer(40);
    let partial = '';
    handle.onStderr((text) => {
      tail.write(text);
      const lines = (partial + text).split('\n');
      partial = lines.pop()!.slice(-4096);
      for (const line of lines) {
        // Anything else (a warning, a partial line) stays in the tail for the error report.
        const p = parseProgressLine(line);
        if (p) void this.update(id, { progress: { message: p.progress, fraction: p.fraction } });
      }
    });
    const exit = new Promise<WorkerExit>((resolve) => handle.onExit(resolve));
    await this.update(id, { state: 'running', startedAt: nowIso() });
    const e = await exit;
    if (cur.timer) clearTimeout(cur.timer);
    const files = await listFiles(task.dir);
    const finishedAt = nowIso();
    if (cur.cancelled) await this.update(id, { state: 'cancelled', finishedAt, files });
    else if (this.closed) await this.update(id, { state: 'interrupted', finishedAt, files, error: { message: 'the workbench stopped while this task was running; start it again', detail: '' } });
    else if (e.code === 0) await this.update(id, { state: 'completed', finishedAt, files, progress: { message: 'done', fraction: 1 } });
    else await this.update(id, { state: 'failed', finishedAt, files, error: { message: failureMessage(tail.text(), e), detail: tail.text() } });
  }
}
