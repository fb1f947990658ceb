// Which GPUs a queued run gets: the queue schedules per GPU from `cnx doctor`'s CUDA list, so two 1-GPU
// jobs run side by side on a 2-GPU machine and a 2-GPU job waits until both of its GPUs are free.
import { type Devices, devicesProblem, gpuCount } from '../../common/job.ts';

/** A run's GPUs now, `null` to wait for them, or why it can never run here. */
export type GpuPick = number[] | null | { error: string };

/**
 * `inventory` is the number of CUDA GPUs cnx doctor found (null: not known). Without a CUDA list (an MPS
 * Mac, an ONNX execution provider) the GPU lane holds one job at a time and no indices are given.
 */
export function pickGpus(devices: Devices | null, inventory: number | null, busy: ReadonlySet<number>, laneJobs: number): GpuPick {
  const problem = devices !== null && inventory !== null ? devicesProblem(devices, inventory) : null;
  if (problem) return { error: problem };
  if (!inventory) return laneJobs > 0 ? null : [];
  if (Array.isArray(devices)) return devices.every((d) => !busy.has(d)) ? [...devices] : null;
  const wanted = devices === null ? 1 : gpuCount(devices);
  const free = Array.from({ length: inventory }, (_, i) => i).filter((i) => !busy.has(i));
  return free.length >= wanted ? free.slice(0, wanted) : null;
}
