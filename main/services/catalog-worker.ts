// Dataset work too heavy for the main thread (scanning and hashing images, duplicate grouping), run in a
// worker thread with its own connection to workbench.db (WAL lets it write while the main thread reads).
// Messages out: { type: 'progress', progress } ... then { type: 'result', value } or { type: 'error' }.
import { parentPort, workerData } from 'node:worker_threads';
import { Catalog, CatalogError } from '../../native-worker/data/catalog/catalog.ts';
import { DEFAULT_NEAR_THRESHOLD, exactDuplicateGroups, nearDuplicateGroups } from '../../native-worker/data/curate/dupes.ts';
import { semanticDuplicateGroups } from '../../native-worker/curation/semantic-dupes.ts';
import { ImportError, importDataset } from '../../native-worker/data/import/importer.ts';
import { IdxError } from '../../native-worker/data/import/idx.ts';

export type CatalogTask =
  | { task: 'import'; workspace: string; source: string; name?: string; kind?: 'folder' | 'csv' | 'idx' | 'unlabeled'; idxClasses?: 'fashion-mnist' | 'mnist' }
  | { task: 'dupes'; workspace: string; name: string; threshold: number };

export type CatalogWorkerMessage =
  | { type: 'progress'; progress: unknown }
  | { type: 'result'; value: unknown }
  | { type: 'error'; message: string; userError: boolean; aborted: boolean };

async function run(task: CatalogTask, signal: AbortSignal, post: (m: CatalogWorkerMessage) => void): Promise<unknown> {
  const catalog = Catalog.open(task.workspace);
  try {
    if (task.task === 'import') {
      return await importDataset(catalog, {
        source: task.source,
        ...(task.name !== undefined ? { name: task.name } : {}),
        ...(task.kind !== undefined ? { kind: task.kind } : {}),
        ...(task.idxClasses !== undefined ? { idxClasses: task.idxClasses } : {}),
        signal,
        progressEveryMs: 200,
        onProgress: (progress) => post({ type: 'progress', progress }),
      });
    }
    const ds = catalog.requireDataset(task.name);
    const threshold = task.threshold ?? DEFAULT_NEAR_THRESHOLD;
    const semantic = semanticDuplicateGroups(catalog, task.workspace, ds.id);
    return { dataset: ds.name, threshold, exact: exactDuplicateGroups(catalog, ds.id), near: nearDuplicateGroups(catalog, ds.id, threshold), semantic };
  } finally {
    catalog.close();
  }
}

if (parentPort) {
  const port = parentPort;
  const abort = new AbortController();
  port.on('message', (m: { type: string }) => {
    if (m.type === 'cancel') abort.abort(new Error('cancelled'));
  });
  const post = (m: CatalogWorkerMessage) => port.postMessage(m);
  run(workerData.task as CatalogTask, abort.signal, post)
    .then(
      (value) => post({ type: 'result', value }),
      (e: Error) => {
        const userError = e instanceof CatalogError || e instanceof ImportError || e instanceof IdxError;
        post({ type: 'error', message: userError ? e.message : (e.stack ?? e.message), userError, aborted: abort.signal.aborted });
      },
    )
    // The cancel listener would keep the thread alive forever: close the port once the answer is out.
    .finally(() => port.close());
}
