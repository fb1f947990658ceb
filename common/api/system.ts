// Settings, and what the workbench knows of the machine it runs on.
import { z } from 'zod';
import { int, isoTime } from './fields.ts';
import { DeviceChoice, EngineChoice, EngineName } from './vocabulary.ts';

export const Settings = z.object({
  /** The workspace folder in use (changed by restarting with another one). */
  workspace: z.string(),
  /** The PyTorch engine's Python; empty: CNX_PYTHON, else the first candidate that imports torch (see
   * native-worker/torch-python.ts). CNX_PYTHON, when set, wins over this value. */
  pythonPath: z.string(),
  defaultEngine: EngineChoice,
  defaultDevice: DeviceChoice,
  /** CPU jobs allowed to run at once (GPU jobs run one at a time). */
  cpuJobSlots: int(1, 16),
  /** A running worker silent for this long is stopped and its run marked failed. */
  stallTimeoutSec: int(10, 86_400),
});
export type Settings = z.infer<typeof Settings>;
export const SettingsUpdate = Settings.omit({ workspace: true }).partial().strict();

export const GpuInfo = z.object({ name: z.string(), memoryGiB: z.number().nullable(), backend: z.enum(['cuda', 'mps']) });
export const SystemInfo = z.object({
  app: z.object({ version: z.string(), node: z.string(), platform: z.string(), arch: z.string() }),
  host: z.object({ kind: z.enum(['electron', 'web']), nativeDialogs: z.boolean() }),
  cpu: z.object({ model: z.string(), cores: int(0) }),
  memory: z.object({ totalBytes: z.number(), freeBytes: z.number() }),
  workspace: z.object({ path: z.string(), diskTotalBytes: z.number().nullable(), diskFreeBytes: z.number().nullable() }),
  gpus: z.array(GpuInfo),
  engines: z.object({
    onnx: z.object({ available: z.boolean(), version: z.string().nullable(), providers: z.array(z.string()), chosen: z.string().nullable(), notes: z.array(z.string()) }),
    /** `how`: why this interpreter (named by CNX_PYTHON or Settings, or found by the search). */
    torch: z.object({ available: z.boolean(), interpreter: z.string(), how: z.string(), python: z.string().nullable(), version: z.string().nullable(), error: z.string().nullable() }),
  }),
  /** What engine 'auto' picks on this machine. */
  autoEngine: EngineName,
  /** Set when `cnx doctor` could not be run; the engine fields then say unknown. */
  doctorError: z.string().nullable(),
  checkedAt: isoTime,
});
export type SystemInfo = z.infer<typeof SystemInfo>;
