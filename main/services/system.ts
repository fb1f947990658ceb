// System info: memory, disk space of the workspace, GPUs and the engines this machine can run. Engine and
// GPU facts come from `cnx doctor --json`, run as a child process (it loads onnxruntime and imports torch,
// neither of which belongs in the main process), cached until asked to refresh.
import { spawn } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';
import { z } from 'zod';
import type { EngineName, SystemInfo } from '../../common/api.ts';
import { namedPython, pythonOption } from '../../native-worker/torch-python.ts';
import type { WorkerCommand } from './workers.ts';

const DoctorReport = z.object({
  onnx: z.object({
    onnxruntime: z.string(),
    backends: z.array(z.string()),
    chosen: z.string(),
    skipped: z.array(z.object({ provider: z.string(), reason: z.string() })),
  }),
  torch: z
    .object({
      interpreter: z.string(),
      how: z.string().optional(),
      python: z.string().optional(),
      torch: z.string().optional(),
      cuda: z.array(z.object({ name: z.string(), memoryGiB: z.number() })).optional(),
      mps: z.boolean().optional(),
      error: z.string().optional(),
    })
    .loose(),
  torchEngineUsable: z.boolean(),
});
export type DoctorReport = z.infer<typeof DoctorReport>;

export interface SystemOptions {
  workspace: string;
  host: SystemInfo['host'];
  appVersion: string;
  /** The Settings value (may be empty: then the doctor's search decides). */
  pythonPath: () => string;
  /** How to run `cnx <args>` (node + bin/cnx.mjs, or Electron as node). */
  cnx: (args: readonly string[]) => WorkerCommand;
  doctorTimeoutMs?: number;
}

/** Runs `cnx doctor --json` and parses its report; rejects with a message saying what went wrong. */
export function runDoctor(cmd: WorkerCommand, timeoutMs: number): Promise<DoctorReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.command, [...cmd.args], { cwd: cmd.cwd, env: cmd.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run cnx doctor: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`cnx doctor ${signal ? `was killed (${signal})` : `exited with ${code}`}: ${err.trim().split('\n').slice(-3).join(' / ')}`));
      try {
        resolve(DoctorReport.parse(JSON.parse(out)));
      } catch (e) {
        reject(new Error(`cnx doctor printed an unexpected report: ${(e as Error).message.slice(0, 300)}`));
      }
    });
  });
}

/** 'auto' means torch when a Python with torch sees a GPU, else the ONNX engine. */
export function autoEngine(report: DoctorReport | null): EngineName {
  if (!report) return 'onnx';
  const gpu = (report.torch.cuda?.length ?? 0) > 0 || report.torch.mps === true;
  return report.torchEngineUsable && gpu ? 'torch' : 'onnx';
}

export class SystemService {
  private cached: { report: DoctorReport | null; error: string | null; at: string } | null = null;
  private pending: Promise<void> | null = null;

  constructor(private readonly opts: SystemOptions) {}

  /** The doctor's report (null when it could not run), probing once and then from cache. */
  async doctor(refresh = false): Promise<{ report: DoctorReport | null; error: string | null; at: string }> {
    if (refresh || !this.cached) {
      // Concurrent callers share one probe.
      this.pending ??= runDoctor(this.opts.cnx(['doctor', '--json', ...pythonOption(this.opts.pythonPath())]), this.opts.doctorTimeoutMs ?? 120_000)
        .then(
          (report) => void (this.cached = { report, error: null, at: new Date().toISOString() }),
          (e: Error) => void (this.cached = { report: null, error: e.message, at: new Date().toISOString() }),
        )
        .finally(() => (this.pending = null));
      await this.pending;
    }
    return this.cached!;
  }

  /** Forgets the cached report (the Python path changed). */
  invalidate(): void {
    this.cached = null;
  }

  async info(refresh = false): Promise<SystemInfo> {
    const { report, error, at } = await this.doctor(refresh);
    const disk = await statfs(this.opts.workspace).then(
      (s) => ({ total: s.blocks * s.bsize, free: s.bavail * s.bsize }),
      () => null,
    );
    const cpu = cpus();
    const torch = report?.torch;
    const named = namedPython({ settings: this.opts.pythonPath() });
    return {
      app: { version: this.opts.appVersion, node: process.versions.node, platform: process.platform, arch: process.arch },
      host: this.opts.host,
      cpu: { model: cpu[0]?.model ?? 'unknown', cores: cpu.length },
      memory: { totalBytes: totalmem(), freeBytes: freemem() },
      workspace: { path: this.opts.workspace, diskTotalBytes: disk?.total ?? null, diskFreeBytes: disk?.free ?? null },
      gpus: [
        ...(torch?.cuda ?? []).map((g) => ({ name: g.name, memoryGiB: g.memoryGiB, backend: 'cuda' as const })),
        ...(torch?.mps ? [{ name: 'Apple GPU (MPS)', memoryGiB: null, backend: 'mps' as const }] : []),
      ],
      engines: {
        onnx: {
          available: report !== null,
          version: report?.onnx.onnxruntime ?? null,
          providers: report?.onnx.backends ?? [],
          chosen: report?.onnx.chosen ?? null,
          notes: (report?.onnx.skipped ?? []).map((s) => `${s.provider}: ${s.reason}`),
        },
        torch: {
          available: report?.torchEngineUsable ?? false,
          interpreter: torch?.interpreter ?? named?.python ?? 'unknown',
          how: named?.how ?? torch?.how ?? 'unknown',
          python: torch?.python ?? null,
          version: torch?.torch ?? null,
          error: torch?.error ?? (report && !report.torchEngineUsable ? 'torch is not importable with this interpreter' : null),
        },
      },
      autoEngine: autoEngine(report),
      doctorError: error,
      checkedAt: at,
    };
  }
}
