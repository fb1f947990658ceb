// Shared by the services tests: a tiny image dataset and manifest, small job configs for the PyTorch
// engine, a scripted fake worker, and waiting helpers.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobConfigDraft, RunState, RunSummary } from '../../common/api.ts';
import { sealManifest } from '../../common/manifest.ts';
import type { Workbench } from '../../main/services/workbench.ts';
import type { EngineLauncher, EngineResolver } from '../../main/services/engines.ts';
import { photo } from './images.ts';

export const FAKE_WORKER = join(import.meta.dirname, 'fake-worker.mjs');

const made: string[] = [];

/** A fresh folder under the system temp dir, removed when the test process exits (CNX_KEEP_TMP=1 keeps it). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cnx-svc-${prefix}-`));
  // Runs write real checkpoints (tens of MB each): never leave them behind.
  if (!made.length && !process.env.CNX_KEEP_TMP) process.once('exit', () => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
  made.push(dir);
  return dir;
}

/** 12 small PNGs in 3 classes (9 train, 3 val) under dir/images, and a sealed manifest; returns its path. */
export async function tinyManifest(dir: string): Promise<string> {
  const root = join(dir, 'images');
  const classes = ['a', 'b', 'c'];
  const items = [];
  for (let i = 0; i < 12; i++) {
    const label = i % 3;
    mkdirSync(join(root, classes[label]!), { recursive: true });
    const path = `${classes[label]}/${i}.png`;
    await photo(i + 1, 40 + 4 * (i % 3), 36 + 4 * (i % 2)).png().toFile(join(root, path));
    items.push({ path, label, split: i % 4 === 3 ? ('val' as const) : ('train' as const) });
  }
  const manifest = sealManifest({ version: 1, dataset: 'tiny', createdAt: new Date(0).toISOString(), root, classes, items });
  const file = join(dir, 'manifest.json');
  writeFileSync(file, JSON.stringify(manifest));
  return file;
}

/** A fine-tuning job small enough for the CPU: convnextv2_atto at 32 px, batch 4, one loader process. */
export function tinyJob(manifest: string, o: { steps: number; checkpointEvery: number; device?: JobConfigDraft['device'] }): JobConfigDraft {
  return {
    version: 1,
    kind: 'finetune',
    model: { arch: 'convnextv2_atto', numClasses: 3, inputSize: 32, dropPathRate: 0 },
    data: { manifest, batchSize: 4, workers: 0, seed: 1 },
    optim: { lr: 1e-3, totalSteps: o.steps, warmupSteps: 1 },
    device: o.device ?? 'cpu',
    checkpointEverySteps: o.checkpointEvery,
  };
}

/** Runs every job with the fake worker; `env` scripts its behaviour (see fake-worker.mjs). */
export function fakeLauncher(env: () => NodeJS.ProcessEnv = () => ({})): EngineLauncher {
  return { command: (_engine, configPath) => ({ command: process.execPath, args: [FAKE_WORKER, configPath], env: { ...process.env, ...env() } }) };
}

/** Every job resolves to the given engine and lane (a GPU lane on a machine without one). */
export function fixedResolver(lane: 'gpu' | 'cpu', engine: 'torch' | 'onnx' = 'torch'): EngineResolver {
  return { resolve: async (_choice, device) => ({ engine, lane: device === 'cpu' ? 'cpu' : lane }) };
}

/** Polls `probe` until it returns something truthy; `what` (or its function, evaluated at the end) says what for. */
export async function waitFor<T>(what: string | (() => string), probe: () => T | undefined | null | false, timeoutMs = 60_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until the run reaches one of `states`; returns its summary. */
export function waitForState(wb: Workbench, runId: string, states: RunState[], timeoutMs = 90_000): Promise<RunSummary> {
  const what = () => `run ${runId} to be ${states.join(' or ')} (it is ${wb.store.summary(runId)?.state}: ${JSON.stringify(wb.store.summary(runId)?.error)})`;
  return waitFor(what, () => {
    const s = wb.store.summary(runId);
    return s && states.includes(s.state) ? s : null;
  }, timeoutMs);
}

/** The states a run went through, from the jobState stream. */
export function recordStates(wb: Workbench): Map<string, RunState[]> {
  const seen = new Map<string, RunState[]>();
  wb.hub.subscribe((batch) => {
    for (const item of batch.items) {
      if (item.stream !== 'jobState') continue;
      const s = item.data as RunSummary;
      const list = seen.get(s.id) ?? [];
      if (list.at(-1) !== s.state) list.push(s.state);
      seen.set(s.id, list);
    }
  });
  return seen;
}
