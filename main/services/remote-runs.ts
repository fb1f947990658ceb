// Runs followed from a folder that no service here supervises: a cluster run written by `cnx launch`, on a
// shared filesystem. Registered once (runs.attach), marked remote, never scheduled, paused or deleted from
// disk; their events.jsonl is replayed into the database as it grows, so the Runs view follows them live.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ApiError, type RunSummary } from '../../common/api.ts';
import { EVENTS_FILE, readRunMeta } from './run-log.ts';
import type { Store } from './store.ts';

const FINAL_STATES = new Set<RunSummary['state']>(['completed', 'failed', 'cancelled']);

export class RemoteRuns {
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(
    private readonly store: Store,
    private readonly pollMs = 2000,
  ) {}

  async attach(path: string): Promise<RunSummary> {
    const dir = resolve(path);
    const found = await readRunMeta(dir);
    if (!found) throw new ApiError('invalid', `${dir}: not a run folder (needs run.json and config.json, as cnx launch writes them)`);
    const existing = this.store.summary(found.meta.id);
    if (existing) {
      if (this.store.run(found.meta.id)?.runDir === dir) return existing;
      throw new ApiError('conflict', `${dir}: a run with id '${found.meta.id}' is already in this workspace`);
    }
    const config = found.config as { kind: RunSummary['kind']; model: { arch: string } };
    this.store.insertRemoteRun(found.meta, config, dir);
    if (existsSync(join(dir, EVENTS_FILE))) await this.store.replayLog(found.meta.id, true);
    this.start();
    return this.store.summary(found.meta.id)!;
  }

  /** Polls the logs of the remote runs that have not ended. */
  start(): void {
    this.timer ??= setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const run of this.store.remoteRuns()) if (!FINAL_STATES.has(run.state)) await this.store.replayLog(run.id, true);
    } catch (e) {
      console.error(`cnx: following remote runs failed: ${(e as Error).message}`);
    } finally {
      this.polling = false;
    }
  }
}
