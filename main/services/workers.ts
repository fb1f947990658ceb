// Worker processes: how one is started (an interface, so Electron can use utilityProcess and tests a fake)
// and how the service watches it: stdout lines validated as job events, a silence timeout, a bounded tail
// of stderr for failure reports, and a kill that escalates from SIGTERM (checkpoint and stop) to SIGKILL.
import { spawn } from 'node:child_process';
import { type JobEvent, parseEventLine } from '../../common/protocol.ts';

export interface WorkerCommand {
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface WorkerExit {
  code: number | null;
  signal: string | null;
  /** Set when the process could not be started at all (ENOENT, EACCES...). */
  spawnError: string | null;
}

/** A running worker as the supervisor sees it; every callback is registered before output can arrive. */
export interface WorkerHandle {
  readonly pid: number | null;
  onLine(cb: (line: string) => void): void;
  onStderr(cb: (text: string) => void): void;
  /** Once, after the process ended and its output was read. */
  onExit(cb: (exit: WorkerExit) => void): void;
  kill(signal: 'SIGTERM' | 'SIGKILL'): void;
}

export interface WorkerSpawner {
  spawn(cmd: WorkerCommand): WorkerHandle;
}

/** Longest stdout line kept; a runaway line without newline is dropped rather than buffered forever. */
const MAX_LINE = 16 << 20;

/** Workers as child processes with piped stdout/stderr (the `cnx serve` and test spawner). */
export class ChildProcessSpawner implements WorkerSpawner {
  spawn(cmd: WorkerCommand): WorkerHandle {
    const child = spawn(cmd.command, [...cmd.args], { cwd: cmd.cwd, env: cmd.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lineListeners: ((line: string) => void)[] = [];
    const stderrListeners: ((text: string) => void)[] = [];
    const exitListeners: ((exit: WorkerExit) => void)[] = [];
    let partial = '';
    let spawnError: string | null = null;
    let exited = false;
    let exitInfo: { code: number | null; signal: string | null } | null = null;

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      if (partial.length > MAX_LINE) partial = '';
      for (const line of parts) if (line) for (const l of lineListeners) l(line);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      for (const l of stderrListeners) l(text);
    });
    const finish = () => {
      if (exited) return;
      exited = true;
      if (partial) for (const l of lineListeners) l(partial);
      partial = '';
      const exit: WorkerExit = { code: exitInfo?.code ?? null, signal: exitInfo?.signal ?? null, spawnError };
      for (const l of exitListeners) l(exit);
    };
    child.on('error', (e) => {
      spawnError ??= e.message;
      // A process that never started emits no 'close' on every platform: finish on the next turn.
      if (child.pid === undefined) setImmediate(finish);
    });
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      // 'close' waits for stdio to end, which a leaked grandchild holding the pipe can delay forever.
      setTimeout(finish, 3000).unref();
    });
    child.on('close', (code, signal) => {
      exitInfo ??= { code, signal };
      finish();
    });
    return {
      get pid() {
        return child.pid ?? null;
      },
      onLine: (cb) => void lineListeners.push(cb),
      onStderr: (cb) => void stderrListeners.push(cb),
      onExit: (cb) => void exitListeners.push(cb),
      kill: (signal) => {
        if (!exited && child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
  }
}

/** The last lines of a stream, bounded in lines and characters. */
export class TailBuffer {
  private lines: string[] = [];
  private partial = '';
  constructor(
    private readonly maxLines = 60,
    private readonly maxLineChars = 2000,
  ) {}

  write(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop()!.slice(-this.maxLineChars);
    for (const p of parts) this.push(p);
  }

  push(line: string): void {
    this.lines.push(line.length > this.maxLineChars ? `${line.slice(0, this.maxLineChars)}…` : line);
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
  }

  text(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

export type StopReason = 'pause' | 'cancel' | 'shutdown';

export interface SupervisedExit extends WorkerExit {
  /** What the worker's `done` event said, if it sent one. */
  doneStatus: 'completed' | 'cancelled' | 'failed' | null;
  /** The last `error` event. */
  lastError: { message: string; detail: string } | null;
  stderrTail: string;
  /** Why the supervisor killed the worker on its own (silence), if it did. */
  timedOut: string | null;
  /** Why the service asked it to stop, if it did. */
  stopRequested: StopReason | null;
  sawStarted: boolean;
}

export interface SupervisorOptions {
  /** Longest wait for the first event (interpreter start-up, imports, data loading). */
  startupTimeoutMs: number;
  /** Longest silence once started: a hung worker is stopped and its run failed, never left hanging. */
  stallTimeoutMs: number;
  /** Time between SIGTERM (checkpoint and stop) and SIGKILL. */
  killGraceMs: number;
  onEvent(event: JobEvent, raw: string): void;
  onExit(exit: SupervisedExit): void;
}

export class WorkerSupervisor {
  private lastHeard = Date.now();
  private readonly tail = new TailBuffer();
  private doneStatus: SupervisedExit['doneStatus'] = null;
  private lastError: SupervisedExit['lastError'] = null;
  private timedOut: string | null = null;
  private stopRequested: StopReason | null = null;
  private sawStarted = false;
  private invalidLines = 0;
  private readonly watchdog: NodeJS.Timeout;
  private killTimer: NodeJS.Timeout | null = null;
  private ended = false;

  constructor(
    readonly handle: WorkerHandle,
    private readonly opts: SupervisorOptions,
  ) {
    handle.onLine((line) => this.line(line));
    handle.onStderr((text) => this.tail.write(text));
    handle.onExit((exit) => this.exit(exit));
    // Checking a timestamp once a second costs nothing per event, unlike re-arming a timer for each one.
    const every = Math.max(50, Math.min(1000, Math.floor(Math.min(opts.startupTimeoutMs, opts.stallTimeoutMs) / 4)));
    this.watchdog = setInterval(() => this.check(), every);
    this.watchdog.unref();
  }

  private line(line: string): void {
    const event = parseEventLine(line);
    if (!event) {
      // Stray prints are not events; keep a few in the tail, they often explain a crash.
      if (++this.invalidLines <= 20) this.tail.push(`[stdout] ${line}`);
      return;
    }
    this.lastHeard = Date.now();
    if (event.type === 'started') this.sawStarted = true;
    else if (event.type === 'done') this.doneStatus = event.status;
    else if (event.type === 'error') this.lastError = { message: event.message, detail: event.detail };
    this.opts.onEvent(event, line);
  }

  private check(): void {
    if (this.ended || this.timedOut || this.stopRequested) return;
    const limit = this.sawStarted ? this.opts.stallTimeoutMs : this.opts.startupTimeoutMs;
    const silent = Date.now() - this.lastHeard;
    if (silent > limit) {
      this.timedOut = this.sawStarted
        ? `the worker sent no event for ${Math.round(silent / 1000)} s (stall timeout ${Math.round(limit / 1000)} s) and was stopped`
        : `the worker did not start within ${Math.round(limit / 1000)} s and was stopped`;
      this.terminate();
    }
  }

  /** Asks the worker to checkpoint and stop (SIGTERM); kills it if it has not exited after the grace time. */
  stop(reason: StopReason): void {
    this.stopRequested ??= reason;
    this.terminate();
  }

  /** Kills at once (no checkpoint). */
  kill(): void {
    this.handle.kill('SIGKILL');
  }

  private terminate(): void {
    this.handle.kill('SIGTERM');
    this.killTimer ??= setTimeout(() => this.handle.kill('SIGKILL'), this.opts.killGraceMs);
    this.killTimer.unref();
  }

  private exit(exit: WorkerExit): void {
    this.ended = true;
    clearInterval(this.watchdog);
    if (this.killTimer) clearTimeout(this.killTimer);
    this.opts.onExit({
      ...exit,
      doneStatus: this.doneStatus,
      lastError: this.lastError,
      stderrTail: this.tail.text(),
      timedOut: this.timedOut,
      stopRequested: this.stopRequested,
      sawStarted: this.sawStarted,
    });
  }
}
