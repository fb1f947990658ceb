// Which engine runs a job, on which scheduling lane, and the command line that starts it. Both engines
// take the same config file and speak the same events (common/protocol.ts).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPython } from '../../native-worker/torch-python.ts';
import type { EngineChoice, EngineName } from '../../common/api.ts';
import type { JobConfig } from '../../common/job.ts';
import type { Lane } from './run-log.ts';
import { type DoctorReport, autoEngine } from './system.ts';
import type { WorkerCommand } from './workers.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How to run a Node script: plain node, or Electron's binary acting as node. */
export interface NodeRuntime {
  command: string;
  env: NodeJS.ProcessEnv;
}

export const plainNode: NodeRuntime = { command: process.execPath, env: {} };

/** `cnx <args>` as a command line. */
export function cnxCommand(node: NodeRuntime, args: readonly string[]): WorkerCommand {
  return { command: node.command, args: [join(REPO_ROOT, 'bin', 'cnx.mjs'), ...args], cwd: REPO_ROOT, env: { ...process.env, ...node.env } };
}

export interface EngineLauncher {
  /** `pythonSetting`: the Settings value (may be empty); throws when no Python with torch is found. */
  command(engine: EngineName, configPath: string, pythonSetting: string): WorkerCommand;
}

/** The real engines: native-worker/torch/run_job.py under the chosen Python, or `cnx run-job`. */
export function engineLauncher(node: NodeRuntime = plainNode): EngineLauncher {
  return {
    command(engine, configPath, pythonSetting) {
      if (engine === 'onnx') return cnxCommand(node, ['run-job', configPath]);
      return {
        command: findPython({ settings: pythonSetting }).python,
        args: [join(REPO_ROOT, 'native-worker', 'torch', 'run_job.py'), configPath],
        cwd: REPO_ROOT,
        // Unbuffered so each event line reaches us when it is written, even if a library swaps stdout.
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
      };
    },
  };
}

export interface EngineResolver {
  /** The engine for an engine choice, and the lane for it given the config's device. */
  resolve(choice: EngineChoice, device: JobConfig['device']): Promise<{ engine: EngineName; lane: Lane }>;
  /** How many CUDA GPUs the machine has (cnx doctor); null when not known: the GPU lane then holds one job. */
  gpus?(): Promise<number | null>;
}

/** A GPU job holds the machine's GPU lane (one at a time); CPU jobs run alongside in the CPU lane. */
export function laneFor(engine: EngineName, device: JobConfig['device'], report: DoctorReport | null): Lane {
  if (device === 'cpu') return 'cpu';
  if (device === 'cuda' || device === 'mps') return 'gpu';
  if (!report) return 'cpu';
  if (engine === 'torch') return (report.torch.cuda?.length ?? 0) > 0 || report.torch.mps === true ? 'gpu' : 'cpu';
  return report.onnx.chosen !== 'cpu' ? 'gpu' : 'cpu';
}

/** Resolves from `cnx doctor`'s report (probed once, cached by the system service). */
export function doctorResolver(doctor: () => Promise<{ report: DoctorReport | null }>): EngineResolver {
  return {
    async resolve(choice, device) {
      // An explicit engine on an explicit device needs no probe (which costs seconds on first use).
      if (choice !== 'auto' && device !== 'auto') return { engine: choice, lane: laneFor(choice, device, null) };
      const { report } = await doctor();
      const engine = choice === 'auto' ? autoEngine(report) : choice;
      return { engine, lane: laneFor(engine, device, report) };
    },
    async gpus() {
      const { report } = await doctor();
      return report ? (report.torch.cuda?.length ?? 0) : null;
    },
  };
}
