// Reads that can take long on big runs (downsampling millions of metric rows) run here, in a worker thread
// with its own read-only connection: WAL lets it read committed data while the main thread writes, and
// the main thread's event loop never waits for it.
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { type SeriesQuery, querySeries } from './series.ts';

export interface SeriesRequest {
  id: number;
  runId: string;
  query: SeriesQuery;
}

if (parentPort) {
  const port = parentPort;
  const db = new Database(workerData.file as string, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  port.on('message', (m: SeriesRequest) => {
    try {
      port.postMessage({ id: m.id, ok: true, value: querySeries(db, m.runId, m.query) });
    } catch (e) {
      port.postMessage({ id: m.id, ok: false, message: (e as Error).message });
    }
  });
}
